"""Sprint 6: from-scratch attention and multi-head attention against PyTorch's own.

References: torch.nn.functional.scaled_dot_product_attention (outputs; with v = identity it
also returns the weights), torch.nn.attention.bias.causal_lower_right (KV-cache style causal
mask), torch.nn.MultiheadAttention (outputs and weights, batch_first), and gradcheck.
"""

import re
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention.bias import causal_lower_right

sdpa_mod = import_module("sprints.06_multi_head_attention.results.scaled_dot_product_attention")
mha_mod = import_module("sprints.06_multi_head_attention.results.multi_head_attention")
attention = sdpa_mod.scaled_dot_product_attention
causal_mask = sdpa_mod.causal_mask
padding_mask = sdpa_mod.padding_mask
MultiHeadAttention = mha_mod.MultiHeadAttention

ATOL = 1e-5


def _qkv(B=2, h=3, T_q=4, T_k=4, d=8, d_v=5, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(B, h, T_q, d, generator=g, dtype=dtype)
    k = torch.randn(B, h, T_k, d, generator=g, dtype=dtype)
    v = torch.randn(B, h, T_k, d_v, generator=g, dtype=dtype)
    return q, k, v


def _torch_weights(q, k, mask=None):
    # With v = identity (T_k x T_k), attention's output IS its weight matrix.
    eye = torch.eye(k.size(-2), dtype=q.dtype).expand(*k.shape[:-1], k.size(-2))
    return F.scaled_dot_product_attention(q, k, eye, attn_mask=mask)


def _lengths_mask(lengths, T):
    # Reference built with plain Python lists: True on the first lengths[b] positions.
    rows = [[j < n for j in range(T)] for n in lengths]
    return torch.tensor(rows)[:, None, None, :]


@pytest.mark.parametrize(
    "case", ["none", "causal", "padding", "causal_and_padding", "causal_tk_gt_tq", "cross"]
)
def test_attention_equals_torch_sdpa(case):
    T_q, T_k = (3, 7) if case in ("causal_tk_gt_tq", "cross") else (5, 5)
    q, k, v = _qkv(T_q=T_q, T_k=T_k)
    mask = None
    if case == "causal":
        mask = causal_mask(T_q)
    elif case == "padding":
        mask = padding_mask(torch.tensor([5, 2]), T_k)
    elif case == "causal_and_padding":
        mask = causal_mask(T_q) & padding_mask(torch.tensor([5, 2]), T_k)
    elif case == "causal_tk_gt_tq":
        mask = causal_mask(T_q, T_k)
    out, weights = attention(q, k, v, mask=mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(weights, _torch_weights(q, k, mask), atol=ATOL, rtol=1e-5)
    assert out.shape == (2, 3, T_q, 5) and weights.shape == (2, 3, T_q, T_k)


def test_square_causal_mask_matches_torch_is_causal():
    q, k, v = _qkv(T_q=6, T_k=6)
    out, _ = attention(q, k, v, mask=causal_mask(6))
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("T_q,T_k", [(1, 1), (1, 6), (3, 7), (5, 5), (0, 4)])
def test_causal_mask_is_lower_right_aligned(T_q, T_k):
    # torch's CausalBias lower-right variant is exactly the KV-cache convention.
    ref = causal_lower_right(T_q, T_k)._materialize()
    assert torch.equal(causal_mask(T_q, T_k), ref)


def test_causal_tk_gt_tq_equals_last_rows_of_full_causal_attention():
    # Attending with the last 3 queries over all 7 keys = the last 3 rows of full attention.
    q, k, v = _qkv(T_q=7, T_k=7)
    full, full_w = attention(q, k, v, mask=causal_mask(7))
    last, last_w = attention(q[..., -3:, :], k, v, mask=causal_mask(3, 7))
    torch.testing.assert_close(last, full[..., -3:, :])
    torch.testing.assert_close(last_w, full_w[..., -3:, :])


def test_causal_mask_rejects_more_queries_than_keys():
    with pytest.raises(ValueError, match="T_q <= T_k"):
        causal_mask(5, 3)


def test_padding_mask_shape_and_values():
    lengths = torch.tensor([3, 1, 4, 0])
    mask = padding_mask(lengths, 4)
    assert mask.dtype == torch.bool and mask.shape == (4, 1, 1, 4)
    assert torch.equal(mask, _lengths_mask(lengths.tolist(), 4))
    with pytest.raises(ValueError, match="max_len"):
        padding_mask(torch.tensor([5]), 4)


def test_weights_rows_sum_to_one_and_masked_positions_are_exactly_zero():
    q, k, v = _qkv(T_q=6, T_k=6)
    mask = causal_mask(6) & padding_mask(torch.tensor([6, 3]), 6)  # (B, 1, 6, 6)
    _, weights = attention(q, k, v, mask=mask)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 6))
    full = mask.expand_as(weights)
    assert (weights[~full] == 0).all()  # exact zeros, not just small
    assert (weights[full] > 0).all()


def test_fully_masked_row_gives_zero_not_nan_and_finite_gradients():
    q, k, v = _qkv(T_q=3, T_k=4)
    q.requires_grad_(True)
    v.requires_grad_(True)
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1] = False  # query 1 may attend nothing
    out, weights = attention(q, k, v, mask=mask)
    # A plain softmax over an all -inf row is 0/0 = NaN: the reason this case needs handling.
    assert torch.isnan(torch.softmax(torch.full((4,), float("-inf")), dim=-1)).all()
    assert not torch.isnan(out).any() and not torch.isnan(weights).any()
    assert (weights[..., 1, :] == 0).all() and (out[..., 1, :] == 0).all()
    torch.testing.assert_close(weights[..., [0, 2], :].sum(-1), torch.ones(2, 3, 2))
    out.sum().backward()
    assert torch.isfinite(q.grad).all() and torch.isfinite(v.grad).all()


def test_attention_gradcheck_float64():
    q, k, v = (
        t.requires_grad_(True)
        for t in _qkv(B=1, h=2, T_q=3, T_k=4, d=3, d_v=2, dtype=torch.float64)
    )
    mask = causal_mask(3, 4)
    assert torch.autograd.gradcheck(lambda a, b, c: attention(a, b, c, mask=mask)[0], (q, k, v))


def test_dropout_only_in_training_and_returned_weights_are_pre_dropout():
    q, k, v = _qkv()
    out_eval, w_eval = attention(q, k, v, dropout_p=0.5, training=False)
    torch.testing.assert_close(out_eval, F.scaled_dot_product_attention(q, k, v))
    torch.manual_seed(1)
    out_train, w_train = attention(q, k, v, dropout_p=0.5, training=True)
    assert not torch.allclose(out_train, out_eval)
    torch.testing.assert_close(w_train, w_eval)


def test_attention_rejects_float_mask_and_bad_shapes():
    q, k, v = _qkv()
    with pytest.raises(TypeError, match="bool"):
        attention(q, k, v, mask=torch.ones(4, 4))
    with pytest.raises(ValueError, match="last dim"):
        attention(q, k[..., :3], v)


# ---------------------------------------------------------------- multi-head attention


def _pair(d_model=12, num_heads=3, bias=True):
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(d_model, num_heads, bias=bias, batch_first=True).eval()
    with torch.no_grad():  # torch zero-inits the biases; randomize so copying them matters
        for p in ref.parameters():
            p.normal_(0, 0.3)
    ours = MultiHeadAttention(d_model, num_heads, bias=bias).eval()
    mha_mod.copy_weights_from_torch(ours, ref)
    return ours, ref


@pytest.mark.parametrize("bias", [True, False])
def test_mha_self_attention_equals_torch(bias):
    ours, ref = _pair(bias=bias)
    x = torch.randn(2, 5, 12)
    out, w = ours(x)
    ref_out, ref_w = ref(x, x, x, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(out, ref_out, atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(w, ref_w, atol=ATOL, rtol=1e-5)


def test_mha_with_key_padding_and_attn_mask_equals_torch():
    ours, ref = _pair()
    B, T_q, T_k = 3, 4, 6
    query, memory = torch.randn(B, T_q, 12), torch.randn(B, T_k, 12)
    keep = padding_mask(torch.tensor([6, 4, 1]), T_k)  # ours: True = may attend
    allowed = causal_mask(T_q, T_k)
    out, w = ours(query, memory, memory, mask=keep & allowed)
    # torch's bool masks mean the opposite: True = ignore this key.
    ref_out, ref_w_avg = ref(
        query, memory, memory, key_padding_mask=~keep[:, 0, 0], attn_mask=~allowed
    )
    _, ref_w = ref(
        query,
        memory,
        memory,
        key_padding_mask=~keep[:, 0, 0],
        attn_mask=~allowed,
        average_attn_weights=False,
    )
    torch.testing.assert_close(out, ref_out, atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(w, ref_w, atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(w.mean(dim=1), ref_w_avg, atol=ATOL, rtol=1e-5)  # head average
    torch.testing.assert_close(w.sum(-1), torch.ones(B, 3, T_q))
    assert (w.masked_select(~(keep & allowed).expand_as(w)) == 0).all()


def test_mha_three_dim_mask_applies_to_every_head():
    ours, ref = _pair()
    x = torch.randn(2, 5, 12)
    mask = torch.rand(2, 5, 5) > 0.4
    mask[..., 0] = True  # keep every row non-empty (torch would give NaN otherwise)
    out, _ = ours(x, mask=mask)
    # torch's 3-D attn_mask is per (batch * head): repeat ours once per head.
    ref_out, _ = ref(x, x, x, attn_mask=~mask.repeat_interleave(3, dim=0))
    torch.testing.assert_close(out, ref_out, atol=ATOL, rtol=1e-5)


def test_mha_gradients_equal_torch():
    ours, ref = _pair()
    x1 = torch.randn(2, 5, 12, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    ours(x1, mask=causal_mask(5))[0].square().sum().backward()
    ref(x2, x2, x2, attn_mask=~causal_mask(5))[0].square().sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-4, rtol=1e-4)
    w_q_grad = ref.in_proj_weight.grad.chunk(3)[0]
    torch.testing.assert_close(ours.q_proj.weight.grad, w_q_grad, atol=1e-4, rtol=1e-4)


def test_split_and_combine_heads():
    x = torch.randn(2, 5, 12)
    heads = mha_mod.split_heads(x, 3)
    assert heads.shape == (2, 3, 5, 4)
    for i in range(3):  # head i owns channels [4i, 4i + 4)
        assert torch.equal(heads[:, i], x[..., 4 * i : 4 * i + 4])
    assert torch.equal(mha_mod.combine_heads(heads), x)
    m = MultiHeadAttention(12, 3)
    assert torch.equal(m.combine_heads(m.split_heads(x)), x)


def test_mha_rejects_indivisible_heads_and_bad_input():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="d_model=12"):
        MultiHeadAttention(12, 3)(torch.randn(2, 5, 8))


# ----- the demo scripts ---------------------------------------------------------------------
S6 = "sprints.06_multi_head_attention.results"


@pytest.mark.parametrize("num_heads", [1, 2, 8])
def test_multi_head_demo_draws_every_head_count(num_heads, tmp_path, capsys):
    # One head used to crash: plt.subplots(1, 1) returns a single Axes, not an array of them.
    import matplotlib.image as mpimg

    import_module(f"{S6}.02_multi_head_attention").main(
        ["--num-heads", str(num_heads), "--out-dir", str(tmp_path)]
    )
    png = tmp_path / "multi_head_weights.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = mpimg.imread(png).shape[:2]
    assert height > 100 and width > 100 * num_heads  # one panel per head, side by side
    out = capsys.readouterr().out
    assert f"head_dim = {8 // num_heads}" in out
    error = float(re.search(r"max \|output - torch\|\s+= (\S+)", out)[1])
    assert error < 1e-5


@pytest.mark.parametrize("argv,message", [
    (["--num-heads", "0"], "whole number of at least 1"),
    (["--d-model", "-8"], "whole number of at least 1"),
    (["--num-heads", "3"], "does not divide --d-model 8"),
])
def test_multi_head_demo_rejects_bad_sizes_with_a_usage_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        import_module(f"{S6}.02_multi_head_attention").main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_demo_help_does_not_import_torch():
    code = (
        "import runpy, sys\n"
        "for name in ('01_scaled_dot_product_attention', '02_multi_head_attention',\n"
        "             '03_attention_masking'):\n"
        "    sys.argv = [name, '--help']\n"
        "    try:\n"
        f"        runpy.run_module('{S6}.' + name, run_name='__main__')\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=root).stdout
    assert out.strip().endswith("torch imported: False")
