"""Sprint 7: LayerNorm, feed-forward, Add & Norm, encoder and decoder blocks against PyTorch.

References: nn.LayerNorm (outputs and gradients), gradcheck, F.gelu, and with weights copied
in, nn.TransformerEncoderLayer / nn.TransformerDecoderLayer / nn.TransformerEncoder /
nn.TransformerDecoder (batch_first=True, eval mode) for both norm_first settings.
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

ln_mod = import_module("sprints.07_transformer_block.results.layer_norm")
ffn_mod = import_module("sprints.07_transformer_block.results.positionwise_feed_forward")
res_mod = import_module("sprints.07_transformer_block.results.residual")
enc_mod = import_module("sprints.07_transformer_block.results.encoder_block")
dec_mod = import_module("sprints.07_transformer_block.results.decoder_block")
sdpa_mod = import_module("sprints.06_multi_head_attention.results.scaled_dot_product_attention")
causal_mask, padding_mask = sdpa_mod.causal_mask, sdpa_mod.padding_mask

D, H, FF = 16, 4, 32
TOL = {"atol": 2e-5, "rtol": 1e-5}


def _randomize(module, std=0.3, seed=0):
    # torch initializes LayerNorm to (1, 0) and biases to 0; random values make copying matter.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)


# ---------------------------------------------------------------- LayerNorm


@pytest.mark.parametrize("shape", [(7, D), (2, 5, D), (2, 3, 4, D)])
@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm_equals_torch_outputs_and_gradients(shape, bias):
    ours, ref = ln_mod.LayerNorm(D, eps=1e-5, bias=bias), nn.LayerNorm(D, eps=1e-5, bias=bias)
    _randomize(ref)
    ours.load_state_dict(ref.state_dict())
    x1 = (torch.randn(shape) * 3 + 2).requires_grad_(True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1, y2 = ours(x1), ref(x2)
    torch.testing.assert_close(y1, y2, **TOL)
    g = torch.randn(shape)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, **TOL)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, **TOL)
    if bias:
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad, **TOL)


def test_layer_norm_default_init_gives_zero_mean_unit_variance():
    y = ln_mod.LayerNorm(D)(torch.randn(4, 6, D) * 5 + 3)
    torch.testing.assert_close(y.mean(-1), torch.zeros(4, 6), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(4, 6), atol=1e-3, rtol=0)


def test_layer_norm_gradcheck_float64():
    ln = ln_mod.LayerNorm(5).double()
    _randomize(ln)
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    # gradcheck perturbs x, weight and bias in place and compares with our backward pass.
    assert torch.autograd.gradcheck(lambda x, w, b: ln(x), (x, ln.weight, ln.bias))


def test_layer_norm_rejects_wrong_feature_size():
    with pytest.raises(ValueError, match="last dim"):
        ln_mod.LayerNorm(D)(torch.randn(2, D + 1))


# ---------------------------------------------------------------- feed-forward


@pytest.mark.parametrize(
    "activation,reference",
    [
        ("relu", F.relu),
        ("gelu", F.gelu),
        ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh")),
    ],
)
def test_feed_forward_equals_two_linears_with_activation(activation, reference):
    ffn = ffn_mod.PositionwiseFeedForward(D, FF, activation=activation)
    x = torch.randn(2, 5, D)
    expected = F.linear(
        reference(F.linear(x, ffn.fc1.weight, ffn.fc1.bias)), ffn.fc2.weight, ffn.fc2.bias
    )
    torch.testing.assert_close(ffn(x), expected, **TOL)


def test_feed_forward_is_position_wise():
    # Same MLP at every position: permuting the positions permutes the outputs, nothing mixes.
    ffn = ffn_mod.PositionwiseFeedForward(D, FF, activation="gelu")
    x = torch.randn(2, 7, D)
    perm = torch.randperm(7)
    torch.testing.assert_close(ffn(x[:, perm]), ffn(x)[:, perm])


def test_feed_forward_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation must be one of"):
        ffn_mod.PositionwiseFeedForward(D, FF, activation="swish")


# ---------------------------------------------------------------- Add & Norm


@pytest.mark.parametrize("norm_first", [False, True])
def test_residual_connection_matches_formula(norm_first):
    block = res_mod.ResidualConnection(D, dropout=0.0, norm_first=norm_first)
    _randomize(block)
    ref_norm = nn.LayerNorm(D)
    ref_norm.load_state_dict(block.norm.state_dict())
    lin = nn.Linear(D, D)
    x = torch.randn(2, 5, D)
    expected = x + lin(ref_norm(x)) if norm_first else ref_norm(x + lin(x))
    torch.testing.assert_close(block(x, lin), expected, **TOL)


def test_pre_norm_keeps_an_identity_path():
    # With a sub-layer that outputs 0, pre-norm returns x unchanged; post-norm normalizes it.
    x = torch.randn(2, 5, D) * 4 + 1
    zero = torch.zeros_like
    pre = res_mod.ResidualConnection(D, norm_first=True)
    post = res_mod.ResidualConnection(D, norm_first=False)
    torch.testing.assert_close(pre(x, zero), x)
    torch.testing.assert_close(post(x, zero), F.layer_norm(x, (D,)))


# ---------------------------------------------------------------- blocks vs torch


def _encoder_pair(norm_first, activation):
    torch.manual_seed(0)
    ref = nn.TransformerEncoderLayer(
        D, H, FF, dropout=0.1, activation=activation, batch_first=True, norm_first=norm_first
    ).eval()
    _randomize(ref)
    ours = enc_mod.EncoderBlock(
        D, H, FF, dropout=0.1, activation=activation, norm_first=norm_first
    ).eval()
    enc_mod.copy_weights_from_torch(ours, ref)
    return ours, ref


def _decoder_pair(norm_first, activation):
    torch.manual_seed(0)
    ref = nn.TransformerDecoderLayer(
        D, H, FF, dropout=0.1, activation=activation, batch_first=True, norm_first=norm_first
    ).eval()
    _randomize(ref)
    ours = dec_mod.DecoderBlock(
        D, H, FF, dropout=0.1, activation=activation, norm_first=norm_first
    ).eval()
    dec_mod.copy_weights_from_torch(ours, ref)
    return ours, ref


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_block_equals_torch(norm_first, activation):
    ours, ref = _encoder_pair(norm_first, activation)
    x = torch.randn(3, 6, D)
    keep = padding_mask(torch.tensor([6, 4, 2]), 6)  # (B, 1, 1, T), True = real token
    # torch's bool masks: True = ignore
    torch.testing.assert_close(
        ours(x, mask=keep), ref(x, src_key_padding_mask=~keep[:, 0, 0]), **TOL
    )
    torch.testing.assert_close(ours(x), ref(x), **TOL)
    causal = causal_mask(6)
    torch.testing.assert_close(
        ours(x, mask=causal & keep),
        ref(x, src_mask=~causal, src_key_padding_mask=~keep[:, 0, 0]),
        **TOL,
    )
    with torch.no_grad():  # torch's inference fast path must agree too
        torch.testing.assert_close(
            ours(x, mask=keep), ref(x, src_key_padding_mask=~keep[:, 0, 0]), **TOL
        )


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_block_gradients_equal_torch(norm_first):
    ours, ref = _encoder_pair(norm_first, "relu")
    x1 = torch.randn(2, 5, D, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    ours(x1).square().sum().backward()
    ref(x2).square().sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        ours.ffn.fc1.weight.grad, ref.linear1.weight.grad, atol=1e-4, rtol=1e-4
    )


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_decoder_block_equals_torch(norm_first, activation):
    ours, ref = _decoder_pair(norm_first, activation)
    B, T, S = 3, 5, 7
    x, memory = torch.randn(B, T, D), torch.randn(B, S, D)
    tgt_keep = padding_mask(torch.tensor([5, 3, 1]), T)
    src_keep = padding_mask(torch.tensor([7, 2, 5]), S)
    out, w_self, w_cross = ours(
        x, memory, self_attn_mask=tgt_keep, cross_attn_mask=src_keep, return_weights=True
    )
    expected = ref(
        x,
        memory,
        tgt_mask=~causal_mask(T),
        tgt_key_padding_mask=~tgt_keep[:, 0, 0],
        memory_key_padding_mask=~src_keep[:, 0, 0],
    )
    torch.testing.assert_close(out, expected, **TOL)
    assert w_self.shape == (B, H, T, T) and w_cross.shape == (B, H, T, S)
    assert (w_self.triu(1) == 0).all()  # no position looks ahead
    assert (w_cross.masked_select(~src_keep.expand_as(w_cross)) == 0).all()
    # causal=False with no masks: plain (unmasked) self-attention, as torch without tgt_mask
    torch.testing.assert_close(ours(x, memory, causal=False), ref(x, memory), **TOL)


@pytest.mark.parametrize("norm_first", [False, True])
def test_stacks_equal_torch_encoder_and_decoder(norm_first):
    torch.manual_seed(0)
    n = 3
    ref_layer = nn.TransformerEncoderLayer(D, H, FF, batch_first=True, norm_first=norm_first)
    ref_enc = nn.TransformerEncoder(
        ref_layer, n, norm=nn.LayerNorm(D) if norm_first else None, enable_nested_tensor=False
    ).eval()
    ref_dlayer = nn.TransformerDecoderLayer(D, H, FF, batch_first=True, norm_first=norm_first)
    ref_dec = nn.TransformerDecoder(ref_dlayer, n, norm=nn.LayerNorm(D) if norm_first else None)
    ref_dec.eval()
    _randomize(ref_enc, std=0.2, seed=1)  # torch deep-copies the layer: make the layers differ
    _randomize(ref_dec, std=0.2, seed=2)
    enc = enc_mod.Encoder(n, D, H, FF, norm_first=norm_first).eval()
    dec = dec_mod.Decoder(n, D, H, FF, norm_first=norm_first).eval()
    for ours, theirs in zip(enc.layers, ref_enc.layers, strict=True):
        enc_mod.copy_weights_from_torch(ours, theirs)
    for ours, theirs in zip(dec.layers, ref_dec.layers, strict=True):
        dec_mod.copy_weights_from_torch(ours, theirs)
    if norm_first:
        enc.norm.load_state_dict(ref_enc.norm.state_dict())
        dec.norm.load_state_dict(ref_dec.norm.state_dict())
    src, tgt = torch.randn(2, 7, D), torch.randn(2, 4, D)
    keep = padding_mask(torch.tensor([7, 3]), 7)
    memory = enc(src, mask=keep)
    torch.testing.assert_close(memory, ref_enc(src, src_key_padding_mask=~keep[:, 0, 0]), **TOL)
    out = dec(tgt, memory, cross_attn_mask=keep)
    ref_out = ref_dec(tgt, memory, tgt_mask=~causal_mask(4), memory_key_padding_mask=~keep[:, 0, 0])
    torch.testing.assert_close(out, ref_out, **TOL)


def test_stacked_blocks_keep_shapes_and_respect_masks():
    torch.manual_seed(0)
    enc = enc_mod.Encoder(4, D, H, FF, norm_first=True).eval()
    dec = dec_mod.Decoder(4, D, H, FF, norm_first=False).eval()
    src, tgt = torch.randn(2, 6, D), torch.randn(2, 5, D)
    keep = padding_mask(torch.tensor([6, 3]), 6)
    memory = enc(src, mask=keep)
    out = dec(tgt, memory, cross_attn_mask=keep)
    assert memory.shape == src.shape and out.shape == tgt.shape

    # Padding: changing the padded source tokens changes nothing the decoder outputs,
    # nor the encoder's outputs at real positions.
    src2 = src.clone()
    src2[1, 3:] = torch.randn(3, D) * 10
    memory2 = enc(src2, mask=keep)
    torch.testing.assert_close(memory2[1, :3], memory[1, :3], **TOL)
    torch.testing.assert_close(dec(tgt, memory2, cross_attn_mask=keep), out, **TOL)

    # Causality through 4 decoder layers: changing token 3 leaves positions 0..2 untouched.
    tgt2 = tgt.clone()
    tgt2[:, 3] = torch.randn(2, D) * 10
    out2 = dec(tgt2, memory, cross_attn_mask=keep)
    torch.testing.assert_close(out2[:, :3], out[:, :3], **TOL)
    assert not torch.allclose(out2[:, 3:], out[:, 3:])


def test_copy_refuses_mismatched_norm_placement():
    ref = nn.TransformerEncoderLayer(D, H, FF, batch_first=True, norm_first=True)
    with pytest.raises(ValueError, match="norm_first"):
        enc_mod.copy_weights_from_torch(enc_mod.EncoderBlock(D, H, FF, norm_first=False), ref)


# ----- the demo scripts ---------------------------------------------------------------------
S7 = "sprints.07_transformer_block.results"


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_residual_demo_runs_on_shallow_stacks(depth, capsys):
    # --depth 1 used to crash: the table asked for blocks 1 and depth - 2 that did not exist.
    import_module(f"{S7}.02_residual_connection_example").main(
        ["--depth", str(depth), "--d-model", "16"]
    )
    out = capsys.readouterr().out
    rows = [int(i) for i in re.findall(r"^\s*(\d+) \|", out, flags=re.M)]
    assert rows == sorted({0, 1, depth // 2, depth - 2, depth - 1} & set(range(depth)))
    ratios = re.search(r"ratio: post-norm (\S+), pre-norm (\S+)", out)
    if depth == 1:  # the first block is the last one
        assert ratios.groups() == ("1.00", "1.00")


@pytest.mark.parametrize("name,argv,message", [
    ("02_residual_connection_example", ["--depth", "0"], "whole number of at least 1"),
    ("02_residual_connection_example", ["--depth", "-3"], "whole number of at least 1"),
    ("02_residual_connection_example", ["--d-model", "1"], "at least 2"),
    ("01_layer_norm_example", ["--eps=-1e-5"], "0 or more"),
    ("positionwise_feed_forward", ["--d-ff", "0"], "whole number of at least 1"),
    ("encoder_block", ["--num-layers", "0"], "whole number of at least 1"),
    ("encoder_block", ["--num-heads", "3"], "does not divide --d-model 16"),
    ("decoder_block", ["--d-model", "0"], "whole number of at least 1"),
    ("decoder_block", ["--num-heads", "5"], "does not divide --d-model 16"),
])
def test_scripts_reject_bad_sizes_with_a_usage_message(name, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        import_module(f"{S7}.{name}").main(argv)
    assert exit_info.value.code == 2  # argparse's usage error, before any work starts
    assert message in capsys.readouterr().err


def test_demo_help_does_not_import_torch():
    code = (
        "import runpy, sys\n"
        "for name in ('01_layer_norm_example', '02_residual_connection_example'):\n"
        "    sys.argv = [name, '--help']\n"
        "    try:\n"
        f"        runpy.run_module('{S7}.' + name, run_name='__main__')\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=root).stdout
    assert out.strip().endswith("torch imported: False")
