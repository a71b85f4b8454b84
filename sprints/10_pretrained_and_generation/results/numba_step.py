"""A decoding step of a sprint 8 GPT as one compiled CPU function (numba), for batch decoding.

decode_step.py's ``DecodeStep`` already runs a step in ~12 PyTorch calls per layer; each
call still pays Python and library entry costs, and on a CPU each matrix product is handed
to a library (MKL, oneDNN, fbgemm) that starts and joins its worker threads again. A step
is only memory traffic (every weight read once, notes/05_decoding_speed.md), so what
matters is how close each product comes to the memory bandwidth, and how little happens
between products.

``NumbaStep`` writes the whole step as one function that numba (a compiler for numerical
Python, shipped as a wheel: no C compiler needed) turns into machine code on first use and
caches on disk. One Python call per token runs all 12 layers:

    x = wte[idx] + wpe[pos]                              (B, C) float32 working rows
    per layer:  qkv = ln_1(x) @ W_attn.T + b             (B, 3C), rows split over the cores
                k, v -> cache[layer, b, head, pos]       (rounded to bf16 for a bf16 cache)
                y = softmax(q K^T / sqrt(hs)) V          one (row, head) pair per core task
                x += y @ W_proj.T + b                    the residual add fused in
                x += gelu(ln_2(x) @ W_fc.T + b) @ W_fc_proj.T + b      GELU fused in
    logits = ln_f(x) @ W_lm.T                            (B, V) float32

Weights are read where the model keeps them (numpy views of its tensors, no copies).
float32 and bfloat16 weights are widened to float32 as they are loaded (bf16 by putting its
16 bits on top of a float32, exactly what bf16 means) and all arithmetic is float32, as
llama.cpp's is for f16 weights: a bf16 model's logits are therefore slightly *more*
precise here than in its bf16 PyTorch forward. int8 weights (quantize.py) are multiplied
as integers: each product's input row is first rounded to int16 with one step per block
of QBLOCK = 256 values (the block's largest |x| / 32767), the int8 x int16 products are
summed in int32 (one VNNI instruction per 16 pairs on a CPU with AVX512-VNNI, two
otherwise), and each block's sum is scaled by its step and the row's scale. That rounding
moves an input by at most 1/65534 of its block's largest value (llama.cpp's q8_0 rounds
its inputs to int8, 1/254): on the tests' small model the logits moved by about 3e-5
from ``Int8Linear``'s weight-only math, and a step takes fewer instructions per weight
than widening each int8 to float32 did.

Several new tokens at once (a short prompt) are rows b*T + t of the same arrays; each
query then attends to the cache and to the new tokens before it, and only each sequence's
last row goes through the LM head. Reading each weight once for all rows makes a prompt of
up to ``MAX_PREFILL_ROWS`` rows cheaper here than in PyTorch's products.

Used by generation.py's cached decoding when ``supports(model, cache)`` (numba installed,
a CPU model with plain or int8 linear layers, no LoRA); GEN_STEP=torch turns it off.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from torch import Tensor, nn

from . import bf16_prefill as _bf16_prefill
from . import decode_step as _decode_step
from . import quantize as _quantize
from .kv_cache import KVCache

try:  # numba comes with the default install (umap-learn needs it too); guard anyway
    import numba
    from numba import njit, prange, types
    from numba.extending import overload
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None

ROWS_PER_TASK = 16  # output rows per parallel task: 16 x 768 float32 = 48 KB of weights
# int8 products take int16 activations with one step per block of this many inputs: blocks
# of 256 keep each int32 sum below 2**31 (256 * 127 * 32767 < 2**31) and each step local
QBLOCK = 256
# A prompt of up to this many rows (batch x tokens) is cheaper through the compiled step,
# which reads each weight once for all rows, than through PyTorch's matrix products, which
# win on many rows. Measured on a 2-core AMD EPYC (AVX-512 yes, AVX-512 BF16 yes, AMX no),
# GPT-2 small, rows 1/4/16/32/64: float32 11.9/21.2/46.6/73.7/135.5 ms against PyTorch's
# 45.9/58.5/71.6/101.9/117.9 ms, int8 about the same; bf16 with bf16 hardware wins only up
# to 4 rows (14.8 against 18.5 ms; 25.9 against 18.1 at 8). Without that hardware a bf16
# prefill multiplies in float32 (bf16_prefill.py) and the float32 limit applies.
MAX_PREFILL_ROWS = 32
MAX_PREFILL_ROWS_BF16_HARDWARE = 4
_GELU_C = math.sqrt(2.0 / math.pi)
# epilogues of a product: what happens to each output value before it is stored
_STORE, _ADD, _GELU_TANH, _GELU_ERF = 0, 1, 2, 3


def _env_choice() -> str:
    choice = os.environ.get("GEN_STEP", "numba")
    if choice not in ("numba", "torch"):
        raise ValueError(f"GEN_STEP must be numba or torch, got {choice!r}; unset it to use "
                         "the compiled step where it applies")
    return choice


if numba is not None:

    def _widen(v):  # only called inside compiled code (see the overload below)
        raise NotImplementedError

    @overload(_widen, inline="always")
    def _widen_impl(v):
        """A stored weight as float32: bf16 bits (kept as uint16) are the top half of a
        float32; int8 becomes its integer value (its scale is applied after the sum)."""
        if v == types.uint16:
            return lambda v: np.uint32(np.uint32(v) << np.uint32(16)).view(np.float32)
        if isinstance(v, types.Integer):
            return lambda v: np.float32(v)
        return lambda v: v

    def _narrow(v, dst):  # compiled code only
        raise NotImplementedError

    @overload(_narrow, inline="always")
    def _narrow_impl(v, dst):
        """A float32 as the dtype of array ``dst``: for bf16, round to nearest even (what
        ``tensor.to(torch.bfloat16)`` does; NaN is not special-cased)."""
        if dst.dtype == types.uint16:
            def to_bf16(v, dst):
                bits = np.uint32(np.float32(v).view(np.uint32))
                odd = (bits >> np.uint32(16)) & np.uint32(1)  # ties go to the even half
                bits = np.uint32(bits + np.uint32(0x7FFF) + odd)
                return np.uint16(bits >> np.uint32(16))
            return to_bf16
        return lambda v, dst: np.float32(v)

    @njit(fastmath=True, cache=True)
    def _epilogue(v, old, mode):
        if mode == _ADD:
            return old + v
        if mode == _GELU_TANH:
            return np.float32(0.5) * v * (np.float32(1.0) + math.tanh(
                np.float32(_GELU_C) * (v + np.float32(0.044715) * v * v * v)))
        if mode == _GELU_ERF:
            return np.float32(0.5) * v * (np.float32(1.0) + math.erf(
                v * np.float32(0.7071067811865476)))
        return v

    @njit(parallel=True, fastmath=True, cache=True)
    def _linear(x, w, scale, bias, out, mode):
        """out[b, j] <- epilogue(scale[j] * (x[b] . w[j]) + bias[j]) for x (B, k), w (n, k):
        blocks of output rows go to the cores, each weight row is read once for all B rows."""
        B, k = x.shape
        n = w.shape[0]
        for blk in prange((n + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
            for j in range(blk * ROWS_PER_TASK, min(n, (blk + 1) * ROWS_PER_TASK)):
                for b in range(B):
                    acc = np.float32(0.0)
                    for i in range(k):
                        acc += _widen(w[j, i]) * x[b, i]
                    out[b, j] = _epilogue(acc * scale[j] + bias[j], out[b, j], mode)

    @njit(fastmath=True, cache=True)
    def _quantize_rows(x, xq, xs):
        """Each row of x (R, k) as int16 in blocks of QBLOCK: xq[r, i] * xs[r, i // QBLOCK]
        is x[r, i] to within half a step, a step being the block's largest |x| / 32767."""
        R, k = x.shape
        for r in range(R):
            for c in range((k + QBLOCK - 1) // QBLOCK):
                lo, hi = c * QBLOCK, min(k, (c + 1) * QBLOCK)
                top = np.float32(0.0)
                for i in range(lo, hi):
                    top = max(top, abs(x[r, i]))
                step = top / np.float32(32767.0) if top > 0 else np.float32(1.0)
                xs[r, c] = step
                inv = np.float32(1.0) / step
                for i in range(lo, hi):
                    v = min(max(np.round(x[r, i] * inv), np.float32(-32767.0)),
                            np.float32(32767.0))
                    xq[r, i] = np.int16(v)

    @njit(parallel=True, fastmath=True, cache=True)
    def _linear_int8(xq, xs, w, scale, bias, out, mode):
        """``_linear`` for int8 weights and int16 activations (``_quantize_rows``): integer
        dot products of QBLOCK terms (AVX512-VNNI's vpdpwssd where the CPU has it, which
        multiplies and adds 16-bit pairs into 32-bit sums), each then scaled by its
        block's step; the int32 sums cannot overflow (QBLOCK * 127 * 32767 < 2**31)."""
        B, k = xq.shape
        n = w.shape[0]
        blocks = xs.shape[1]
        for blk in prange((n + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
            for j in range(blk * ROWS_PER_TASK, min(n, (blk + 1) * ROWS_PER_TASK)):
                for b in range(B):
                    acc = np.float32(0.0)
                    for c in range(blocks):
                        # 1-D slices of one row: contiguous, which lets the loop vectorize
                        w_c = w[j, c * QBLOCK:min(k, (c + 1) * QBLOCK)]
                        x_c = xq[b, c * QBLOCK:min(k, (c + 1) * QBLOCK)]
                        dot = np.int32(0)
                        # each sum cast back to int32 (numba widens integer arithmetic
                        # to int64): 32-bit sums are what vpdpwssd/vpmaddwd produce
                        for i in range(w_c.shape[0]):
                            dot = np.int32(dot + np.int32(w_c[i]) * np.int32(x_c[i]))
                        acc += np.float32(dot) * xs[b, c]
                    out[b, j] = _epilogue(acc * scale[j] + bias[j], out[b, j], mode)

    def _product(x, w, scale, bias, out, mode, xq, xs):  # compiled code only
        raise NotImplementedError

    @overload(_product)
    def _product_impl(x, w, scale, bias, out, mode, xq, xs):
        """out <- epilogue(x @ w.T * scale + bias): int8 weights through int16 activations
        (xq, xs: flat scratch, at least R * k and R * blocks long), others in float32."""
        if w.dtype == types.int8:
            def int8_product(x, w, scale, bias, out, mode, xq, xs):
                R, k = x.shape
                blocks = (k + QBLOCK - 1) // QBLOCK
                q, steps = xq[:R * k].reshape(R, k), xs[:R * blocks].reshape(R, blocks)
                _quantize_rows(x, q, steps)
                _linear_int8(q, steps, w, scale, bias, out, mode)
            return int8_product
        return lambda x, w, scale, bias, out, mode, xq, xs: _linear(
            x, w, scale, bias, out, mode)

    @njit(fastmath=True, cache=True)
    def _layer_norm(x, weight, bias, eps, out):
        B, C = x.shape
        for b in range(B):
            mean = np.float32(0.0)
            for i in range(C):
                mean += x[b, i]
            mean /= C
            var = np.float32(0.0)
            for i in range(C):
                d = x[b, i] - mean
                var += d * d
            inv = np.float32(1.0) / np.sqrt(var / C + eps)
            for i in range(C):
                out[b, i] = (x[b, i] - mean) * inv * weight[i] + bias[i]

    @njit(parallel=True, fastmath=True, cache=True)
    def _attend(qkv, k_cache, v_cache, layer, pos, T, n_head, scores, y):
        """Write the T new positions' keys/values into the cache, then each new query
        against every cached position up to its own (causal). qkv (B*T, 3C), row b*T + t
        is position pos + t of sequence b; caches (L, B, nh, max_len, hs). One task per
        (sequence, head): it owns that head's cache rows, so writes and reads never race."""
        B = qkv.shape[0] // T
        hs = k_cache.shape[4]
        C = n_head * hs
        inv_sqrt = np.float32(1.0 / math.sqrt(hs))
        for bh in prange(B * n_head):
            b, h = bh // n_head, bh % n_head
            K, V = k_cache[layer, b, h], v_cache[layer, b, h]  # (max_len, hs) views
            for t in range(T):
                for d in range(hs):
                    K[pos + t, d] = _narrow(qkv[b * T + t, C + h * hs + d], K)
                    V[pos + t, d] = _narrow(qkv[b * T + t, 2 * C + h * hs + d], V)
            s = scores[bh]  # (max_len,) this task's row of scratch
            for t in range(T):
                r, last = b * T + t, pos + t  # the query's row and position
                q = qkv[r, h * hs:(h + 1) * hs]
                best = np.float32(-np.inf)
                for u in range(last + 1):  # s[u] = q . K[u] / sqrt(hs)
                    k_u = K[u]
                    acc = np.float32(0.0)
                    for d in range(hs):
                        acc += q[d] * _widen(k_u[d])
                    s[u] = acc * inv_sqrt
                    best = max(best, s[u])
                total = np.float32(0.0)
                for u in range(last + 1):  # softmax, shifted by the largest score
                    s[u] = np.exp(s[u] - best)
                    total += s[u]
                # y = sum_u s[u] V[u] / total, summed in a fresh array: the compiler then
                # knows it overlaps no input and vectorizes the loop over d
                out = np.zeros(hs, np.float32)
                for u in range(last + 1):
                    p, v_u = s[u], V[u]
                    for d in range(hs):
                        out[d] += p * _widen(v_u[d])
                for d in range(hs):
                    y[r, h * hs + d] = out[d] / total

    @njit(fastmath=True, cache=True)
    def _step(idx, pos, T, wte, wte_scale, wpe, small, attn_w, proj_w, fc_w, fc_proj_w,
              ln_f, head_w, head_scale, head_bias, k_cache, v_cache, eps, n_head, gelu,
              x, h, qkv, y, f, xq, xs, scores, last, logits):
        """All layers for T new tokens of each sequence (rows b*T + t of the working
        arrays, ids ``idx`` in that order), then the logits of each sequence's last token.
        ``small`` holds each layer's float32 vectors (NumbaStep._small_vectors), the *_w
        lists its matrices as the model stores them."""
        R, C = x.shape  # R = B * T rows
        for r in range(R):
            for i in range(C):
                x[r, i] = _widen(wte[idx[r], i]) * wte_scale[idx[r]] + wpe[pos + r % T, i]
        for layer in range(len(attn_w)):
            v = small[layer]
            _layer_norm(x, v[0, :C], v[1, :C], eps, h)
            _product(h, attn_w[layer], v[2, :3 * C], v[3, :3 * C], qkv, _STORE, xq, xs)
            _attend(qkv, k_cache, v_cache, layer, pos, T, n_head, scores, y)
            _product(y, proj_w[layer], v[4, :C], v[5, :C], x, _ADD, xq, xs)
            _layer_norm(x, v[6, :C], v[7, :C], eps, h)
            _product(h, fc_w[layer], v[8], v[9], f, gelu, xq, xs)
            _product(f, fc_proj_w[layer], v[10, :C], v[11, :C], x, _ADD, xq, xs)
        B = R // T
        for b in range(B):  # only each sequence's last token predicts the next one
            last[b] = x[b * T + T - 1]
        _layer_norm(last, ln_f[0], ln_f[1], eps, last)
        _product(last, head_w, head_scale, head_bias, logits, _STORE, xq, xs)


def _as_numpy(t: Tensor) -> np.ndarray:
    """A numpy view of a CPU tensor's memory (no copy); bf16 as its raw uint16 bits."""
    t = t.detach()
    if not t.is_contiguous():
        raise ValueError("the compiled step needs contiguous weights")
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy()


def _matrix(module: nn.Module) -> tuple[Tensor, Tensor | None, Tensor | None] | None:
    """(weight as stored, per-row scales or None, bias or None) of a linear layer this step
    can read, or None (LoRA and other wrappers fall back to DecodeStep)."""
    if type(module) is nn.Linear:
        return module.weight, None, module.bias
    if isinstance(module, _quantize.Int8Linear):
        return module.q, module.scales, module.bias
    return None


_WEIGHT_DTYPES = (torch.float32, torch.bfloat16, torch.int8)


def supports(model: nn.Module, cache: KVCache) -> bool:
    """True where NumbaStep runs this model: numba importable, GEN_STEP not torch, a CPU
    sprint 8 GPT (DecodeStep's ``supports``) whose linear layers are all plain or all int8,
    and a float32 or bf16 cache."""
    if numba is None or _env_choice() != "numba" or not _decode_step.supports(model):
        return False
    if cache.device.type != "cpu" or cache.dtype not in (torch.float32, torch.bfloat16):
        return False
    wte = model.transformer.wte
    if not isinstance(wte, nn.Embedding | _quantize.Int8Embedding):
        return False
    layers = [m for b in model.transformer.h
              for m in (b.attn.c_attn, b.attn.c_proj, b.mlp.c_fc, b.mlp.c_proj)]
    found = [_matrix(m) for m in [*layers, model.lm_head]]
    if any(f is None for f in found):
        return False
    dtypes = {f[0].dtype for f in found[:-1]}
    return (len(dtypes) == 1 and dtypes <= set(_WEIGHT_DTYPES)
            and found[-1][0].device.type == "cpu"
            and all(f[0].is_contiguous() for f in found))


def _float_vector(t: Tensor | None, n: int, fill: float) -> Tensor:
    return torch.full((n,), fill) if t is None else t.detach().float().reshape(n)


class NumbaStep:
    """``step(idx)``: idx (B, T) new tokens -> float32 logits (B, V) of each row's last
    token; writes their keys and values into ``cache`` at ``cache.length`` and advances it
    by T, like ``DecodeStep`` (T = 1) or a short prefill (``cached_forward``, T > 1)."""

    def __init__(self, model: nn.Module, cache: KVCache) -> None:
        if not supports(model, cache):
            raise ValueError("NumbaStep needs numba and a CPU sprint 8 GPT with fused layers "
                             "whose linear layers are all nn.Linear or all Int8Linear")
        cfg = model.config
        tr = model.transformer
        B, C = cache.batch_size, cfg.n_embd
        self.cache, self.n_head = cache, cfg.n_head
        self.eps = np.float32(cfg.layer_norm_epsilon)
        self.gelu = (_GELU_TANH if getattr(cfg, "activation", "gelu_tanh") == "gelu_tanh"
                     else _GELU_ERF)
        # the model's own memory, seen as numpy arrays; only small vectors are copied
        if isinstance(tr.wte, _quantize.Int8Embedding):
            self.wte, wte_scale = _as_numpy(tr.wte.q), tr.wte.scales
        else:
            self.wte, wte_scale = _as_numpy(tr.wte.weight), None
        self.wte_scale = _float_vector(wte_scale, self.wte.shape[0], 1.0).numpy()
        with torch.no_grad():  # the position table as the model computes it
            self.wpe = tr.wpe(torch.arange(cfg.block_size)).float().contiguous().numpy()
        mats = {name: numba.typed.List() for name in ("attn", "proj", "fc", "fc_proj")}
        self.small = numba.typed.List()
        for blk in tr.h:
            parts = [(blk.ln_1.weight, None, blk.ln_1.bias), _matrix(blk.attn.c_attn),
                     _matrix(blk.attn.c_proj), (blk.ln_2.weight, None, blk.ln_2.bias),
                     _matrix(blk.mlp.c_fc), _matrix(blk.mlp.c_proj)]
            for name, (w, _, _) in zip(mats, [parts[1], parts[2], parts[4], parts[5]], strict=True):
                mats[name].append(_as_numpy(w))
            self.small.append(self._small_vectors(parts, 4 * C))
        self.mats = mats
        head_w, head_scale, head_bias = _matrix(model.lm_head)
        self.head_w = _as_numpy(head_w)
        V = self.head_w.shape[0]
        self.head_scale = _float_vector(head_scale, V, 1.0).numpy()
        self.head_bias = _float_vector(head_bias, V, 0.0).numpy()
        self.ln_f = torch.stack([tr.ln_f.weight.detach().float(),
                                 _float_vector(tr.ln_f.bias, C, 0.0)]).numpy()
        self.k_cache, self.v_cache = _as_numpy(cache.k), _as_numpy(cache.v)
        self.scores = np.empty((B * cfg.n_head, cache.max_len), np.float32)
        self.last = np.empty((B, C), np.float32)
        self.vocab, self.width, self.hidden = V, C, self.mats["fc"][0].shape[0]
        bf16_hardware = self.head_w.dtype == np.uint16 and not _bf16_prefill.needed(model)
        # prompts of at most this many rows (B x T) are prefilled here (see MAX_PREFILL_ROWS)
        self.max_prefill_rows = (MAX_PREFILL_ROWS_BF16_HARDWARE if bf16_hardware
                                 else MAX_PREFILL_ROWS)
        self._rows: dict[int, tuple] = {}  # working arrays for B*T rows, made once per T

    def _working_rows(self, rows: int) -> tuple:
        """(x, h, qkv, y, f) float32 arrays of ``rows`` rows, then the int8 products' flat
        int16 activations and their steps (``_product``), allocated on first use."""
        if rows not in self._rows:
            C, widest = self.width, max(self.width, self.hidden)
            self._rows[rows] = (np.empty((rows, C), np.float32),
                                np.empty((rows, C), np.float32),
                                np.empty((rows, 3 * C), np.float32),
                                np.empty((rows, C), np.float32),
                                np.empty((rows, self.hidden), np.float32),
                                np.empty(rows * widest, np.int16),
                                np.empty(rows * -(-widest // QBLOCK), np.float32))
        return self._rows[rows]

    @staticmethod
    def _small_vectors(parts, width: int) -> np.ndarray:
        """One layer's LayerNorm weights, scales and biases as rows of a (12, width) float32
        array: [ln_1 w, b, attn scale, bias, proj scale, bias, ln_2 w, b, fc scale, bias,
        fc_proj scale, bias], each padded with zeros to ``width``."""
        rows = []
        for i, (w, scale, bias) in enumerate(parts):
            if i in (0, 3):  # a LayerNorm: weight and bias
                rows += [w.detach().float(), _float_vector(bias, w.shape[0], 0.0)]
            else:
                n = w.shape[0]
                rows += [_float_vector(scale, n, 1.0), _float_vector(bias, n, 0.0)]
        out = torch.zeros(len(rows), width)
        for i, r in enumerate(rows):
            out[i, : r.numel()] = r
        return out.numpy()

    def __call__(self, idx: Tensor) -> Tensor:
        cache, pos = self.cache, self.cache.length
        B, T = idx.shape
        if pos + T > cache.max_len:
            raise ValueError(f"{T} new tokens do not fit: the cache holds {pos} of "
                             f"{cache.max_len} positions; reset it and prefill with "
                             "cached_forward.forward_with_cache(...) first")
        if B != cache.batch_size:
            raise ValueError(f"idx has {B} rows but the cache was made for {cache.batch_size}")
        ids = idx.reshape(B * T).to(torch.int64).numpy()  # (B, T) -> rows b*T + t
        if ids.min() < 0 or ids.max() >= self.wte.shape[0]:
            raise ValueError(f"token ids must be in 0..{self.wte.shape[0] - 1}")
        logits = torch.empty(B, self.vocab)
        # as many cores as PyTorch was given (torch.set_num_threads); numba's own pool
        numba.set_num_threads(min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
        m = self.mats
        _step(ids, pos, T, self.wte, self.wte_scale, self.wpe, self.small, m["attn"],
              m["proj"], m["fc"], m["fc_proj"], self.ln_f, self.head_w, self.head_scale,
              self.head_bias, self.k_cache, self.v_cache, self.eps, self.n_head, self.gelu,
              *self._working_rows(B * T), self.scores, self.last, logits.numpy())
        cache.advance(T)
        return logits


__all__ = ["NumbaStep", "supports"]
