"""One decoding step of a sprint 8 GPT as a single flat function: the same math, fewer ops.

A cached decoding step feeds one token per sequence, x of shape (B, 1, C). Its matmuls read
every weight once (the memory-bound part, see notes/05_decoding_speed.md); everything else
is Python and small tensor ops, and the general cached pass (cached_forward.py's
``forward_with_cache``) spends that generously, because it runs sprint 8's modules, which
are written to be read and to serve training: per layer about 30 tensor operations (views
and transposes of q, k and v, two cache writes, shape checks, a token-range check that
reads a value back from the tensor) inside nested module calls. Profiled on GPT-2 small in
float32 (when that cached pass still ran inside sprint 8's ``GPT.forward``, through the
same operations), that was about a fifth of a step.

``DecodeStep`` computes exactly what ``forward_with_cache(model, idx, cache,
logits_to_keep=1)`` computes for one new token per row, with the model's own weights (on
CPUs without AVX-512, float32 copies of the widening matrices laid out for a faster
one-row product: ``_transposed_weight``), in ~12 operations per layer:

    x = wte[idx] + wpe[pos]                                         (B, C)
    per layer:  qkv = c_attn(ln_1(x))                               (B, 3C) -> (B, 3, nh, hs)
                cache.k[layer, :, :, pos] = k;  same for v          one write each, no transpose
                y = sdpa(q, K[:pos+1], V[:pos+1])                   (B, nh, 1, hs) -> (B, C)
                x = x + c_proj(y);  x = x + mlp(ln_2(x))
    logits = lm_head(ln_f(x))                                       (B, V)

It applies to the model as it is (float32, bfloat16, int8 layers from quantize.py, LoRA
layers: each linear layer is called as the module it is, plain ``nn.Linear`` ones directly
as ``F.linear``). Models this step does not know (reference ``fused=False`` layers, another
activation) are refused by ``supports``, and generation then uses ``forward_with_cache``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib import import_module

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .kv_cache import KVCache

_devices = import_module("sprints.01_setup_and_basics.results.devices")


def _as_function(module: nn.Module) -> Callable[[Tensor], Tensor]:
    """A plain nn.Linear becomes one ``addmm`` (or ``mm``) with its transposed weight, made
    once here (``F.linear`` would make the view, and expand the bias, at every call);
    anything else (Int8Linear, LoRA) is called as the module it is. x is (B, in)."""
    if type(module) is nn.Linear:
        weight_t, bias = _transposed_weight(module.weight), module.bias  # (in, out)
        if bias is None:
            return lambda x: torch.mm(x, weight_t)
        return lambda x: torch.addmm(bias, x, weight_t)
    return module


# Pre-transposing a float32 weight to a contiguous (in, out) copy made the one-row product
# x @ W^T about 1.8x faster for the widening matrices (out > in: c_attn, c_fc, lm_head) on a
# 2-core AMD EPYC (AVX-512 no, AVX-512 BF16 no, AMX no): MKL read the (out, in) layout at
# 14-17 GB/s and the (in, out) copy at 26-31 GB/s (for the narrowing c_proj the original
# layout was the faster one), and GPT-2 small's float32 decoding went from 30.8 to 37.1
# tokens/s, 37.4 in a second run (benchmarks/bench_generate_llama_cpp.py). On the 2-core
# Intel Xeon (AVX-512 yes, AMX yes) the plain views already ran at 85% of the bandwidth
# ceiling, so the copies, which cost those matrices' memory again (GPT-2 small: 352 MB), are
# made only on CPUs without AVX-512. GEN_WEIGHT_COPY=1 or 0 forces the choice.
_COPY_WIDENING = os.environ.get(
    "GEN_WEIGHT_COPY", "0" if _devices.cpu_features()["avx512"] else "1") == "1"


def _transposed_weight(weight: Tensor) -> Tensor:
    out_features, in_features = weight.shape
    if (_COPY_WIDENING and weight.device.type == "cpu" and weight.dtype == torch.float32
            and out_features > in_features):
        return weight.detach().t().contiguous()  # (in, out), a copy: generation only reads it
    return weight.t()  # (in, out) view, no copy


def supports(model: nn.Module) -> bool:
    """True for a sprint 8 GPT on its fast path (fused kernels, GELU tanh or exact)."""
    blocks = getattr(getattr(model, "transformer", None), "h", None)
    if blocks is None or not hasattr(model, "lm_head"):
        return False
    return all(b.attn.fused and b.mlp.fused and b.ln_1.fused and b.ln_2.fused for b in blocks)


class DecodeStep:
    """``step(idx)``: idx (B, 1) new tokens -> logits (B, V) of the next token; writes their
    keys/values into ``cache`` at position ``cache.length`` and advances it by one."""

    def __init__(self, model: nn.Module, cache: KVCache) -> None:
        if not supports(model):
            raise ValueError("DecodeStep needs a sprint 8 GPT with fused layers "
                             "(model.set_fused(True))")
        cfg = model.config
        self.cache = cache
        self.n_head, self.n_embd = cfg.n_head, cfg.n_embd
        self.head_dim = cfg.n_embd // cfg.n_head
        self.eps = cfg.layer_norm_epsilon
        self.gelu = "tanh" if getattr(cfg, "activation", "gelu_tanh") == "gelu_tanh" else "none"
        tr = model.transformer
        self.wte = tr.wte  # an nn.Embedding, or quantize.py's Int8Embedding
        with torch.no_grad():  # the position table as the model computes it: learned or fixed
            self.positions = tr.wpe(torch.arange(cfg.block_size, device=cache.device))
        self.layers = [
            (b.ln_1.weight, b.ln_1.bias, _as_function(b.attn.c_attn),
             _as_function(b.attn.c_proj), b.ln_2.weight, b.ln_2.bias,
             _as_function(b.mlp.c_fc), _as_function(b.mlp.c_proj))
            for b in tr.h
        ]
        self.ln_f = (tr.ln_f.weight, tr.ln_f.bias)
        self.lm_head = _as_function(model.lm_head)

    @torch.inference_mode()
    def __call__(self, idx: Tensor) -> Tensor:
        cache, pos = self.cache, self.cache.length
        if pos >= cache.max_len:
            raise ValueError(f"the cache is full ({cache.max_len} positions); reset it and "
                             "prefill with cached_forward.forward_with_cache(...) first")
        B, nh, hs, C = idx.size(0), self.n_head, self.head_dim, self.n_embd
        x = self.wte(idx.view(B)) + self.positions[pos]  # (B, C)
        for i, (w1, b1, c_attn, c_proj, w2, b2, c_fc, fc_proj) in enumerate(self.layers):
            qkv = c_attn(F.layer_norm(x, (C,), w1, b1, self.eps)).view(B, 3, nh, hs)
            cache.k[i, :, :, pos] = qkv[:, 1]  # (B, nh, hs) into (B, nh, max_len, hs)
            cache.v[i, :, :, pos] = qkv[:, 2]
            q = qkv[:, 0].unsqueeze(2)  # (B, nh, 1, hs): one query sees all cached keys
            y = F.scaled_dot_product_attention(
                q, cache.k[i, :, :, : pos + 1], cache.v[i, :, :, : pos + 1])
            x = x + c_proj(y.view(B, C))  # (B, nh, 1, hs) -> (B, C)
            h = F.gelu(c_fc(F.layer_norm(x, (C,), w2, b2, self.eps)), approximate=self.gelu)
            x = x + fc_proj(h)
        cache.advance(1)
        return self.lm_head(F.layer_norm(x, (C,), *self.ln_f, self.eps))  # (B, V)


__all__ = ["DecodeStep", "supports"]
