"""Sprint 8's GPT with a KV cache: only the new tokens, through the model's own modules.

Sprint 8's ``GPT.forward(idx)`` always sees a whole sequence, positions 0..T-1, and its
attention computes the keys and values of all T tokens. With a cache (kv_cache.py) a pass
gets only the T *new* tokens that follow ``past = cache.length`` cached ones;
``forward_with_cache(model, idx, cache)`` is that pass. It is sprint 8's
``GPT.hidden_states`` + ``lm_head`` and ``CausalSelfAttention.forward`` with four changes
(notes/02_kv_cache.md walks through them with shapes):

1. positions: the new tokens sit at ``past .. past + T - 1``, so ``wpe`` looks those up;
2. attention layer i hands its new k, v to ``cache.update(i, k, v)`` and gets back the keys
   and values of all ``T_k = past + T`` positions; the queries stay the T new tokens;
3. the causal mask of T queries against T_k keys. The new tokens are the LAST T positions,
   so query i may see keys ``j <= past + i``: with an empty cache (T_k == T) that is the
   usual lower triangle, for one new token (T == 1) it is every key (no mask at all), and
   for a chunk after a cached prefix it is sprint 6's ``causal_mask(T, T_k)``;
4. ``cache.advance(T)`` after the last layer, so every layer of the pass saw the same
   ``length``.

Everything else is the model's own modules, called as the modules they are (``wte``,
``wpe``, ``drop``, ``ln_1``, ``attn.c_attn``, ``attn.c_proj``, ``attn.resid_dropout``,
``ln_2``, ``mlp``, ``ln_f``, ``lm_head``): bfloat16 weights, LoRA layers (lora.py) and
quantize.py's ``Int8Linear``/``Int8Embedding`` run here unchanged, and the model and its
``state_dict`` stay sprint 8's. ``generation.generate`` calls this for every cached pass that
decode_step.py's flat ``DecodeStep`` does not take (prompts, refills, reference layers).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# The helpers sprint 8's attention uses, from where they were written (sprint 6).
_sdpa = import_module("sprints.06_multi_head_attention.results.scaled_dot_product_attention")
_mha = import_module("sprints.06_multi_head_attention.results.multi_head_attention")


def cached_attention(attn: nn.Module, x: Tensor, cache: Any, layer: int) -> Tensor:
    """Sprint 8's ``CausalSelfAttention.forward`` for T new tokens after ``cache.length``
    cached ones: x (B, T, C), the output of the block's ``ln_1`` -> (B, T, C).

    ``attn`` is the layer's ``CausalSelfAttention`` (its weights, ``n_head``, ``dropout``
    and ``fused`` switch); ``layer`` is its index, the cache slot it writes.
    """
    B, T, C = x.shape
    q, k, v = attn.c_attn(x).split(C, dim=2)  # (B, T, 3C) -> 3 x (B, T, C)
    q = _mha.split_heads(q, attn.n_head)  # (B, T, C) -> (B, nh, T, hs)
    k = _mha.split_heads(k, attn.n_head)
    v = _mha.split_heads(v, attn.n_head)
    # What the cache changes: store the new keys/values, attend over every position so far.
    k, v = cache.update(layer, k, v)  # (B, nh, T, hs) -> (B, nh, T_k, hs), T_k = past + T
    T_k = k.size(2)
    dropout_p = attn.dropout if attn.training else 0.0
    if not attn.fused:  # sprint 6's reference: causal_mask(T, T_k) is right in every case
        mask = _sdpa.causal_mask(T, T_k, device=x.device)  # (T, T_k), True = attend
        y, _ = _sdpa.scaled_dot_product_attention(
            q, k, v, mask=mask, dropout_p=dropout_p, training=attn.training
        )
    elif T_k == T:  # nothing cached before these tokens (a prefill): sprint 8's own call
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
    elif T == 1:  # one new token (a decoding step) may see every cached key: no mask
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    else:
        # Several new tokens after a cached prefix. is_causal=True would be wrong here:
        # torch aligns its mask to the top-left corner (query i sees keys 0..i), so the
        # new tokens would miss the cache. They are the LAST T queries: keys j <= past + i.
        mask = _sdpa.causal_mask(T, T_k, device=x.device)  # (T, T_k), True = attend
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    y = _mha.combine_heads(y)  # (B, nh, T, hs) -> (B, T, C)
    return attn.resid_dropout(attn.c_proj(y))


def forward_with_cache(
    model: nn.Module, idx: Tensor, cache: Any, logits_to_keep: int = 0
) -> Tensor:
    """idx (B, T): T new tokens after the ``cache.length`` cached ones -> their logits
    (B, T, vocab_size), or those of the last k only, (B, k, vocab_size), with
    ``logits_to_keep=k`` > 0 (generation keeps 1).

    Writes every layer's new keys/values into ``cache`` and advances it by T. ``model``: a
    sprint 8 GPT (fused or reference layers). ``cache``: kv_cache.py's ``KVCache``, or any
    object with ``length``, ``update(layer_idx, k, v)`` and ``advance(n)``. The inputs are
    checked as ``GPT.forward`` checks them, and past + T must fit in ``block_size``.
    """
    if not all(hasattr(model, name) for name in ("transformer", "lm_head", "check_idx")):
        raise TypeError(
            f"forward_with_cache runs a sprint 8 GPT's modules, got {type(model).__name__}; "
            "generate(..., use_kv_cache=False) runs any model whose "
            "forward(idx, logits_to_keep=1) returns (logits, loss)"
        )
    if logits_to_keep < 0:
        raise ValueError(
            f"logits_to_keep must be 0 (all positions) or positive; got {logits_to_keep}"
        )
    model.check_idx(idx)  # sprint 8's checks: (B, T) ids of the vocabulary, 1 <= T <= block_size
    B, T = idx.shape
    past, block_size = int(cache.length), model.config.block_size
    if past + T > block_size:
        raise ValueError(
            f"{past + T} positions ({past} cached + {T} new) exceed block_size "
            f"{block_size}; crop the context to its last {block_size} tokens"
        )
    tr = model.transformer
    pos = torch.arange(past, past + T, device=idx.device)  # (T,) the new tokens' positions
    x = tr.drop(tr.wte(idx) + tr.wpe(pos))  # (B, T, C) + (T, C) broadcast over B
    for i, block in enumerate(tr.h):  # GPTDecoderBlock.forward with the cached attention
        x = x + cached_attention(block.attn, block.ln_1(x), cache, i)  # (B, T, C)
        x = x + block.mlp(block.ln_2(x))  # (B, T, C)
    cache.advance(T)  # after the last layer: every layer saw the same length
    x = tr.ln_f(x)
    if logits_to_keep:
        x = x[:, -logits_to_keep:]  # (B, T, C) -> (B, k, C)
    return model.lm_head(x)  # (B, T or k, C) -> (B, T or k, vocab_size)


__all__ = ["cached_attention", "forward_with_cache"]
