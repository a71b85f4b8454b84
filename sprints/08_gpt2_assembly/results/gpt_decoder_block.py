"""The GPT-2 block: pre-LayerNorm, causal self-attention, a GELU MLP, two residual adds.

    x = x + attn(ln_1(x))      # tokens exchange information (only with earlier tokens)
    x = x + mlp(ln_2(x))       # each token is transformed on its own

Differences from sprint 7's decoder block: no cross-attention (GPT is decoder-only), and
the LayerNorm sits *before* each sub-layer ("pre-norm", GPT-2) instead of after the residual
add ("post-norm", the 2017 Transformer). Pre-norm leaves the residual path x -> x + ... free
of any normalization, so gradients reach the first layers undamped and deep stacks train
stably; Xiong et al. (2020) found pre-norm can even train without a learning-rate warm-up,
though sprint 9's presets still warm up. The final LayerNorm (``ln_f`` in model.py) then
normalizes the sum once at the end.

Submodule names mirror Hugging Face's GPT-2 (``ln_1, attn.c_attn, attn.c_proj, ln_2,
mlp.c_fc, mlp.c_proj``) so that its weights map onto these by name.

Every module here has a ``fused`` switch. True (the default) runs torch's fused kernels
(``F.layer_norm``, ``F.scaled_dot_product_attention``); False runs the from-scratch code of
sprints 6 and 7, the reference that the tests compare the fast path with.

The attention sees the whole sequence at once, positions 0..T-1, as in nanoGPT: there is
no KV cache here. Sprint 10 adds one around these same modules, without changing them
(``sprints/10_pretrained_and_generation/results/cached_forward.py``).
"""

from __future__ import annotations

from importlib import import_module

import torch.nn.functional as F
from torch import Tensor, nn

from .config import GPTConfig

_sdpa = import_module("sprints.06_multi_head_attention.results.scaled_dot_product_attention")
_mha = import_module("sprints.06_multi_head_attention.results.multi_head_attention")
_layer_norm = import_module("sprints.07_transformer_block.results.layer_norm")
_ffn = import_module("sprints.07_transformer_block.results.positionwise_feed_forward")


class LayerNorm(_layer_norm.LayerNorm):
    """Sprint 7's LayerNorm (same ``weight``/``bias`` parameters, same math), computed by
    torch's fused ``F.layer_norm`` kernel unless ``fused`` is False."""

    def __init__(self, normalized_shape: int, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__(normalized_shape, eps=eps, bias=bias)
        self.fused = True

    def forward(self, x: Tensor) -> Tensor:
        if not self.fused:
            return super().forward(x)  # sprint 7: (x - mean) / sqrt(var + eps) * w + b
        # One kernel instead of ~6 elementwise passes over (B, T, C).
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where token t attends to tokens 0..t only (nanoGPT's).

    One fused projection ``c_attn`` (C -> 3C) computes queries, keys and values together
    (one matmul instead of three, and HF's weight layout).
    """

    def __init__(self, config: GPTConfig, fused: bool = True) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.fused = fused
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # (B, T, 3C) -> 3 x (B, T, C)
        q = _mha.split_heads(q, self.n_head)  # (B, T, C) -> (B, nh, T, hs)
        k = _mha.split_heads(k, self.n_head)
        v = _mha.split_heads(v, self.n_head)
        dropout_p = self.dropout if self.training else 0.0
        if self.fused:  # torch's kernel builds the lower-triangular (T, T) mask itself
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        else:  # sprint 6's softmax(q k^T / sqrt(hs) + mask) v, written out
            mask = _sdpa.causal_mask(T, T, device=x.device)  # (T, T), True = attend
            y, _ = _sdpa.scaled_dot_product_attention(
                q, k, v, mask=mask, dropout_p=dropout_p, training=self.training
            )
        y = _mha.combine_heads(y)  # (B, nh, T, hs) -> (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """GPT-2's feed-forward: C -> 4C, GELU (tanh approximation), 4C -> C.

    The same computation as sprint 7's ``PositionwiseFeedForward(activation="gelu_tanh")``
    (a test copies weights between the two), with HF's names ``c_fc``/``c_proj`` in place of
    ``fc1``/``fc2`` so pretrained weights load by name.
    """

    def __init__(self, config: GPTConfig, fused: bool = True) -> None:
        super().__init__()
        self.fused = fused
        self.exact_gelu = config.activation == "gelu"
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.c_fc(x)  # (B, T, C) -> (B, T, 4C)
        # gelu_tanh(h) = 0.5 h (1 + tanh(sqrt(2/pi) (h + 0.044715 h^3))), GPT-2's "gelu_new":
        # torch's one fused kernel, or sprint 7's formula written out (5 elementwise ops).
        # activation="gelu" (an option, not GPT-2's): x * Phi(x) with the exact erf.
        if self.exact_gelu:
            h = F.gelu(h) if self.fused else _ffn.get_activation("gelu")(h)
        else:
            h = F.gelu(h, approximate="tanh") if self.fused else _ffn.gelu_tanh(h)
        return self.dropout(self.c_proj(h))  # (B, T, 4C) -> (B, T, C)


class GPTDecoderBlock(nn.Module):
    """One pre-norm transformer block: (B, T, C) -> (B, T, C)."""

    def __init__(self, config: GPTConfig, fused: bool = True) -> None:
        super().__init__()
        eps = config.layer_norm_epsilon
        self.ln_1 = LayerNorm(config.n_embd, eps=eps, bias=config.bias)
        self.attn = CausalSelfAttention(config, fused=fused)
        self.ln_2 = LayerNorm(config.n_embd, eps=eps, bias=config.bias)
        self.mlp = MLP(config, fused=fused)
        self.ln_1.fused = self.ln_2.fused = fused

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))  # (B, T, C)
        x = x + self.mlp(self.ln_2(x))  # (B, T, C)
        return x


def set_fused(module: nn.Module, fused: bool) -> None:
    """Switch every LayerNorm, attention and MLP under ``module`` between torch's fused
    kernels (True) and the from-scratch reference code of sprints 6 and 7 (False)."""
    for sub in module.modules():
        if isinstance(sub, LayerNorm | CausalSelfAttention | MLP):
            sub.fused = fused


__all__ = ["LayerNorm", "CausalSelfAttention", "MLP", "GPTDecoderBlock", "set_fused"]
