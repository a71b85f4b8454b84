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
logits_to_keep=1)`` computes for one new token per row, with the model's own weights (no
copies; on CPUs without AVX-512 the float32 products run in oneDNN, which splits a one-row
product over every core: ``_LINEAR``), in ~12 operations per layer:

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
import platform
from collections.abc import Callable
from importlib import import_module

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .kv_cache import KVCache
from .quantize import REDUCE_RANGE

_devices = import_module("sprints.01_setup_and_basics.results.devices")


def _as_function(module: nn.Module) -> Callable[[Tensor], Tensor]:
    """A plain nn.Linear becomes one library call on its own weight, chosen once here
    (``F.linear`` would redo that choice, and expand the bias, at every call); an
    Int8Linear with fbgemm's packed weights becomes its one-row kernel; anything else
    (LoRA, weight-only int8) is called as the module it is. x is (B, in)."""
    if type(module) is nn.Linear:
        weight, bias = module.weight, module.bias  # (out, in), (out,) or None
        if _use_onednn(weight):
            # oneDNN's inner product on the (out, in) weight as stored: no copy
            return lambda x: torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
        weight_t = weight.t()  # (in, out) view, no copy
        if bias is None:
            return lambda x: torch.mm(x, weight_t)
        return lambda x: torch.addmm(bias, x, weight_t)
    packed = getattr(module, "packed", None)
    if packed is not None and module.q.device.type == "cpu":
        # what Int8Linear.forward does for one row, without its reshapes and checks
        def int8_one_row(x: Tensor) -> Tensor:
            if x.size(0) != 1:
                return module(x)
            return torch.ops.quantized.linear_dynamic(x.float(), packed, REDUCE_RANGE).to(x.dtype)
        return int8_one_row
    return module


# Which library multiplies one row by a float32 weight on the CPU, by what was measured.
# On a 2-core AMD EPYC (AVX-512 no, AVX-512 BF16 no, AMX no), MKL's one-row product (addmm)
# read GPT-2 small's matrices at 15-26 GB/s with one thread or two alike, while oneDNN's
# inner product (torch.ops.mkldnn._linear_pointwise, the kernel torch.compile's CPU backend
# calls for linear layers) splits each product over both cores and read them at 19-35 GB/s:
# float32 decoding went from 35.7 to 50.9 tokens/s (benchmarks/bench_generate_llama_cpp.py).
# On the 2-core Intel Xeon (AVX-512 yes, AMX yes) MKL already ran at 85% of the bandwidth
# ceiling, so it stays there; ARM CPUs (not measured) keep PyTorch's usual addmm too.
# GEN_LINEAR=onednn or GEN_LINEAR=mkl forces the choice.
def _default_linear() -> str:
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    return "onednn" if x86 and not _devices.cpu_features()["avx512"] else "mkl"


_LINEAR = os.environ.get("GEN_LINEAR") or _default_linear()
if _LINEAR not in ("onednn", "mkl"):
    raise ValueError(f"GEN_LINEAR must be onednn or mkl, got {_LINEAR!r}; unset it to let "
                     "the CPU decide")


def _use_onednn(weight: Tensor) -> bool:
    return (_LINEAR == "onednn" and weight.device.type == "cpu"
            and weight.dtype == torch.float32 and torch.backends.mkldnn.is_available())


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
