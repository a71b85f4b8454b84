"""Sprint 10's compiled decoding step (numba_step.py) against the cached forward pass, and
huge_pages.py against the kernel's own account of the process's memory (/proc/self/smaps)."""

from __future__ import annotations

import copy
from importlib import import_module

import numpy as np
import pytest
import torch

numba = pytest.importorskip("numba")

numba_step = import_module("sprints.10_pretrained_and_generation.results.numba_step")
huge_pages = import_module("sprints.10_pretrained_and_generation.results.huge_pages")
generation = import_module("sprints.10_pretrained_and_generation.results.generation")
quantize = import_module("sprints.10_pretrained_and_generation.results.quantize")
lora = import_module("sprints.10_pretrained_and_generation.results.lora")
kv_cache_mod = import_module("sprints.10_pretrained_and_generation.results.kv_cache")
cached_forward = import_module("sprints.10_pretrained_and_generation.results.cached_forward")
model_mod = import_module("sprints.08_gpt2_assembly.results.model")
config_mod = import_module("sprints.08_gpt2_assembly.results.config")

pytestmark = pytest.mark.usefixtures("one_thread_module")  # tiny models: one thread


def small_gpt(seed=0, std=0.2, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    shape = dict(vocab_size=64, block_size=32, n_layer=2, n_head=4, n_embd=32)
    model = model_mod.GPT(config_mod.GPTConfig(**{**shape, **overrides})).eval()
    with torch.no_grad():  # every weight, bias and gain random: a missed one would show
        for p in model.parameters():
            p.normal_(0.0, std)
    return model


def compare_steps(model, reference, batch_size: int, atol: float, cache_atol: float):
    """NumbaStep on ``model`` vs forward_with_cache on ``reference`` over 12 tokens fed in
    chunks: a 5-token prompt, single steps, and a 3-token block in between (several new
    tokens attend causally to each other); returns the largest logit difference."""
    idx = torch.randint(0, 64, (batch_size, 12), generator=torch.Generator().manual_seed(1))
    worst = 0.0
    with torch.no_grad():
        ours_cache = kv_cache_mod.KVCache.for_model(model, batch_size)
        ref_cache = kv_cache_mod.KVCache.for_model(reference, batch_size)
        step = numba_step.NumbaStep(model, ours_cache)
        for start, end in ((0, 5), (5, 6), (6, 9), (9, 10), (10, 11), (11, 12)):
            ref = cached_forward.forward_with_cache(reference, idx[:, start:end], ref_cache,
                                                    logits_to_keep=1)[:, 0].float()
            ours = step(idx[:, start:end])
            assert ours.shape == (batch_size, 64) and ours.dtype == torch.float32
            worst = max(worst, (ours - ref).abs().max().item())
            assert torch.allclose(ours, ref, atol=atol, rtol=0), (start, worst)
            assert ours_cache.length == ref_cache.length == end
        for ours_kv, ref_kv in ((ours_cache.k, ref_cache.k), (ours_cache.v, ref_cache.v)):
            diff = (ours_kv[:, :, :, :12].float() - ref_kv[:, :, :, :12].float()).abs().max()
            assert diff <= cache_atol, diff
    return worst


@pytest.mark.parametrize("overrides", [
    {},
    {"position_encoding": "sinusoidal", "bias": False},
    {"activation": "gelu"},
])
def test_numba_step_equals_the_cached_forward_in_float32(overrides):
    model = small_gpt(seed=1, **overrides)
    assert numba_step.supports(model, kv_cache_mod.KVCache.for_model(model, 1))
    for batch_size in (1, 3):
        compare_steps(model, model, batch_size, atol=1e-5, cache_atol=1e-6)


def test_numba_step_of_a_bf16_model_computes_in_float32_with_its_bf16_weights():
    # the independent reference: the same bf16 weight values held in float32, float32
    # arithmetic (what NumbaStep does; only its cache stores bf16)
    model = small_gpt(seed=2).to(torch.bfloat16)
    as_float = copy.deepcopy(model).float()
    worst = compare_steps(model, as_float, 3, atol=0.03, cache_atol=0.03)
    # and it is closer to that float32 math than PyTorch's own bf16 forward is
    bf16_worst = 0.0
    idx = torch.randint(0, 64, (3, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(idx)[0].float()
        ref = as_float(idx)[0]
        bf16_worst = (ours - ref).abs().max().item()
    assert worst < bf16_worst, (worst, bf16_worst)


def test_bf16_rounding_is_round_to_nearest_even_like_torch():
    @numba.njit
    def narrow_all(values, dst):
        for i in range(values.size):
            dst[i] = numba_step._narrow(values[i], dst)

    rng = np.random.default_rng(0)
    values = rng.standard_normal(20_000).astype(np.float32) * 10.0 ** rng.integers(-6, 6, 20_000)
    # exact ties: a float32 whose lower 16 bits are 0x8000 rounds to the even upper half
    ties = (np.arange(1, 200, dtype=np.uint32) << 16 | 0x8000).view(np.float32)
    values = np.concatenate([values, ties, -ties]).astype(np.float32)
    out = np.empty(values.size, np.uint16)
    narrow_all(values, out)
    expected = torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy()
    assert np.array_equal(out, expected.view(np.uint16))


def test_numba_step_of_an_int8_model_matches_its_weight_only_math():
    # Int8Linear's weight-only math (int8_activations=False: int8 weights x float32
    # activations, scaled per row); NumbaStep rounds each activation to int16 within its
    # block (an error of at most 1/65534 of the block's largest value, bounded exactly in
    # the next test), which moves these logits by about 3e-5
    model = quantize.quantize_int8(small_gpt(seed=3))
    weight_only = quantize.quantize_int8(small_gpt(seed=3), int8_activations=False)
    for batch_size in (1, 3):
        compare_steps(model, weight_only, batch_size, atol=2e-4, cache_atol=1e-4)


@numba.njit
def _int8_product(x, w, scale, bias, out, xq, xs):
    numba_step._product(x, w, scale, bias, out, 0, xq, xs)  # 0: store, no epilogue


@pytest.mark.parametrize("k", [768, 3072, 40])  # whole blocks of 256, and one short block
def test_int8_product_is_within_the_int16_rounding_bound(k):
    rng = np.random.default_rng(k)
    n, rows = 48, 3
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    scale = rng.uniform(0.001, 0.01, n).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    x = rng.standard_normal((rows, k)).astype(np.float32)
    x[0, 7] = 300.0  # an outlier (GPT-2's residual stream has them): only its block's step grows
    x[1] = 0.0  # an all-zero row
    out = np.empty((rows, n), np.float32)
    blocks = -(-k // numba_step.QBLOCK)
    xq, xs = np.empty(rows * k, np.int16), np.empty(rows * blocks, np.float32)
    _int8_product(x, w, scale, bias, out, xq, xs)
    exact = (x.astype(np.float64) @ w.T.astype(np.float64)) * scale + bias
    # each x is rounded to the nearest multiple of its block's step = max|x| / 32767
    qb = numba_step.QBLOCK
    steps = np.stack([np.abs(x[:, c * qb:(c + 1) * qb]).max(axis=1) / 32767
                      for c in range(blocks)], axis=1)  # (rows, blocks)
    per_input = np.repeat(steps, qb, axis=1)[:, :k] / 2  # (rows, k): the largest error
    bound = (per_input @ np.abs(w.T).astype(np.float64)) * scale  # (rows, n)
    float_slack = 1e-6 * (np.abs(x) @ np.abs(w.T).astype(np.float64)) * scale + 1e-6
    assert np.all(np.abs(out - exact) <= bound + float_slack)
    assert np.array_equal(out[1], bias)  # zeros are exact
    # inputs already on the int16 grid are multiplied exactly (up to float32 rounding)
    grid = (rng.integers(-32767, 32768, (rows, k)) / 1024).astype(np.float32)
    grid[:, ::qb] = 32767 / 1024  # each block's largest value sets the step to 1/1024
    _int8_product(grid, w, scale, bias, out, xq, xs)
    exact = (grid.astype(np.float64) @ w.T.astype(np.float64)) * scale + bias
    float_slack = 1e-6 * (np.abs(grid) @ np.abs(w.T).astype(np.float64)) * scale + 1e-6
    assert np.all(np.abs(out - exact) <= float_slack)


def test_generate_uses_numba_step_and_falls_back_where_it_does_not_apply(monkeypatch):
    model = small_gpt(seed=4)
    prompt = torch.randint(0, 64, (2, 4), generator=torch.Generator().manual_seed(4))
    calls = []
    original = numba_step.NumbaStep.__call__
    monkeypatch.setattr(numba_step.NumbaStep, "__call__",
                        lambda self, idx: calls.append(idx.shape) or original(self, idx))
    fast = generation.generate_all(model, prompt, 20, greedy=True)
    slow = generation.generate_all(model, prompt, 20, greedy=True, fast_decode=False)
    # the prompt (8 rows, within max_prefill_rows) is prefilled by NumbaStep too; the
    # first new token comes from the prompt's logits, 19 steps give the rest
    assert torch.equal(fast, slow) and calls == [(2, 4)] + [(2, 1)] * 19
    calls.clear()  # a prompt of more rows than max_prefill_rows goes through PyTorch
    long_prompt = torch.randint(0, 64, (2, 20), generator=torch.Generator().manual_seed(5))
    with monkeypatch.context() as patch:
        patch.setattr(numba_step, "MAX_PREFILL_ROWS", 39)
        long_fast = generation.generate_all(model, long_prompt, 3, greedy=True)
    assert calls == [(2, 1)] * 2
    assert torch.equal(long_fast, generation.generate_all(model, long_prompt, 3, greedy=True,
                                                          fast_decode=False))
    sampled = [generation.generate_all(model, prompt, 20, temperature=0.9, top_k=20,
                                       generator=torch.Generator().manual_seed(7),
                                       fast_decode=fast) for fast in (True, False)]
    assert torch.equal(sampled[0], sampled[1])
    cache = kv_cache_mod.KVCache.for_model(model, 1)
    # LoRA layers and the reference (unfused) layers: DecodeStep or forward_with_cache
    assert not numba_step.supports(lora.apply_lora(small_gpt(), rank=2, alpha=4.0), cache)
    assert not numba_step.supports(small_gpt().set_fused(False), cache)
    with pytest.raises(ValueError, match="all nn.Linear or all Int8Linear"):
        numba_step.NumbaStep(small_gpt().set_fused(False), cache)
    monkeypatch.setenv("GEN_STEP", "torch")
    assert not numba_step.supports(model, cache)
    monkeypatch.setenv("GEN_STEP", "fast")
    with pytest.raises(ValueError, match="GEN_STEP must be numba or torch"):
        numba_step.supports(model, cache)


def test_numba_step_refuses_a_full_cache_and_bad_ids():
    model = small_gpt(seed=5)
    cache = kv_cache_mod.KVCache.for_model(model, 1)
    step = numba_step.NumbaStep(model, cache)
    with pytest.raises(ValueError, match="token ids must be in 0..63"):
        step(torch.tensor([[64]]))
    cache.length = cache.max_len - 1
    with pytest.raises(ValueError, match="2 new tokens do not fit: the cache holds 31 of 32"):
        step(torch.tensor([[1, 2]]))


# ----- huge_pages: the same tensors in memory with 2 MB pages --------------------------------

def anon_huge_kb(address: int) -> int | None:
    """AnonHugePages of the mapping of this process that contains ``address`` (kB), as the
    kernel reports it in /proc/self/smaps."""
    current = None
    for line in open("/proc/self/smaps", encoding="utf-8"):
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            start, end = (int(a, 16) for a in head.split("-"))
            current = start <= address < end
        elif current and line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    return None


def test_use_huge_pages_keeps_values_ties_and_parameters():
    model = small_gpt(seed=6, vocab_size=32768, n_embd=64, block_size=64)  # wte: 8 MB
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = {id(p) for p in model.parameters()}
    if not huge_pages.helps():
        assert huge_pages.use_huge_pages(model) == 0
        pytest.skip("this system does not hand out huge pages on request (madvise)")
    moved = huge_pages.use_huge_pages(model)
    assert moved >= 32768 * 64 * 4  # the tied embedding, once
    assert model.lm_head.weight is model.transformer.wte.weight
    assert huge_pages.on_huge_pages(model.transformer.wte.weight)
    assert {id(p) for p in model.parameters()} == params  # same Parameter objects
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert huge_pages.use_huge_pages(model) == 0  # already there
    # the kernel's account: a block as large as a KV cache, once written, uses 2 MB pages
    # (numpy asks for its 2 MB-aligned interior, a mapping of its own: look in the middle;
    # 64 MB is above glibc's largest threshold for serving a request from the heap)
    cache_like = huge_pages.empty_like(torch.empty(16 << 20))
    cache_like.fill_(1.0)
    assert huge_pages.on_huge_pages(cache_like)
    assert anon_huge_kb(cache_like.data_ptr() + (32 << 20)) > 0
    # an int8 model's tied matrix stays one buffer
    qmodel = quantize.quantize_int8(small_gpt(seed=6, vocab_size=8192, n_embd=64))
    huge_pages.use_huge_pages(qmodel)
    assert qmodel.lm_head.q is qmodel.transformer.wte.q
    assert huge_pages.on_huge_pages(qmodel.lm_head.q)
