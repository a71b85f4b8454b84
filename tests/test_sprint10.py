"""Sprint 10: sampling filters, the KV cache, generation, the generate.py CLI, LoRA
fine-tuning and GGUF export.

References are independent of the code under test: NumPy/brute force for the filters,
scipy's chi-square test for the sampler, the model's own uncached forward pass for the
cache, ``transformers.GPT2LMHeadModel.generate`` for greedy decoding, ``peft``'s LoRA on
``GPT2LMHeadModel`` for the adapters, and llama.cpp (``llama-cpp-python``) for GGUF files.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.optional_deps import llama_cpp_or_skip

sampling = import_module("sprints.10_pretrained_and_generation.results.sampling")
kv_cache_mod = import_module("sprints.10_pretrained_and_generation.results.kv_cache")
cached_forward = import_module("sprints.10_pretrained_and_generation.results.cached_forward")
generation = import_module("sprints.10_pretrained_and_generation.results.generation")
decode_step = import_module("sprints.10_pretrained_and_generation.results.decode_step")
quantize = import_module("sprints.10_pretrained_and_generation.results.quantize")
generate_cli = import_module("sprints.10_pretrained_and_generation.results.generate")
lora = import_module("sprints.10_pretrained_and_generation.results.lora")
finetune = import_module("sprints.10_pretrained_and_generation.results.finetune")
export_gguf = import_module("sprints.10_pretrained_and_generation.results.export_gguf")
devices = import_module("sprints.01_setup_and_basics.results.devices")
model_mod = import_module("sprints.08_gpt2_assembly.results.model")
config_mod = import_module("sprints.08_gpt2_assembly.results.config")
tokenizer_mod = import_module("sprints.08_gpt2_assembly.results.tokenizer")
utils_mod = import_module("sprints.08_gpt2_assembly.results.utils")

KVCache = kv_cache_mod.KVCache
forward_with_cache = cached_forward.forward_with_cache
REPO_ROOT = Path(__file__).resolve().parents[1]


def assert_close(actual, expected, atol, rtol):
    # torch.testing.assert_close costs seconds of imports on its first call; this is enough.
    assert actual.shape == expected.shape
    diff = (actual - expected).abs().max().item()
    assert torch.allclose(actual, expected, atol=atol, rtol=rtol), f"max abs diff {diff}"


pytestmark = pytest.mark.usefixtures("one_thread_module")  # tiny models: one thread


def tiny_gpt(seed=0, block_size=16, vocab_size=37, std=None) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = config_mod.GPTConfig(
        vocab_size=vocab_size, block_size=block_size, n_layer=2, n_head=2, n_embd=16
    )
    model = model_mod.GPT(cfg).eval()
    if std is not None:  # wider weights: decisive argmaxes, so greedy paths cannot tie
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() == 2:
                    p.normal_(0.0, std)
    return model


# ----- filters -------------------------------------------------------------------------------


def test_top_k_keeps_exactly_the_k_largest():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 40, generator=g)
    for k in (1, 3, 17, 40):
        out = sampling.top_k_filter(logits, k)
        for row, row_out in zip(logits.numpy(), out.numpy(), strict=True):
            expected = set(np.argsort(-row, kind="stable")[:k])  # NumPy's own ordering
            kept = set(np.flatnonzero(np.isfinite(row_out)))
            assert kept == expected
            np.testing.assert_array_equal(row_out[list(kept)], row[list(kept)])  # untouched
    # Ties at the k-th value: still exactly k survive, and none beats a kept one.
    tied = torch.tensor([[3.0, 1.0, 1.0, 1.0, 0.0]])
    out = sampling.top_k_filter(tied, 2)
    assert torch.isfinite(out).sum() == 2 and out[0, 0] == 3.0


def _nucleus_brute_force(probs: np.ndarray, p: float) -> set[int]:
    """Among all subsets whose mass reaches p, those of minimal size; the heaviest of them."""
    n = len(probs)
    for size in range(1, n + 1):
        candidates = [
            set(c) for c in itertools.combinations(range(n), size) if probs[list(c)].sum() >= p
        ]
        if candidates:
            return max(candidates, key=lambda s: probs[list(s)].sum())
    return set(range(n))


def test_top_p_keeps_the_smallest_set_reaching_p():
    g = torch.Generator().manual_seed(1)
    checked = 0
    for _ in range(30):
        logits = torch.randn(7, generator=g, dtype=torch.float64) * 2
        probs = torch.softmax(logits, -1).numpy()
        for p in (0.05, 0.3, 0.5, 0.75, 0.9, 0.99):
            expected = _nucleus_brute_force(probs, p)
            # skip (measure-zero) cases where float rounding decides the boundary
            if abs(probs[list(expected)].sum() - p) < 1e-9:
                continue
            out = sampling.top_p_filter(logits, p).numpy()
            assert set(np.flatnonzero(np.isfinite(out))) == expected
            checked += 1
    assert checked > 150


def test_top_p_is_never_empty():
    logits = torch.tensor([[5.0, 1.0, 0.0], [0.0, 0.0, 0.0], [-1e4, 0.0, -1e4]])
    for p in (1e-9, 0.01, 0.5):
        out = sampling.top_p_filter(logits, p)
        assert (torch.isfinite(out).sum(-1) >= 1).all()
        assert torch.equal(out.argmax(-1), logits.argmax(-1))
    # even when a top-k filter already removed most of the row
    both = sampling.filtered_probs(torch.randn(4, 50), temperature=0.5, top_k=1, top_p=0.01)
    assert ((both > 0).sum(-1) == 1).all()


def test_bad_filter_arguments_raise():
    with pytest.raises(ValueError, match="top_k"):
        sampling.top_k_filter(torch.zeros(1, 5), 0)
    with pytest.raises(ValueError, match="top_p"):
        sampling.top_p_filter(torch.zeros(1, 5), 0.0)
    with pytest.raises(ValueError, match="temperature"):
        sampling.apply_temperature(torch.zeros(1, 5), -1.0)


# ----- sampling ------------------------------------------------------------------------------


def test_small_temperature_equals_greedy():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(64, 100, generator=g) * 3
    argmax = logits.argmax(-1, keepdim=True)
    assert torch.equal(sampling.sample_next_token(logits, temperature=0.0), argmax)
    for seed in range(5):
        gen = torch.Generator().manual_seed(seed)
        drawn = sampling.sample_next_token(logits, temperature=1e-3, generator=gen)
        assert torch.equal(drawn, argmax)


def test_fixed_seed_repeats_and_other_seeds_differ():
    logits = torch.randn(16, 1000, generator=torch.Generator().manual_seed(3))

    def draw(seed):
        gen = torch.Generator().manual_seed(seed)
        return torch.cat(
            [sampling.sample_next_token(logits, 1.0, 50, 0.9, gen) for _ in range(10)], dim=1
        )

    assert torch.equal(draw(7), draw(7))
    assert not torch.equal(draw(7), draw(8))


def _reference_filtered_probs(logits: np.ndarray, temperature, top_k, top_p) -> np.ndarray:
    """The same distribution, computed in NumPy without the code under test."""
    z = logits.astype(np.float64) / temperature
    order = np.argsort(-z, kind="stable")
    keep = np.zeros(len(z), dtype=bool)
    keep[order[:top_k]] = True
    probs = np.where(keep, np.exp(z - z.max()), 0.0)
    probs /= probs.sum()
    kept_mass = 0.0
    nucleus = np.zeros(len(z), dtype=bool)
    for i in order:
        if kept_mass >= top_p or probs[i] == 0:
            break
        nucleus[i] = True
        kept_mass += probs[i]
    probs = np.where(nucleus, probs, 0.0)
    return probs / probs.sum()


def test_sampled_frequencies_match_the_filtered_distribution():
    from scipy.stats import chisquare

    logits = torch.tensor([2.0, 1.5, 1.2, 0.9, 0.5, 0.1, -0.3, -1.0, -2.0, 0.7])
    temperature, top_k, top_p = 0.8, 7, 0.85
    expected = _reference_filtered_probs(logits.numpy(), temperature, top_k, top_p)
    n = 20_000
    gen = torch.Generator().manual_seed(1234)
    draws = sampling.sample_next_token(
        logits.expand(n, -1), temperature, top_k, top_p, generator=gen
    ).view(-1)
    counts = np.bincount(draws.numpy(), minlength=len(logits))
    kept = expected > 0
    assert counts[~kept].sum() == 0, "a filtered-out token was sampled"
    assert 2 <= kept.sum() < len(logits)  # the filters did remove something
    # Chi-square goodness of fit on the kept tokens (every expected count > 900). With a
    # fixed seed the result is deterministic; a correct sampler fails a 0.001-level test
    # for 0.1% of seeds, while a wrong distribution (below: the same tokens without the
    # temperature) is rejected with p far below 1e-6 at this n.
    observed = counts[kept]
    stat, p_value = chisquare(observed, observed.sum() * expected[kept] / expected[kept].sum())
    assert p_value > 1e-3, (stat, p_value)
    untempered = torch.softmax(logits.double(), -1).numpy()[kept]
    _, p_wrong = chisquare(observed, observed.sum() * untempered / untempered.sum())
    assert p_wrong < 1e-6


# ----- KV cache ------------------------------------------------------------------------------


def test_kv_cache_writes_in_place_and_returns_views():
    cache = KVCache(n_layer=2, batch_size=1, n_head=2, max_len=8, head_dim=4)
    pointer = cache.k.data_ptr()
    k1, v1 = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)
    k_all, v_all = cache.update(0, k1, v1)
    assert k_all.shape == (1, 2, 3, 4) and torch.equal(k_all, k1) and torch.equal(v_all, v1)
    cache.update(1, k1, v1)
    cache.advance(3)
    k2 = torch.randn(1, 2, 1, 4)
    k_all, _ = cache.update(0, k2, k2)
    assert torch.equal(k_all, torch.cat([k1, k2], dim=2))  # the reference concatenation
    assert k_all.data_ptr() == pointer and cache.k.data_ptr() == pointer  # no reallocation
    cache.advance(1)
    assert cache.length == 4
    with pytest.raises(ValueError, match="exceed max_len"):
        cache.update(0, torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4))
    with pytest.raises(ValueError, match="expected"):
        cache.update(0, torch.randn(2, 2, 1, 4), torch.randn(2, 2, 1, 4))
    cache.reset()
    assert cache.length == 0 and cache.k.data_ptr() == pointer


class ListCache:
    """The smallest object with the duck-typed protocol: grows by torch.cat."""

    def __init__(self, n_layer):
        self.k, self.v, self.length = [None] * n_layer, [None] * n_layer, 0

    def update(self, i, k, v):
        if self.k[i] is not None:
            k, v = torch.cat([self.k[i], k], dim=2), torch.cat([self.v[i], v], dim=2)
        self.k[i], self.v[i] = k, v
        return k, v

    def advance(self, n):
        self.length += n


@pytest.mark.parametrize("fused", [True, False])
def test_kv_cache_incremental_logits_equal_full_forward(fused):
    # Every mask case of cached_forward.py, on the fused and the reference attention.
    torch.manual_seed(0)
    shape = dict(vocab_size=100, block_size=32, n_layer=2, n_head=4, n_embd=64)
    model = model_mod.GPT(config_mod.GPTConfig(**shape)).eval().set_fused(fused)
    idx = torch.randint(0, 100, (2, 12))
    cache = ListCache(2)
    with torch.no_grad():
        full, _ = model(idx)
        parts = [forward_with_cache(model, idx[:, :5], cache)]  # prefill 5: is_causal
        parts.append(forward_with_cache(model, idx[:, 5:6], cache))  # one token: no mask
        parts.append(forward_with_cache(model, idx[:, 6:9], cache))  # 3 after a prefix: offset
        for t in range(9, 12):
            parts.append(forward_with_cache(model, idx[:, t : t + 1], cache))
    assert cache.length == 12
    assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="block_size"):
        forward_with_cache(model, torch.zeros(2, 21, dtype=torch.long), cache)


def test_cached_logits_equal_uncached_at_every_step():
    model = tiny_gpt(block_size=24)
    idx = torch.randint(0, 37, (3, 20), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        full, _ = model(idx)  # (B, T, V), the reference
        cache = KVCache.for_model(model, batch_size=3)
        # prefill 5, then a chunk of 4 (several queries after a cached prefix), then singles
        pieces = [(0, 5), (5, 9)] + [(t, t + 1) for t in range(9, 20)]
        for start, end in pieces:
            logits = forward_with_cache(model, idx[:, start:end], cache)
            assert_close(logits, full[:, start:end], atol=1e-5, rtol=1e-5)
        assert cache.length == 20
        with pytest.raises(ValueError):  # 20 cached + 5 new > block_size 24
            forward_with_cache(model, idx[:, :5], cache)


def test_bf16_cache_follows_the_model_dtype():
    model = tiny_gpt().to(torch.bfloat16)
    cache = KVCache.for_model(model, batch_size=2)
    assert cache.dtype == torch.bfloat16
    idx = torch.randint(0, 37, (2, 6))
    with torch.no_grad():
        full, _ = model(idx)
        forward_with_cache(model, idx[:, :5], cache)
        last = forward_with_cache(model, idx[:, 5:], cache)
    assert_close(last.float(), full[:, 5:].float(), atol=0.1, rtol=0.05)


# ----- generation ----------------------------------------------------------------------------


@pytest.fixture
def forward_calls(monkeypatch):
    """Every forward pass while the test runs, as (tokens fed, cached?): sprint 8's
    GPT.forward (uncached), cached_forward.py's forward_with_cache (cached, any number of
    tokens), decode_step.py's DecodeStep and numba_step.py's NumbaStep (one cached token
    per row)."""
    numba_step = import_module("sprints.10_pretrained_and_generation.results.numba_step")
    calls = []
    real_forward = model_mod.GPT.forward
    real_cached = cached_forward.forward_with_cache
    real_step = decode_step.DecodeStep.__call__

    def counting_forward(self, idx, *args, **kwargs):
        calls.append((idx.size(1), False))
        return real_forward(self, idx, *args, **kwargs)

    def counting_cached(model, idx, *args, **kwargs):
        calls.append((idx.size(1), True))
        return real_cached(model, idx, *args, **kwargs)

    def counting_step(self, idx):
        calls.append((idx.size(1), True))
        return real_step(self, idx)

    monkeypatch.setattr(model_mod.GPT, "forward", counting_forward)
    monkeypatch.setattr(cached_forward, "forward_with_cache", counting_cached)
    monkeypatch.setattr(decode_step.DecodeStep, "__call__", counting_step)
    real_numba_step = numba_step.NumbaStep.__call__

    def counting_numba_step(self, idx):
        calls.append((idx.size(1), True))
        return real_numba_step(self, idx)

    monkeypatch.setattr(numba_step.NumbaStep, "__call__", counting_numba_step)
    return calls


def _uncached_reference_with_refill(model, idx, new_tokens, refill):
    """The cached path's window rule, written with plain uncached forward passes."""
    bs = model.config.block_size
    seq = idx.clone()
    start = max(0, seq.size(1) - bs)
    with torch.no_grad():
        for _ in range(new_tokens):
            logits, _ = model(seq[:, start:])
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
            if seq.size(1) - start > bs:
                start = seq.size(1) - refill
    return seq


def test_generation_beyond_the_block_size_both_ways():
    model = tiny_gpt(seed=5, block_size=16, std=0.3)
    prompt = torch.randint(0, 37, (2, 21), generator=torch.Generator().manual_seed(5))  # > 16
    new = 50  # three times past the window
    uncached = generation.generate_all(model, prompt, new, greedy=True, use_kv_cache=False)
    same_window = generation.generate_all(
        model, prompt, new, greedy=True, use_kv_cache=True, refill_tokens=16
    )
    assert uncached.shape == (2, 21 + new)
    assert torch.equal(same_window, uncached)  # same window policy: same tokens
    # Default policy (refill half the window): equals the uncached model run with that rule.
    cached = generation.generate_all(model, prompt, new, greedy=True)
    assert torch.equal(cached, _uncached_reference_with_refill(model, prompt, new, 8))


def test_generate_streams_one_token_per_step_and_stops_at_eos(forward_calls):
    model = tiny_gpt(seed=6, std=0.3)
    prompt = torch.tensor([[1, 2, 3]])
    for cache in (True, False):
        forward_calls.clear()
        stream = generation.generate(model, prompt, 5, greedy=True, use_kv_cache=cache)
        assert forward_calls == []  # a generator: nothing runs before the first next()
        first = next(stream)
        assert first.shape == (1,)
        # Only the first forward pass (the prefill) has run: the token is handed over before
        # the rest is computed. A generate() that computed all 5 tokens first would show 5.
        assert forward_calls == [(3, cache)]
        next(stream)
        assert len(forward_calls) == 2 and forward_calls[1] == ((1, True) if cache else (4, False))
        rest = list(stream)
        assert len(rest) == 3 and len(forward_calls) == 5
    eos = int(first)
    assert len(list(generation.generate(model, prompt, 5, greedy=True, eos_token_id=eos))) == 1
    with pytest.raises(ValueError, match="LongTensor"):
        next(generation.generate(model, torch.zeros(1, 0, dtype=torch.long), 3))


def test_sampled_generation_repeats_with_a_seed_and_paths_agree():
    model = tiny_gpt(seed=7)
    prompt = torch.tensor([[4, 5, 6, 7]])
    kwargs = dict(temperature=0.9, top_k=20, top_p=0.95)

    def run(seed, cache):
        gen = torch.Generator().manual_seed(seed)
        return generation.generate_all(
            model, prompt, 10, generator=gen, use_kv_cache=cache, **kwargs
        )

    assert torch.equal(run(0, True), run(0, True))
    assert torch.equal(run(0, True), run(0, False))  # same logits -> same draws


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A small random GPT-2 written by transformers itself (GPT-2's full vocabulary, so the
    real tokenizer works with it in the CLI test)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(8)
    cfg = transformers.GPT2Config(
        vocab_size=50257,
        n_positions=32,
        n_embd=32,
        n_layer=2,
        n_head=4,
        initializer_range=0.1,
        bos_token_id=None,
        eos_token_id=None,
    )
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    directory = tmp_path_factory.mktemp("hf_gpt2")
    hf.save_pretrained(directory)
    return directory, hf


def _hf_greedy(hf, idx, n):
    with torch.no_grad():
        out = hf.generate(
            idx,
            attention_mask=torch.ones_like(idx),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            use_cache=True,
            pad_token_id=0,
        )
    return out


def test_greedy_equals_transformers_generate(hf_dir):
    directory, hf = hf_dir
    ours = model_mod.GPT.from_pretrained(directory).eval()
    idx = torch.randint(0, 50257, (2, 5), generator=torch.Generator().manual_seed(9))
    expected = _hf_greedy(hf, idx, 20)
    for cache in (True, False):
        got = generation.generate_all(ours, idx, 20, greedy=True, use_kv_cache=cache)
        assert torch.equal(got, expected)


def test_text_streamer_handles_split_utf8_characters():
    tok = tokenizer_mod.get_tokenizer("gpt2")
    text = "Café 🤗 naïve — 日本語 ok"
    ids = tok.encode(text)
    assert any("\ufffd" in tok.decode([i]) for i in ids)  # some tokens are partial bytes
    streamer = generation.TextStreamer(tok.decode)
    pieces = [streamer.push(i) for i in ids] + [streamer.flush()]
    assert "".join(pieces) == text
    assert not any("\ufffd" in piece for piece in pieces)


# ----- the CLI -------------------------------------------------------------------------------


def test_cli_greedy_from_hf_directory_matches_transformers(hf_dir, capsys):
    directory, hf = hf_dir
    tok = tokenizer_mod.get_tokenizer("gpt2")
    prompt = "Hello, world"
    idx = torch.tensor([tok.encode(prompt)])
    expected_ids = _hf_greedy(hf, idx, 8)[0, idx.size(1) :].tolist()
    for extra in ([], ["--no-kv-cache"]):
        generate_cli.main(
            ["--init-from", str(directory), "--prompt", prompt, "--max-new-tokens", "8",
             "--greedy", *extra]
        )  # fmt: skip
        out = capsys.readouterr().out
        assert out == prompt + tok.decode(expected_ids) + "\n"


CHAR_TEXT = "to be or not to be, that is the question\n"


@pytest.fixture(scope="module")
def char_ckpt(tmp_path_factory):
    """A checkpoint as sprint 9 writes it: a tiny GPT (block size 16) with a character
    vocabulary. Weights with std 0.3 make greedy decoding depend on the context, so the
    window policies below give different texts."""
    tok = tokenizer_mod.get_tokenizer("char", text=CHAR_TEXT)
    model = tiny_gpt(seed=11, vocab_size=tok.vocab_size, std=0.3)
    path = tmp_path_factory.mktemp("char_ckpt") / "ckpt.pt"
    utils_mod.save_checkpoint(
        path,
        model=model.state_dict(),
        config=model.config.to_dict(),
        step=0,
        extra={"tokenizer": tok.to_dict()},
    )
    return str(path)


def run_cli(capsys, *args) -> tuple[str, str]:
    generate_cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_cli_samples_from_a_char_checkpoint(char_ckpt, capsys):
    args = ["--checkpoint", char_ckpt, "--prompt", "to be", "--max-new-tokens", "30",
            "--num-samples", "2", "--seed", "3", "--top-k", "5", "--dtype", "bfloat16"]  # fmt: skip
    first, _ = run_cli(capsys, *args)
    assert run_cli(capsys, *args)[0] == first  # same seed, same text
    samples = [s for s in first.split("\n") if s.startswith("to be")]
    assert len(samples) >= 2
    assert all(set(s) <= set(CHAR_TEXT) for s in samples)


def test_cli_decoding_flags_take_effect(char_ckpt, capsys):
    base = ["--checkpoint", char_ckpt, "--prompt", "to be", "--max-new-tokens", "24"]
    greedy, _ = run_cli(capsys, *base, "--greedy")
    sampled = {seed: run_cli(capsys, *base, "--seed", seed)[0] for seed in (1, 2)}
    # The default (temperature 0.8, no filter) samples: it does not print the greedy text.
    # So each flag below that leaves only the argmax must change the output to the greedy
    # one, and would not if the CLI ignored it.
    assert sampled[1] != greedy
    for flags in (["--temperature", "0"], ["--top-k", "1"], ["--top-p", "1e-6"]):
        assert run_cli(capsys, *base, "--seed", 1, *flags)[0] == greedy, flags
    assert run_cli(capsys, *base, "--seed", 1)[0] == sampled[1]  # a seed repeats
    assert sampled[1] != sampled[2]  # and another seed gives another text


def test_cli_dtype_reaches_the_model(char_ckpt, capsys, monkeypatch):
    # Record the dtype of the weights that generate() actually receives.
    seen = []
    real_generate = generation.generate

    def spy(model, *args, **kwargs):
        seen.append(next(model.parameters()).dtype)
        return real_generate(model, *args, **kwargs)

    monkeypatch.setattr(generation, "generate", spy)
    for name, dtype in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        _, err = run_cli(capsys, "--checkpoint", char_ckpt, "--max-new-tokens", 3,
                         "--dtype", name)  # fmt: skip
        assert seen[-1] == dtype
        assert f"parameters, {name}," in err  # the stderr line reports the weights' dtype


def test_cli_window_refill_and_no_kv_cache(char_ckpt, capsys, forward_calls):
    # A 21-character prompt and 40 new tokens with block size 16: the window slides.
    base = ["--checkpoint", char_ckpt, "--prompt", CHAR_TEXT[:21], "--max-new-tokens", 40,
            "--greedy"]  # fmt: skip
    uncached, err = run_cli(capsys, *base, "--no-kv-cache")
    assert "KV cache off" in err
    # every step reran the full 16-token window without a cache
    assert len(forward_calls) == 40 and set(forward_calls) == {(16, False)}
    forward_calls.clear()
    same_window, err = run_cli(capsys, *base, "--refill-tokens", 16)
    assert "KV cache on (refill 16 of 16 tokens)" in err
    assert (1, True) not in forward_calls  # past the window every step is a full refill
    default, err = run_cli(capsys, *base)
    assert "KV cache on (refill 8 of 16 tokens)" in err
    assert forward_calls.count((1, True)) > 20  # mostly one-token cached steps
    assert same_window == uncached  # refill = block size slides exactly like no cache
    assert default != uncached  # the half-window refill sees less context: other tokens


class _CountingStdout(io.StringIO):
    """A terminal stand-in: records, at each flush, how much text is visible and how many
    forward passes the model has run so far."""

    def __init__(self, forward_calls):
        super().__init__()
        self.forward_calls = forward_calls
        self.flushes = []

    def flush(self):
        self.flushes.append((len(self.getvalue()), len(self.forward_calls)))
        super().flush()


def test_cli_streams_each_token_before_computing_the_next(
    char_ckpt, monkeypatch, capsys, forward_calls
):
    stdout = _CountingStdout(forward_calls)
    monkeypatch.setattr(sys, "stdout", stdout)
    n = 12
    generate_cli.main(["--checkpoint", char_ckpt, "--prompt", "to be", "--max-new-tokens",
                       str(n), "--greedy"])  # fmt: skip
    # Character tokens: token k is on screen (5 + k characters) after k forward passes
    # (prefill, then one per step), i.e. before the model computes token k + 1.
    expected = [(5 + k, k) for k in range(1, n + 1)]
    assert [f for f in stdout.flushes if f in expected] == expected, stdout.flushes
    assert len(stdout.getvalue()) == 5 + n + 1


def test_cli_bad_input_exits_with_a_message(char_ckpt, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cases = [
        (["--temperature", "nan"], 2, "finite"),
        (["--temperature", "inf"], 2, "finite"),
        (["--refill-tokens", "0"], 2, "--refill-tokens must be >= 1"),
        (["--refill-tokens", "17"], 2, "--refill-tokens must be in 1..16"),
        (["--device", "cuda"], 2, "no CUDA GPU"),
        (["--prompt", "to bé"], 1, "characters ['é'] are not in this character vocabulary"),
    ]
    for args, code, message in cases:
        # Any other exception than SystemExit (a traceback for the user) fails the test.
        with pytest.raises(SystemExit) as info:
            generate_cli.main(["--checkpoint", char_ckpt, "--max-new-tokens", "2", *args])
        assert info.value.code == code, args
        assert message in capsys.readouterr().err, args


def test_cli_unknown_prompt_character_prints_no_traceback(char_ckpt):
    # The same case as the user meets it: a separate process, stderr as printed.
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-m", "sprints.10_pretrained_and_generation.results.generate",
         "--checkpoint", char_ckpt, "--prompt", "café", "--max-new-tokens", "2"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "--prompt cannot be encoded" in result.stderr and result.stdout == ""


def test_cli_without_a_model_explains_the_flags(capsys):
    with pytest.raises(SystemExit) as info:
        generate_cli.main([])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--init-from" in err and "--checkpoint" in err


def test_cli_offline_gpt2_says_how_to_get_weights(tmp_path, monkeypatch, capsys):
    # No network here: huggingface_hub's offline switch (read at call time) and an empty
    # cache make the hub lookup fail at once, as it does on an offline machine.
    hub_constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(SystemExit) as info:
        generate_cli.main(["--init-from", "gpt2", "--max-new-tokens", "1"])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "--init-from" in err and "download" in err


# ----- generate.py --device / --dtype ------------------------------------------------------


def _no_gpus(monkeypatch):
    monkeypatch.setattr(devices, "cuda_available", lambda: False)
    monkeypatch.setattr(devices, "mps_available", lambda: False)


def test_cli_missing_devices_and_cpu_float16_are_usage_errors(char_ckpt, capsys, monkeypatch):
    _no_gpus(monkeypatch)  # as on this machine, and on a GPU machine too
    cases = [
        (["--device", "cuda"], "torch sees no CUDA GPU"),
        (["--device", "mps"], "torch sees no Apple GPU"),
        (["--dtype", "float16"], "--dtype float16 runs on cuda and mps only"),
        (["--device", "cpu", "--dtype", "float16"], "this run is on cpu"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) as info:
            generate_cli.main(["--checkpoint", char_ckpt, "--max-new-tokens", "1", *args])
        assert info.value.code == 2, args
        assert message in capsys.readouterr().err, args


def test_cli_device_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    parser = generate_cli.build_parser()
    for cuda, mps, expected in [(True, True, "cuda"), (False, True, "mps"),
                                (False, False, "cpu")]:  # fmt: skip
        monkeypatch.setattr(devices, "cuda_available", lambda c=cuda: c)
        monkeypatch.setattr(devices, "mps_available", lambda m=mps: m)
        assert generate_cli.resolve_device(parser, "auto", "float32").type == expected
        if expected != "cpu":  # float16 is offered where a GPU was picked
            assert generate_cli.resolve_device(parser, "auto", "float16").type == expected
    with pytest.raises(SystemExit):  # and refused once auto lands on the CPU
        generate_cli.resolve_device(parser, "auto", "float16")


# ----- LoRA against peft -------------------------------------------------------------------


def _peft_model(directory, rank, alpha, targets, dropout=0.0):
    peft = pytest.importorskip("peft")
    transformers = pytest.importorskip("transformers")
    base = transformers.GPT2LMHeadModel.from_pretrained(directory)
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout,
                             target_modules=list(targets), fan_in_fan_out=True)  # fmt: skip
    return peft.get_peft_model(base, config)


def _randomize_adapters(model, seed):
    # B starts at zero (the update is 0); random B makes the adapters change the output.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora.lora_layers(model).values():
            layer.lora_A.weight.copy_(torch.randn(layer.lora_A.weight.shape, generator=g) * 0.2)
            layer.lora_B.weight.copy_(torch.randn(layer.lora_B.weight.shape, generator=g) * 0.2)


def test_lora_logits_equal_peft_both_ways(hf_dir, tmp_path):
    peft = pytest.importorskip("peft")
    transformers = pytest.importorskip("transformers")
    directory, _ = hf_dir
    idx = torch.randint(0, 50257, (2, 12), generator=torch.Generator().manual_seed(20))

    # ours -> peft: our adapter file, loaded by peft onto transformers' GPT-2
    ours = model_mod.GPT.from_pretrained(directory).eval()
    lora.apply_lora(ours, rank=4, alpha=12.0, dropout=0.1)
    _randomize_adapters(ours, 21)
    lora.save_adapter(ours, tmp_path / "ours", base_model_name_or_path=str(directory))
    base = transformers.GPT2LMHeadModel.from_pretrained(directory)
    theirs = peft.PeftModel.from_pretrained(base, tmp_path / "ours").eval()
    with torch.no_grad():
        expected = theirs(idx).logits
        assert_close(ours(idx)[0], expected, atol=1e-5, rtol=1e-5)
    # the adapters matter: without them the logits are far from these
    with theirs.disable_adapter(), torch.no_grad():
        plain = theirs(idx).logits
    assert (plain - expected).abs().max() > 0.1

    # peft -> ours: peft's own saved adapter, loaded by load_adapter
    peft_model = _peft_model(directory, rank=3, alpha=5, targets=["c_attn", "mlp.c_proj"])
    g = torch.Generator().manual_seed(22)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    peft_model.save_pretrained(tmp_path / "peft")
    peft_model.eval()
    loaded = lora.load_adapter(model_mod.GPT.from_pretrained(directory).eval(), tmp_path / "peft")
    assert sorted(lora.lora_layers(loaded)) == sorted(
        f"transformer.h.{i}.{part}" for i in range(2) for part in ("attn.c_attn", "mlp.c_proj")
    )
    with torch.no_grad():
        assert_close(loaded(idx)[0], peft_model(idx).logits, atol=1e-5, rtol=1e-5)


def test_lora_trainable_count_equals_peft_at_gpt2_small_shape():
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    config_small = config_mod.GPTConfig.from_preset("gpt2")
    for rank, targets in [(8, lora.DEFAULT_TARGETS), (4, ["c_attn"]),
                          (16, ["attn.c_proj", "mlp.c_fc"])]:  # fmt: skip
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            ours = lora.apply_lora(model_mod.GPT(config_small), rank, 2.0 * rank, 0.0, targets)
            hf = transformers.GPT2LMHeadModel(transformers.GPT2Config())
            theirs = peft.get_peft_model(hf, peft.LoraConfig(
                r=rank, lora_alpha=2 * rank, target_modules=list(targets), fan_in_fan_out=True))
        trainable, total = theirs.get_nb_trainable_parameters()
        assert lora.count_trainable(ours) == trainable, targets
        assert ours.num_parameters() == total
    # the closed form for the default: 12 blocks x r x (in + out) over the four linears
    with torch.device("meta"):
        default = lora.apply_lora(model_mod.GPT(config_small), 8, 8.0)
    blocks = 12 * 8 * ((768 + 2304) + (768 + 768) + (768 + 3072) + (3072 + 768))
    assert lora.count_trainable(default) == blocks == 1_179_648


def test_lora_merge_is_exact_and_unmerge_restores():
    model = tiny_gpt(seed=23)
    base_weights = {k: v.clone() for k, v in model.state_dict().items()}
    idx = torch.randint(0, 37, (2, 10), generator=torch.Generator().manual_seed(23))
    with torch.no_grad():
        base_logits = model(idx)[0]
    lora.apply_lora(model, rank=2, alpha=4.0, targets=["c_attn", "c_fc"])
    with torch.no_grad():
        assert torch.equal(model(idx)[0], base_logits)  # B = 0: exactly the base model
        _randomize_adapters(model, 24)
        unmerged = model(idx)[0]
        assert (unmerged - base_logits).abs().max() > 1e-2
        layer = model.transformer.h[0].attn.c_attn
        # the merged weight is W + (alpha / r) B A, computed here independently
        expected_w = base_weights["transformer.h.0.attn.c_attn.weight"] + 2.0 * (
            layer.lora_B.weight @ layer.lora_A.weight)
        lora.merge_lora(model)
        assert_close(layer.base_layer.weight, expected_w, atol=1e-6, rtol=1e-6)
        assert_close(model(idx)[0], unmerged, atol=1e-5, rtol=1e-5)
        with pytest.raises(RuntimeError, match="already merged"):
            layer.merge()
        lora.unmerge_lora(model)
        assert_close(model(idx)[0], unmerged, atol=1e-5, rtol=1e-5)
        w = model.transformer.h[0].attn.c_attn.base_layer.weight
        assert_close(w, base_weights["transformer.h.0.attn.c_attn.weight"], atol=1e-6, rtol=0)
        plain = lora.merge_and_unload(model)
        assert set(plain.state_dict()) == set(base_weights)  # an ordinary GPT again
        assert_close(plain(idx)[0], unmerged, atol=1e-5, rtol=1e-5)


def test_lora_trains_only_the_adapters():
    model = tiny_gpt(seed=25).train()
    lora.apply_lora(model, rank=2, alpha=2.0, dropout=0.1)
    frozen = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert {n.rsplit(".", 2)[-2] for n, p in model.named_parameters() if p.requires_grad} == {
        "lora_A", "lora_B"}
    before = [p.clone() for p in trainable]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    loss_fn = import_module("sprints.09_train_gpt2.results.lm_loss").LanguageModelLoss(model)
    x = torch.randint(0, 37, (2, 8), generator=torch.Generator().manual_seed(25))
    for _ in range(3):
        finetune.train_step(loss_fn, optimizer, trainable, x, x.roll(-1, 1), 1.0,
                            lambda: torch.autocast("cpu", enabled=False))  # fmt: skip
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    assert all(not torch.equal(a, b) for a, b in zip(before, trainable, strict=True))


def test_lora_targets_are_checked():
    model = tiny_gpt()
    for bad in (["wte"], ["lm_head"], ["attn"], ["q_proj"]):
        with pytest.raises(ValueError, match="choose among"):
            lora.find_targets(model, bad)
    assert lora.find_targets(model, ["c_proj"]) == [
        "transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_proj",
        "transformer.h.1.attn.c_proj", "transformer.h.1.mlp.c_proj"]  # fmt: skip
    # finetune.py's default (kept free of torch for a fast --help) is lora.py's
    assert tuple(finetune.build_parser().get_default("lora_targets")) == lora.DEFAULT_TARGETS


# ----- finetune.py -------------------------------------------------------------------------


FINETUNE_TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\n"
                 "Speak, speak.\n\n") * 40  # fmt: skip


def _finetune(tmp_path, init_from, *extra, text=FINETUNE_TEXT):
    data_file = tmp_path / "text.txt"
    data_file.write_text(text, encoding="utf-8")
    out = tmp_path / "run"
    finetune.main(["--init-from", str(init_from), "--data-file", str(data_file),
                   "--cache-dir", str(tmp_path / "cache"), "--out-dir", str(out),
                   "--block-size", "16", "--batch-size", "2", "--max-steps", "6",
                   "--eval-interval", "3", "--eval-tokens", "256", "--no-progress",
                   *map(str, extra)])  # fmt: skip
    return out, json.loads((out / "summary.json").read_text())


def test_finetune_lora_writes_adapter_merged_model_and_logs(hf_dir, tmp_path, capsys):
    peft = pytest.importorskip("peft")
    transformers = pytest.importorskip("transformers")
    directory, _ = hf_dir
    out, summary = _finetune(tmp_path, directory, "--lora-rank", 4, "--lora-alpha", 8,
                             "--lora-dropout", 0.1, "--lora-targets", "c_attn", "mlp.c_fc",
                             "--lr", "5e-3")  # fmt: skip
    assert "LoRA r=4 alpha=8" in capsys.readouterr().out
    # 2 blocks x [c_attn 4 x (32 + 96) + c_fc 4 x (32 + 128)]
    assert summary["trainable_parameters"] == 2 * (4 * (32 + 96) + 4 * (32 + 128))
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "train_loss" in r] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in records if "val_loss" in r] == [0, 3, 6]
    assert summary["best_val_loss"] < summary["base_val_loss"]
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The merged HF directory (transformers) equals peft's unmerged adapter on the base.
    idx = torch.randint(0, 50257, (1, 10), generator=torch.Generator().manual_seed(26))
    merged = transformers.GPT2LMHeadModel.from_pretrained(out / "hf_model").eval()
    base = transformers.GPT2LMHeadModel.from_pretrained(directory)
    adapted = peft.PeftModel.from_pretrained(base, out / "adapter").eval()
    with torch.no_grad():
        assert_close(merged(idx).logits, adapted(idx).logits, atol=1e-5, rtol=1e-5)
    # Only the targeted layers changed; the saved weights are the best evaluation's.
    ckpt_model, ckpt = model_mod.GPT.from_checkpoint(out / "model.pt")
    start = model_mod.GPT.from_pretrained(directory).state_dict()
    changed = {k for k, v in ckpt_model.state_dict().items() if not torch.equal(v, start[k])}
    assert changed == {f"transformer.h.{i}.{m}.weight" for i in range(2)
                       for m in ("attn.c_attn", "mlp.c_fc")}  # fmt: skip
    assert ckpt["step"] == summary["best_step"] and ckpt["extra"]["tokenizer"] == {"type": "gpt2"}
    # generate.py samples from it
    generate_cli.main(["--checkpoint", str(out / "model.pt"), "--prompt", "Speak",
                       "--max-new-tokens", "3", "--greedy"])  # fmt: skip
    assert capsys.readouterr().out.startswith("Speak")


def test_finetune_full_from_our_checkpoint(char_ckpt, tmp_path):
    out, summary = _finetune(tmp_path, char_ckpt, "--lr", "1e-2", text=CHAR_TEXT * 30)
    model, ckpt = model_mod.GPT.from_checkpoint(out / "model.pt")
    assert summary["trainable_parameters"] == model.num_parameters()  # every weight trains
    assert not (out / "adapter").exists()
    assert ckpt["extra"]["tokenizer"]["type"] == "char"  # the base's own vocabulary
    assert summary["best_val_loss"] < summary["base_val_loss"]
    start, _ = model_mod.GPT.from_checkpoint(char_ckpt)
    assert not torch.equal(model.transformer.wte.weight, start.transformer.wte.weight)
    # the saved weights give the reported best validation loss (checked independently)
    data = import_module("sprints.09_train_gpt2.results.data")
    tok = generate_cli.tokenizer_from_checkpoint(ckpt)
    val = np.asarray(tok.encode(data.split_text(CHAR_TEXT * 30, 0.1)[1]), dtype=np.int64)
    with torch.no_grad():
        losses = [(model.eval()(x, y)[1].item(), y.numel())
                  for x, y in data.iter_eval_batches(val, 16, 2, 256)]  # fmt: skip
    mean = sum(loss * n for loss, n in losses) / sum(n for _, n in losses)
    assert mean == pytest.approx(summary["best_val_loss"], abs=1e-4)


def test_finetune_bad_options_stop_with_a_message(char_ckpt, tmp_path, capsys, monkeypatch):
    _no_gpus(monkeypatch)
    text = tmp_path / "t.txt"
    text.write_text(CHAR_TEXT * 30, encoding="utf-8")
    base = ["--init-from", char_ckpt, "--data-file", str(text), "--out-dir",
            str(tmp_path / "out"), "--max-steps", "1", "--no-progress"]  # fmt: skip
    cases = [
        (["--lora-alpha", "4"], 2, "need --lora-rank"),
        (["--lora-rank", "0"], 2, "at least 1"),
        (["--lora-rank", "2", "--lora-dropout", "1"], 2, "below 1"),
        (["--device", "cuda"], 2, "no CUDA GPU"),
        (["--lora-rank", "2", "--lora-targets", "wte"], 1, "choose among"),
        (["--init-from", str(tmp_path / "missing")], 1, "no directory"),
    ]
    for args, code, message in cases:
        with pytest.raises(SystemExit) as info:
            finetune.main([*base, *args])
        assert info.value.code == code, args
        assert message in capsys.readouterr().err, args


# ----- GGUF export, read by llama.cpp ------------------------------------------------------


@pytest.fixture(scope="module")
def gguf_ckpt(tmp_path_factory):
    """A random GPT with GPT-2's vocabulary, saved as our checkpoint. All weights, biases
    and LayerNorm gains drawn with std 0.1, so that a missed bias or a wrong LayerNorm shows,
    and the argmaxes are decisive (top-2 gaps of at least 1.4e-3 on the test's tokens)."""
    torch.manual_seed(0)
    cfg = config_mod.GPTConfig(vocab_size=50257, block_size=64, n_layer=2, n_head=4, n_embd=64)
    model = model_mod.GPT(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    path = tmp_path_factory.mktemp("gguf") / "model.pt"
    utils_mod.save_checkpoint(path, model=model.state_dict(), config=cfg.to_dict(), step=0,
                              extra={"tokenizer": {"type": "gpt2"}})  # fmt: skip
    return path, model


def llama_cpp_logits(llama_cpp, path, ids: list[int], n_ctx: int) -> np.ndarray:
    """llama.cpp's logits for every position of ``ids``, (T, V), from the GGUF file."""
    llm = llama_cpp.Llama(model_path=str(path), logits_all=True, n_ctx=n_ctx, verbose=False)
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)])
    finally:
        llm.close()


def test_gguf_logits_match_llama_cpp_f32_and_f16(gguf_ckpt, tmp_path, capsys):
    llama_cpp = llama_cpp_or_skip()
    ckpt, model = gguf_ckpt
    ids = torch.randint(0, 50257, (24,), generator=torch.Generator().manual_seed(27)).tolist()
    with torch.no_grad():
        ours = model(torch.tensor([ids]))[0][0].numpy()  # (T, V)
    top2 = np.sort(ours, axis=-1)[:, -2:]
    gap = (top2[:, 1] - top2[:, 0]).min()  # 1.4e-3: how far the argmax is from a tie
    sizes = {}
    for dtype, tolerance in (("f32", 3e-4), ("f16", 1e-3)):
        out = tmp_path / f"model-{dtype}.gguf"
        export_gguf.main(["--checkpoint", str(ckpt), "--out", str(out), "--dtype", dtype])
        assert f"wrote {out}" in capsys.readouterr().out
        sizes[dtype] = out.stat().st_size
        llm = llama_cpp.Llama(model_path=str(out), logits_all=True, n_ctx=64, verbose=False)
        try:
            llm.eval(ids)
            theirs = np.array(llm.scores[: len(ids)])  # (T, V), one row per position
            if dtype == "f32":
                text = "Hello world, it's 2024! Café naïve — 日本語 tokens\n  spaced"
                tok = tokenizer_mod.get_tokenizer("gpt2")
                assert llm.tokenize(text.encode(), add_bos=False) == tok.encode(text)
                assert llm.detokenize(tok.encode(text)).decode() == text
        finally:
            llm.close()
        diff = np.abs(theirs - ours).max()
        assert diff < tolerance, (dtype, diff)
        # the same greedy tokens, and not by luck: no logit moved by half the top-2 gap
        assert (theirs.argmax(-1) == ours.argmax(-1)).all() and 2 * diff < gap, dtype
    assert sizes["f16"] < 0.6 * sizes["f32"]


def test_gguf_check_can_fail_on_a_transposed_tensor(gguf_ckpt, tmp_path, monkeypatch):
    # The tolerance above is tight enough to catch a layout mistake: transposing the
    # (square) attention output projection, the error a missing Conv1D transpose makes.
    llama_cpp = llama_cpp_or_skip()
    ckpt, model = gguf_ckpt
    real = export_gguf.gguf_tensors

    def transposed(*args, **kwargs):
        tensors = real(*args, **kwargs)
        tensors["blk.0.attn_output.weight"] = np.ascontiguousarray(
            tensors["blk.0.attn_output.weight"].T)
        return tensors

    monkeypatch.setattr(export_gguf, "gguf_tensors", transposed)
    path = export_gguf.write_gguf(model, tmp_path / "bad.gguf")
    ids = list(range(100, 124))
    with torch.no_grad():
        ours = model(torch.tensor([ids]))[0][0].numpy()
    theirs = llama_cpp_logits(llama_cpp, path, ids, n_ctx=64)
    assert np.abs(theirs - ours).max() > 10 * 3e-4


def test_gguf_sinusoidal_bias_free_model_matches_llama_cpp(tmp_path):
    # No learned position table and no biases: the file gets the model's sinusoid table
    # and zero biases, which must compute the same function in llama.cpp.
    llama_cpp = llama_cpp_or_skip()
    torch.manual_seed(29)
    cfg = config_mod.GPTConfig(vocab_size=50257, block_size=32, n_layer=1, n_head=2, n_embd=32,
                               position_encoding="sinusoidal", bias=False)  # fmt: skip
    model = model_mod.GPT(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    path = export_gguf.write_gguf(model, tmp_path / "sin.gguf")
    ids = list(range(300, 316))
    with torch.no_grad():
        ours = model(torch.tensor([ids]))[0][0].numpy()
    theirs = llama_cpp_logits(llama_cpp, path, ids, n_ctx=32)
    assert np.abs(theirs - ours).max() < 3e-4
    assert (theirs.argmax(-1) == ours.argmax(-1)).all()


def test_gguf_from_hf_directory_matches_transformers(hf_dir, tmp_path, capsys):
    llama_cpp = llama_cpp_or_skip()
    directory, hf = hf_dir
    out = tmp_path / "hf.gguf"
    export_gguf.main(["--init-from", str(directory), "--out", str(out)])
    ids = torch.randint(0, 50257, (16,), generator=torch.Generator().manual_seed(28))
    with torch.no_grad():
        expected = hf(ids[None]).logits[0].numpy()  # transformers: an independent forward
    theirs = llama_cpp_logits(llama_cpp, out, ids.tolist(), n_ctx=32)
    assert np.abs(theirs - expected).max() < 1e-3 * max(1.0, np.abs(expected).max())
    assert (theirs.argmax(-1) == expected.argmax(-1)).all()


def test_export_gguf_refuses_models_without_gpt2_vocabulary(char_ckpt, tmp_path, capsys):
    out = tmp_path / "char.gguf"
    with pytest.raises(SystemExit) as info:
        export_gguf.main(["--checkpoint", char_ckpt, "--out", str(out)])
    assert info.value.code == 1
    assert "GPT-2's BPE" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".char.gguf*"))
    with pytest.raises(SystemExit) as info:  # neither source given: a usage error
        export_gguf.main(["--out", str(out)])
    assert info.value.code == 2


def test_export_gguf_refuses_the_exact_gelu(tmp_path):
    # llama.cpp's gpt2 graph computes the tanh GELU: an activation="gelu" model would export
    # silently wrong logits, so it is refused.
    torch.manual_seed(0)
    model = model_mod.GPT(config_mod.GPTConfig(vocab_size=50257, block_size=16, n_layer=1,
                                               n_head=2, n_embd=16, activation="gelu"))
    with pytest.raises(ValueError, match="tanh approximation"):
        export_gguf.write_gguf(model, tmp_path / "m.gguf")
    assert not (tmp_path / "m.gguf").exists()
