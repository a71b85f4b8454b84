"""Sprint 10's fast decoding: the flat DecodeStep against the cached forward pass
(cached_forward.py), int8 weights against closed-form bounds and float32, and the q8_0 GGUF
file against llama.cpp."""

from __future__ import annotations

import copy
from importlib import import_module

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.optional_deps import llama_cpp_or_skip

generation = import_module("sprints.10_pretrained_and_generation.results.generation")
decode_step = import_module("sprints.10_pretrained_and_generation.results.decode_step")
quantize = import_module("sprints.10_pretrained_and_generation.results.quantize")
kv_cache_mod = import_module("sprints.10_pretrained_and_generation.results.kv_cache")
cached_forward = import_module("sprints.10_pretrained_and_generation.results.cached_forward")
bf16_prefill = import_module("sprints.10_pretrained_and_generation.results.bf16_prefill")
lora = import_module("sprints.10_pretrained_and_generation.results.lora")
export_gguf = import_module("sprints.10_pretrained_and_generation.results.export_gguf")
generate_cli = import_module("sprints.10_pretrained_and_generation.results.generate")
model_mod = import_module("sprints.08_gpt2_assembly.results.model")
config_mod = import_module("sprints.08_gpt2_assembly.results.config")
utils_mod = import_module("sprints.08_gpt2_assembly.results.utils")
devices = import_module("sprints.01_setup_and_basics.results.devices")

FBGEMM = quantize._int8_activation_kernel_ok()
pytestmark = pytest.mark.usefixtures("one_thread_module")  # tiny models: one thread


def small_gpt(seed=0, std=None, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    shape = dict(vocab_size=64, block_size=32, n_layer=2, n_head=4, n_embd=32)
    model = model_mod.GPT(config_mod.GPTConfig(**{**shape, **overrides})).eval()
    if std is not None:  # every weight, bias and gain: a missed bias or norm would show
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0.0, std)
    return model


# ----- DecodeStep: the same logits as forward_with_cache ------------------------------------

def assert_decode_step_matches(model, batch_size: int, atol: float = 1e-5) -> None:
    """DecodeStep's logits equal forward_with_cache's at each of 7 steps after a prompt."""
    idx = torch.randint(0, 64, (batch_size, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        cache_ref = kv_cache_mod.KVCache.for_model(model, batch_size=batch_size)
        cache = kv_cache_mod.KVCache.for_model(model, batch_size=batch_size)
        cached_forward.forward_with_cache(model, idx[:, :5], cache_ref)
        cached_forward.forward_with_cache(model, idx[:, :5], cache)
        step = decode_step.DecodeStep(model, cache)
        for t in range(5, 12):
            ref = cached_forward.forward_with_cache(model, idx[:, t:t + 1], cache_ref,
                                                    logits_to_keep=1)
            ours = step(idx[:, t:t + 1])  # (B, V)
            assert ours.shape == (batch_size, 64)
            assert torch.allclose(ours, ref[:, 0], atol=atol, rtol=atol), t
        assert cache.length == cache_ref.length == 12
        assert torch.allclose(cache.k[:, :, :, :12], cache_ref.k[:, :, :, :12], atol=1e-6)


@pytest.mark.parametrize("linear", ["mkl", "onednn"])
@pytest.mark.parametrize("overrides", [
    {},
    {"position_encoding": "sinusoidal", "bias": False},
    {"activation": "gelu"},
])
def test_decode_step_equals_the_model_forward(overrides, linear, monkeypatch):
    # Both libraries for the float32 products (MKL's addmm on a transposed view, or
    # oneDNN's inner product on the weight as stored, chosen by CPU): the same logits.
    if linear == "onednn" and not torch.backends.mkldnn.is_available():
        pytest.skip("this PyTorch build has no oneDNN")
    monkeypatch.setattr(decode_step, "_LINEAR", linear)
    for batch_size in (1, 3):
        assert_decode_step_matches(small_gpt(seed=1, std=0.2, **overrides), batch_size)


@pytest.mark.skipif(not FBGEMM, reason="fbgemm (x86) is needed for the one-row int8 kernel")
def test_decode_step_of_an_int8_model_equals_its_forward():
    # One row goes straight to fbgemm's int8 kernel (as Int8Linear.forward does for one
    # row); several rows go through the module (weight-only): the same logits both ways.
    model = quantize.quantize_int8(small_gpt(seed=1, std=0.2))
    for batch_size in (1, 3):
        assert_decode_step_matches(model, batch_size)


def test_decode_step_runs_lora_and_refuses_the_reference_layers():
    model = lora.apply_lora(small_gpt(seed=2, std=0.2), rank=2, alpha=4.0)
    with torch.no_grad():
        for layer in lora.lora_layers(model).values():
            layer.lora_B.weight.normal_(0.0, 0.3)  # B starts at zero: make the adapters count
    fast = generation.generate_all(model, torch.tensor([[1, 2, 3]]), 20, greedy=True)
    slow = generation.generate_all(model, torch.tensor([[1, 2, 3]]), 20, greedy=True,
                                   fast_decode=False)
    assert torch.equal(fast, slow)
    reference = small_gpt().set_fused(False)
    assert not decode_step.supports(reference)
    with pytest.raises(ValueError, match="fused"):
        decode_step.DecodeStep(reference, kv_cache_mod.KVCache.for_model(reference, 1))


def test_fast_and_model_decoding_sample_the_same_tokens():
    model = small_gpt(seed=3)
    prompt = torch.randint(0, 64, (2, 4), generator=torch.Generator().manual_seed(3))
    runs = [generation.generate_all(model, prompt, 25, temperature=0.9, top_k=20,
                                    generator=torch.Generator().manual_seed(7),
                                    fast_decode=fast) for fast in (True, False)]
    assert torch.equal(runs[0], runs[1])


# ----- int8 weights: closed-form bounds ------------------------------------------------------

def test_per_channel_quantization_is_within_half_a_step():
    torch.manual_seed(4)
    w = torch.randn(48, 96) * torch.logspace(-2, 1, 48)[:, None]  # rows of very different size
    w[5] = 0.0  # an all-zero row must not divide by zero
    q, scales = quantize.quantize_per_channel(w)
    assert q.dtype == torch.int8 and q.abs().max() <= 127
    assert torch.equal(scales, scales.half().float())  # float16 scales, as q8_0 stores them
    error = (quantize.dequantize(q, scales) - w).abs()
    assert (error <= scales[:, None] / 2 + 1e-12).all()
    assert (q[torch.arange(48) != 5].abs().amax(dim=1) >= 126).all()  # the range is used
    assert (q[5] == 0).all()


def test_int8_linear_rows_are_weight_only_and_one_row_is_bounded():
    torch.manual_seed(5)
    linear = torch.nn.Linear(64, 40)
    layer = quantize.Int8Linear.from_linear(linear)
    w = quantize.dequantize(layer.q, layer.scales)
    x = torch.randn(2, 3, 64)
    # several rows, weight-only: exactly x @ dequantized W.T + b (float activations)
    expected = F.linear(x, w, linear.bias.detach())
    weight_only = quantize.Int8Linear.from_linear(linear, int8_activations=False)
    assert torch.allclose(weight_only(x), expected, atol=1e-5)
    # the default takes bfloat16 products where the CPU has bfloat16 hardware; forced on
    # here so that every CPU checks it. Rounding x to bfloat16 moves each x_i by at most
    # 2^-9 |x_i| (q is exact), and the bfloat16 result moves by at most 2^-9 of itself.
    assert layer.bf16_rows == devices.cpu_has_fast_bf16()
    layer.bf16_rows = True
    no_bias = expected - linear.bias.detach()
    bound = 2.0**-9 * (F.linear(x.abs(), w.abs()) + no_bias.abs() * (1 + 2.0**-8)) + 1e-5
    error = (layer(x) - expected).abs()
    assert (error <= bound).all() and error.max() > 0
    assert layer(x).dtype == torch.float32
    if not FBGEMM:
        pytest.skip("fbgemm (x86) is needed for the one-row int8-activation kernel")
    one = torch.randn(1, 64)
    out = layer(one)
    # the row is quantized to 256 levels over its range (128 without VNNI: reduce_range):
    # each value moves by at most half a level, so output j moves by at most that times
    # sum_i |W[j, i]|
    step = (one.max() - one.min()) / (127 if quantize.REDUCE_RANGE else 255)
    bound = step / 2 * w.abs().sum(dim=1) + 1e-4
    error = (out - F.linear(one, w, linear.bias.detach())).abs()[0]
    assert (error <= bound).all() and error.max() > 0  # quantized, and within the bound
    assert torch.allclose(weight_only(one), F.linear(one, w, linear.bias.detach()), atol=1e-5)


def test_quantize_int8_keeps_the_tie_and_shrinks_the_model():
    model = small_gpt(seed=6)
    before = quantize.weight_bytes(model)
    qmodel = quantize.quantize_int8(copy.deepcopy(model))
    assert isinstance(qmodel.lm_head, quantize.Int8Linear)
    assert qmodel.lm_head.q is qmodel.transformer.wte.q  # one int8 matrix, two uses
    assert not any(isinstance(m, torch.nn.Linear) for m in qmodel.modules())
    # matrices at 1 byte instead of 4; LayerNorms, biases and positions stay float32
    assert quantize.weight_bytes(qmodel) < 0.45 * before
    with pytest.raises(ValueError, match="float"):
        quantize.quantize_int8(copy.deepcopy(model), torch.int32)


@pytest.fixture(scope="module")
def trained():
    """A small GPT trained for 150 steps on a text with structure (a repeating phrase with
    counters), so that its predictions are confident and perplexity means something."""
    torch.manual_seed(8)
    words = [f"{i % 7} {i % 5} {(i * 3) % 11} ;" for i in range(400)]
    text = " ".join(words)
    chars = sorted(set(text))
    data = torch.tensor([chars.index(c) for c in text])
    model = model_mod.GPT(config_mod.GPTConfig(vocab_size=len(chars), block_size=64,
                                               n_layer=2, n_head=4, n_embd=64))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        starts = torch.randint(0, len(data) - 65, (16,))
        x = torch.stack([data[s:s + 64] for s in starts])
        y = torch.stack([data[s + 1:s + 65] for s in starts])
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), data


def test_int8_perplexity_stays_within_one_percent_of_float32(trained):
    model, data = trained
    qmodel = quantize.quantize_int8(copy.deepcopy(model))
    x = data[:-1][: 8 * 64].view(8, 64)
    y = data[1:][: 8 * 64].view(8, 64)
    with torch.no_grad():
        loss_fp32 = model(x, y)[1].item()
        loss_int8 = qmodel(x, y)[1].item()
    assert loss_fp32 < 1.5  # trained: far below ln(12 characters) = 2.5
    # perplexity exp(loss): a relative change of exp(d) - 1
    assert abs(np.exp(loss_int8 - loss_fp32) - 1) < 0.01, (loss_fp32, loss_int8)
    # the decoding path (int8 activations for each one-token step) too
    prompt = data[None, :8]
    fp32_tokens = generation.generate_all(model, prompt, 40, greedy=True)
    int8_tokens = generation.generate_all(qmodel, prompt, 40, greedy=True)
    assert (fp32_tokens == int8_tokens).float().mean() > 0.95


def test_cli_quantize_int8(tmp_path, capsys):
    model = small_gpt(seed=9, vocab_size=50257)
    path = tmp_path / "model.pt"
    utils_mod.save_checkpoint(path, model=model.state_dict(), config=model.config.to_dict(),
                              step=0, extra={"tokenizer": {"type": "gpt2"}})
    generate_cli.main(["--checkpoint", str(path), "--prompt", "Hello", "--max-new-tokens",
                       "5", "--greedy", "--quantize", "int8"])
    err = capsys.readouterr().err
    assert "int8 weights" in err and "5 tokens in" in err


# ----- q8_0: the same int8 weights in llama.cpp's format ------------------------------------

@pytest.fixture(scope="module")
def gguf_model():
    model = small_gpt(seed=10, std=0.1, vocab_size=50257, block_size=64, n_embd=64)
    return model


def test_q8_0_file_holds_exactly_our_int8_weights(gguf_model, tmp_path):
    gguf = pytest.importorskip("gguf")
    path = export_gguf.write_gguf(gguf_model, tmp_path / "m.gguf", "q8_0")
    f32 = export_gguf.write_gguf(gguf_model, tmp_path / "f.gguf", "f32")
    assert path.stat().st_size < 0.4 * f32.stat().st_size  # 34 bytes per 32 weights
    tensors = {t.name: t for t in gguf.GGUFReader(str(path)).tensors}
    checks = {"token_embd.weight": gguf_model.transformer.wte.weight,
              "blk.1.ffn_down.weight": gguf_model.transformer.h[1].mlp.c_proj.weight}
    for name, weight in checks.items():
        t = tensors[name]
        assert t.tensor_type == gguf.GGMLQuantizationType.Q8_0
        theirs = gguf.quants.dequantize(t.data, t.tensor_type).reshape(weight.shape)
        q, scales = quantize.quantize_per_channel(weight)
        assert np.array_equal(theirs, quantize.dequantize(q, scales).numpy()), name
    assert tensors["position_embd.weight"].tensor_type == gguf.GGMLQuantizationType.F32


def test_llama_cpp_reproduces_our_int8_logits_from_q8_0(gguf_model, tmp_path):
    llama_cpp_or_skip()
    path = export_gguf.write_gguf(gguf_model, tmp_path / "m.gguf", "q8_0")
    ids = torch.randint(0, 50257, (24,), generator=torch.Generator().manual_seed(11)).tolist()
    qmodel = quantize.quantize_int8(copy.deepcopy(gguf_model))
    with torch.no_grad():
        ours = qmodel(torch.tensor([ids]))[0][0].numpy()  # (T, V)
        fp32 = gguf_model(torch.tensor([ids]))[0][0].numpy()
    llm = export_gguf.open_with_llama_cpp(path, logits_all=True, n_ctx=64)
    try:
        llm.eval(ids)
        theirs = np.array(llm.scores[: len(ids)])
    finally:
        llm.close()
    # llama.cpp also rounds the activations to 8 bits (per 32 values) before each q8_0
    # matmul; our 24-row forward keeps them float. Logits here span about +-0.6.
    diff = np.abs(theirs - ours).max()
    assert diff < 0.01, diff
    assert np.abs(theirs - fp32).max() < 0.02
    agree = theirs.argmax(-1) == ours.argmax(-1)
    top2 = np.sort(ours, axis=-1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) > 2 * diff
    assert agree[decisive].all() and decisive.sum() >= 12


# ----- bf16_prefill: float32 products for a bfloat16 prompt -----------------------------------

def test_bf16_prefill_multiplies_many_rows_in_float32_and_then_restores(monkeypatch):
    monkeypatch.setattr(bf16_prefill._devices, "cpu_has_fast_bf16", lambda: False)
    torch.manual_seed(0)
    layer = nn.Linear(32, 48).to(torch.bfloat16)
    many = torch.randn(2, bf16_prefill.MIN_ROWS, 32, dtype=torch.bfloat16)  # 16 rows
    few = torch.randn(1, 32, dtype=torch.bfloat16)
    w, b = layer.weight.float(), layer.bias.float()
    with torch.no_grad(), bf16_prefill.float32_linears(layer):
        assert torch.equal(layer(many), F.linear(many.float(), w, b).to(torch.bfloat16))
        assert torch.equal(layer(few), F.linear(few, layer.weight, layer.bias))  # unchanged
        bf16_result = F.linear(many, layer.weight, layer.bias)
        # the bfloat16 product agrees to bfloat16's rounding (8 significant bits)
        assert torch.allclose(layer(many).float(), bf16_result.float(), rtol=2 ** -7, atol=1e-2)
    assert "forward" not in vars(layer)  # nn.Linear.forward again
    with pytest.raises(RuntimeError), bf16_prefill.float32_linears(layer):
        raise RuntimeError("an error inside the block")
    assert "forward" not in vars(layer)
    # nested blocks (two threads generating with one model): the patch stays until the last
    with bf16_prefill.float32_linears(layer):
        with bf16_prefill.float32_linears(layer):
            pass
        assert "forward" in vars(layer)
    assert "forward" not in vars(layer)
    # a float32 model, or a CPU with bfloat16 arithmetic: nothing is patched
    assert not bf16_prefill.needed(nn.Linear(4, 4))
    monkeypatch.setattr(bf16_prefill._devices, "cpu_has_fast_bf16", lambda: True)
    assert not bf16_prefill.needed(layer)


def test_generation_of_a_bf16_model_is_the_same_with_float32_prefill(monkeypatch):
    model = small_gpt(seed=4, std=0.2).to(torch.bfloat16)
    prompt = torch.randint(0, 64, (1, 20), generator=torch.Generator().manual_seed(4))
    float32_calls = []
    original = bf16_prefill._float32_linear
    monkeypatch.setattr(bf16_prefill, "_float32_linear",
                        lambda m, x: float32_calls.append(x.shape) or original(m, x))
    # a prompt longer than the compiled step takes: PyTorch prefills it
    monkeypatch.setattr(generation.numba_step, "MAX_PREFILL_ROWS", 8)
    runs = {}
    for fast_bf16 in (True, False):  # False: the prefill multiplies in float32
        monkeypatch.setattr(bf16_prefill._devices, "cpu_has_fast_bf16", lambda f=fast_bf16: f)
        runs[fast_bf16] = generation.generate_all(model, prompt, 12, greedy=True)
        # every linear layer of the 20-token prefill (2 blocks x 4, and the LM head's one row)
        assert len(float32_calls) == (0 if fast_bf16 else 9)
    assert torch.equal(runs[True], runs[False])


# ----- the cache of a finished call is reused by the next -------------------------------------

def test_generate_reuses_the_cache_of_a_finished_call_but_never_shares_one():
    model = small_gpt(seed=12, std=0.2)
    prompt = torch.randint(0, 64, (2, 5), generator=torch.Generator().manual_seed(12))
    first = generation.generate_all(model, prompt, 10, greedy=True)
    kept = generation._spare_caches[model]
    assert kept.fits(model, 2) and not kept.fits(model, 1)
    assert not kept.fits(model, 2, torch.bfloat16)
    assert generation.generate_all(model, prompt, 10, greedy=True).equal(first)
    assert generation._spare_caches[model] is kept  # the same memory, taken and given back
    # two generations interleaved on one model: each takes its own cache
    a = generation.generate(model, prompt, 10, greedy=True)
    b = generation.generate(model, prompt[:, :3], 10, greedy=True)
    out_a, out_b = [], []
    for _ in range(10):
        out_a.append(next(a))
        out_b.append(next(b))
    assert torch.stack(out_a, 1).equal(first[:, 5:])
    assert torch.stack(out_b, 1).equal(
        generation.generate_all(model, prompt[:, :3], 10, greedy=True, fast_decode=False)[:, 3:])
    # a cache of another shape (batch size) is not taken: a new one is made
    one_row = generation.generate_all(model, prompt[:1], 10, greedy=True)
    assert one_row.equal(first[:1]) and generation._spare_caches[model].batch_size == 1


# --- openmp_runtime.py: the warning for torch on another package's libgomp ---------------

openmp_runtime = import_module("sprints.10_pretrained_and_generation.results.openmp_runtime")

_MAPS_LINE = "7f00-7f10 r-xp 00000000 08:01 123   {}\n"


def test_foreign_libgomp_reads_a_maps_listing():
    own = "/venv/torch/lib/libgomp.so.1"
    system = "/usr/lib/x86_64-linux-gnu/libgomp.so.1.0.0"
    libc = _MAPS_LINE.format("/usr/lib/x86_64-linux-gnu/libc.so.6") + "7f20-7f30 rw-p 0 0:0 0\n"
    assert openmp_runtime.loaded_libgomp(libc + _MAPS_LINE.format(system)) == {system}
    assert openmp_runtime.foreign_libgomp(libc + _MAPS_LINE.format(system), own) == system
    assert openmp_runtime.foreign_libgomp(libc + _MAPS_LINE.format(own), own) is None
    assert openmp_runtime.foreign_libgomp(libc, own) is None  # none loaded: nothing to say
    assert openmp_runtime.foreign_libgomp(libc + _MAPS_LINE.format(system), None) is None


def _probe(load_system_first: bool) -> str:
    """In a fresh interpreter: optionally load the system's libgomp, import torch, and print
    what foreign_openmp() finds ('' for None)."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import ctypes\n" + ("ctypes.CDLL('libgomp.so.1')\n" if load_system_first else "")
            + "import torch\nfrom importlib import import_module\n"
            "m = import_module('sprints.10_pretrained_and_generation.results.openmp_runtime')\n"
            "print(m.foreign_openmp() or '')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True, cwd=Path(__file__).resolve().parents[1])
    return done.stdout.strip()


def test_foreign_openmp_sees_the_system_libgomp_loaded_before_torch():
    import ctypes.util
    import sys

    if openmp_runtime._torch_libgomp() is None or not sys.platform.startswith("linux"):
        pytest.skip("this torch ships no libgomp.so.1 (not a Linux wheel)")
    if ctypes.util.find_library("gomp") is None:
        pytest.skip("no system libgomp to load before torch")
    assert _probe(load_system_first=False) == ""
    foreign = _probe(load_system_first=True)
    assert foreign and "libgomp" in foreign
    assert foreign != openmp_runtime._torch_libgomp()


def test_warn_if_foreign_warns_once(monkeypatch):
    monkeypatch.setattr(openmp_runtime, "foreign_openmp", lambda: "/usr/lib/libgomp.so.1")
    openmp_runtime.warn_if_foreign.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="import torch first"):
            assert openmp_runtime.warn_if_foreign() == "/usr/lib/libgomp.so.1"
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            openmp_runtime.warn_if_foreign()  # cached: no second warning
    finally:
        openmp_runtime.warn_if_foreign.cache_clear()
