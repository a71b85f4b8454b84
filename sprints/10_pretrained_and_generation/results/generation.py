"""Autoregressive generation with or without a KV cache, token by token.

``generate`` is a Python generator: it yields each new token as soon as it is chosen,
so a caller can print it at once (streaming), stop early, or collect everything
(``generate_all``).

Context window. A GPT with learned absolute positions cannot see more than
``block_size`` tokens. When the sequence grows past that:

- without a cache (``use_kv_cache=False``), every step simply runs the model on the
  last ``block_size`` tokens (nanoGPT's crop): a true sliding window, but every step
  recomputes the whole window;
- with a cache, the cached keys/values were computed at fixed positions, and sliding
  the window by one token would shift every position, so nothing in the cache could be
  reused. Instead, when the cache is full, it is emptied and *re-prefilled* with the last
  ``refill_tokens`` tokens of the sequence (default ``block_size // 2``) in one forward
  pass; the following ``block_size - refill_tokens`` steps are cheap one-token steps
  again. The cost of a refill is spread over those steps, at the price of a context that
  shrinks to ``refill_tokens`` right after each refill (the uncached path always sees a
  full ``block_size``). With ``refill_tokens=block_size`` the cached path sees exactly
  the same window as the uncached one at every step (and generates the same tokens
  under greedy decoding), but then every step past the window is a full re-prefill.

The uncached path calls sprint 8's ``model(idx, logits_to_keep=1)``; the cached one calls
cached_forward.py's ``forward_with_cache(model, new_tokens, cache, logits_to_keep=1)`` (the
same modules, only the new tokens) for the prompt; one-token steps run numba_step.py's
compiled ``NumbaStep`` on a CPU (after huge_pages.py has moved the weights and the cache to
2 MB pages), or decode_step.py's ``DecodeStep`` where that does not apply.
A bfloat16 model's prefill on a CPU without bfloat16 arithmetic multiplies in float32
(bf16_prefill.py: several times faster there).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from . import bf16_prefill, cached_forward, decode_step, huge_pages, numba_step, openmp_runtime
from .kv_cache import KVCache
from .sampling import sample_next_token


def _check_inputs(model: nn.Module, idx: Tensor, max_new_tokens: int) -> None:
    if not hasattr(model, "config") or not hasattr(model.config, "block_size"):
        raise TypeError("generate expects a sprint 8 GPT (a model with .config.block_size)")
    if idx.dim() != 2 or idx.dtype != torch.long or idx.size(1) == 0:
        raise ValueError(
            f"idx must be a non-empty (B, T) LongTensor of token ids, got shape "
            f"{tuple(idx.shape)} and dtype {idx.dtype}; encode a prompt of at least one token"
        )
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")


# The cache of a model's last finished call, kept for its next one. A new cache is new
# memory (75 MB for GPT-2 small in float32) that must be zeroed and page-faulted in: on a
# 2-core AMD EPYC (AVX-512 yes, AVX-512 BF16 yes, AMX no) 36-117 ms per call, several decoding
# steps' worth, against 2-5 ms to write all of a kept one.
_spare_lock = threading.Lock()
_spare_caches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> KVCache


def _take_spare_cache(model: nn.Module, batch_size: int) -> KVCache:
    """The model's kept cache if it fits (taken, so two calls at once never share one),
    else a new one."""
    with _spare_lock:
        spare = _spare_caches.pop(model, None)
    if spare is not None and spare.fits(model, batch_size):
        return spare
    return KVCache.for_model(model, batch_size)


@torch.inference_mode()
def generate(
    model: nn.Module,
    idx: Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    generator: torch.Generator | None = None,
    use_kv_cache: bool = True,
    refill_tokens: int | None = None,
    eos_token_id: int | None = None,
    cache: KVCache | None = None,
    allowed_tokens: int | None = None,
    fast_decode: bool = True,
) -> Iterator[Tensor]:
    """Yield ``max_new_tokens`` new tokens, one (B,) LongTensor per step.

    idx: (B, T) prompt token ids. ``greedy`` (or ``temperature=0``) takes the argmax;
    otherwise tokens are drawn with temperature/top-k/top-p (see sampling.py) using
    ``generator``. ``eos_token_id`` stops early once every row has produced it.
    ``cache`` lets a caller reuse one KVCache across calls (it is reset here); without one,
    the cache of the model's last finished call is reused where it fits.
    ``allowed_tokens``: only ids below it are chosen (the tokenizer's vocabulary size, for a
    model whose embedding rows were padded beyond it: those rows are no token).
    ``fast_decode``: cached one-token steps run numba_step.py's ``NumbaStep`` (CPU) or
    decode_step.py's ``DecodeStep`` (the same logits as ``forward_with_cache`` up to float
    rounding, far fewer operations); False runs ``forward_with_cache`` for them too. On a
    CPU the first NumbaStep also moves the model's large tensors to huge-page memory
    (huge_pages.py: same Parameter objects and values, new memory).
    Call ``model.eval()`` first: dropout would make the outputs random.
    """
    _check_inputs(model, idx, max_new_tokens)
    block_size = model.config.block_size
    refill = block_size // 2 if refill_tokens is None else refill_tokens
    if not 1 <= refill <= block_size:
        raise ValueError(f"refill_tokens must be in 1..{block_size}, got {refill}")
    if greedy:
        temperature = 0.0
    B, T0 = idx.shape

    # The whole sequence in one preallocated buffer: no torch.cat per step.
    seq = torch.empty(B, T0 + max_new_tokens, dtype=torch.long, device=idx.device)
    seq[:, :T0] = idx
    n = T0  # tokens in seq so far
    finished = torch.zeros(B, dtype=torch.bool, device=idx.device)

    def choose(logits: Tensor) -> Tensor:
        # logits (B, 1, V): only the last position predicts the next token, so the model
        # computes only its logits (logits_to_keep=1).
        last = logits[:, -1, :]
        if allowed_tokens is not None and allowed_tokens < last.size(-1):
            last = last.clone()
            last[:, allowed_tokens:] = -float("inf")
        return sample_next_token(last, temperature, top_k, top_p, generator)

    def prefill(tokens: Tensor) -> Tensor:
        # Several tokens in one pass fill an empty cache (the prompt, or a refill). A short
        # prompt goes through the compiled step (cheaper for a few rows, numba_step.py);
        # bfloat16 models multiply in float32 where the CPU has no bfloat16 arithmetic.
        if isinstance(step_fn, numba_step.NumbaStep) and tokens.numel() <= step_fn.max_prefill_rows:
            return step_fn(tokens).unsqueeze(1)  # (B, V) -> (B, 1, V)
        with bf16_prefill.float32_linears(model):
            return cached_forward.forward_with_cache(model, tokens, cache, logits_to_keep=1)

    if max_new_tokens == 0:
        return

    own_cache = use_kv_cache and (cache is None or cache.batch_size != B
                                  or cache.max_len != block_size)
    if use_kv_cache:
        if own_cache:
            cache = _take_spare_cache(model, B)
        cache.reset()
        step_fn = None
        if fast_decode and numba_step.supports(model, cache):
            huge_pages.use_huge_pages(model)  # once per model: its weights on 2 MB pages
            if not huge_pages.on_huge_pages(cache.k):  # and the cache that each step reads
                cache.k, cache.v = huge_pages.empty_like(cache.k), huge_pages.empty_like(cache.v)
            step_fn = numba_step.NumbaStep(model, cache)
            openmp_runtime.warn_if_foreign()  # once: another package's libgomp is slow here
        elif fast_decode and decode_step.supports(model):
            step_fn = decode_step.DecodeStep(model, cache)
        # Prefill: the prompt (its last block_size tokens) in one pass fills the cache.
        logits = prefill(seq[:, max(0, n - block_size) : n])

    try:
        for step in range(max_new_tokens):
            if not use_kv_cache:
                # Crop to the last block_size tokens: positions restart at 0 for the window.
                logits, _ = model(seq[:, max(0, n - block_size) : n], logits_to_keep=1)
            next_token = choose(logits).view(B)  # (B, 1) -> (B,)
            seq[:, n] = next_token
            n += 1
            yield next_token
            if eos_token_id is not None:
                finished |= next_token == eos_token_id
                if bool(finished.all()):
                    return
            if use_kv_cache and step + 1 < max_new_tokens:
                if cache.length >= block_size:
                    # Window full: re-prefill from the tail of the sequence (see module doc).
                    cache.reset()
                    logits = prefill(seq[:, n - refill : n])
                else:
                    # Decode step: only the newest token goes through the model, (B, 1).
                    if step_fn is not None:
                        logits = step_fn(seq[:, n - 1 : n]).unsqueeze(1)  # (B, V) -> (B, 1, V)
                    else:
                        logits = cached_forward.forward_with_cache(
                            model, seq[:, n - 1 : n], cache, logits_to_keep=1
                        )
    finally:  # finished, stopped at EOS, or closed early: keep the cache for the next call
        if own_cache:
            with _spare_lock:
                _spare_caches[model] = cache


def generate_all(model: nn.Module, idx: Tensor, max_new_tokens: int, **kwargs) -> Tensor:
    """Run ``generate`` to the end: (B, T) -> (B, T + new tokens) (prompt included)."""
    new = list(generate(model, idx, max_new_tokens, **kwargs))
    if not new:
        return idx
    return torch.cat([idx, torch.stack(new, dim=1)], dim=1)


class TextStreamer:
    """Turn a stream of token ids into printable text pieces, one call per token.

    A GPT-2 BPE token is a sequence of *bytes*; a character such as an emoji (4 UTF-8
    bytes) can be split over several tokens, and one of those tokens alone does not
    decode. The streamer keeps tokens pending until they decode to complete characters
    (no trailing U+FFFD replacement character, no decode error), then emits the text.
    Byte-level BPE decodes a concatenation of tokens to the concatenation of their bytes,
    so decoding piece by piece gives the same text as decoding everything at the end.
    """

    def __init__(self, decode: Callable[[list[int]], str], max_pending: int = 8) -> None:
        self.decode = decode
        self.max_pending = max_pending  # a genuinely invalid byte run is flushed eventually
        self.pending: list[int] = []

    def push(self, token_id: int) -> str:
        self.pending.append(int(token_id))
        try:
            text = self.decode(self.pending)
        except UnicodeDecodeError:
            text = "\ufffd"
        if text.endswith("\ufffd") and len(self.pending) < self.max_pending:
            return ""  # wait for the rest of the character's bytes
        self.pending = []
        return text

    def flush(self) -> str:
        if not self.pending:
            return ""
        try:
            text = self.decode(self.pending)
        except UnicodeDecodeError:
            text = "\ufffd"
        self.pending = []
        return text
