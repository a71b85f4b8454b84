"""The Transformer decoder block: masked self-attention, cross-attention over the encoder's
output ("memory"), and a feed-forward network, each inside Add & Norm.

    post-norm (norm_first=False):                 pre-norm (norm_first=True):
      x = LN1(x + Drop(SelfAttn(x, causal)))        x = x + Drop(SelfAttn(LN1(x), causal))
      x = LN2(x + Drop(CrossAttn(x, memory)))       x = x + Drop(CrossAttn(LN2(x), memory))
      x = LN3(x + Drop(FFN(x)))                     x = x + Drop(FFN(LN3(x)))

In cross-attention the queries come from the decoder (B, T, C) and the keys/values from the
memory (B, S, C), so its weights are (B, h, T, S). GPT-2 keeps only the first and last
sub-layers (no encoder, so no cross-attention): that is sprint 8's block.
Masks are boolean, True = may attend.
"""

from __future__ import annotations

from importlib import import_module

import torch
from torch import Tensor, nn

from .encoder_block import copy_layer_norm
from .layer_norm import LayerNorm
from .positionwise_feed_forward import PositionwiseFeedForward
from .residual import ResidualConnection

_mha = import_module("sprints.06_multi_head_attention.results.multi_head_attention")
_sdpa = import_module("sprints.06_multi_head_attention.results.scaled_dot_product_attention")
MultiHeadAttention = _mha.MultiHeadAttention


class DecoderBlock(nn.Module):
    """forward(x (B, T, C), memory (B, S, C), self_attn_mask=None, cross_attn_mask=None,
    causal=True) -> (B, T, C).

    ``causal=True`` ANDs the look-ahead mask (T, T) into ``self_attn_mask`` so position t
    never sees positions > t. ``self_attn_mask`` broadcastable to (B, h, T, T) (e.g. the
    target padding mask (B, 1, 1, T)); ``cross_attn_mask`` broadcastable to (B, h, T, S)
    (e.g. the source padding mask (B, 1, 1, S)). ``return_weights=True`` also returns
    (self-attention weights (B, h, T, T), cross-attention weights (B, h, T, S)).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        activation: str = "relu",
        norm_first: bool = False,
        eps: float = 1e-5,
        bias: bool = True,
    ):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout, bias=bias)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout, bias=bias)
        self.ffn = PositionwiseFeedForward(
            d_model, d_ff, dropout=dropout, activation=activation, bias=bias
        )
        self.self_attn_residual = ResidualConnection(d_model, dropout, norm_first, eps, bias)
        self.cross_attn_residual = ResidualConnection(d_model, dropout, norm_first, eps, bias)
        self.ffn_residual = ResidualConnection(d_model, 0.0, norm_first, eps, bias)

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        self_attn_mask: Tensor | None = None,
        cross_attn_mask: Tensor | None = None,
        causal: bool = True,
        return_weights: bool = False,
    ):
        if causal:
            look_ahead = _sdpa.causal_mask(x.size(1), device=x.device)  # (T, T)
            if self_attn_mask is None:
                self_attn_mask = look_ahead
            else:
                if self_attn_mask.dim() == 3:  # (B, T, T) -> (B, 1, T, T), as the MHA does
                    self_attn_mask = self_attn_mask.unsqueeze(1)
                self_attn_mask = self_attn_mask & look_ahead  # broadcasts to (B, 1|h, T, T)
        weights = {}

        def masked_self_attention(h: Tensor) -> Tensor:
            out, weights["self"] = self.self_attn(h, mask=self_attn_mask)  # (B, h, T, T)
            return out

        def cross_attention(h: Tensor) -> Tensor:
            # queries from the decoder, keys and values from the encoder's memory
            out, weights["cross"] = self.cross_attn(h, memory, memory, mask=cross_attn_mask)
            return out  # (B, T, C); weights (B, h, T, S)

        x = self.self_attn_residual(x, masked_self_attention)
        x = self.cross_attn_residual(x, cross_attention)
        x = self.ffn_residual(x, self.ffn)
        return (x, weights["self"], weights["cross"]) if return_weights else x


class Decoder(nn.Module):
    """A stack of decoder blocks, each attending to the same memory; pre-norm stacks end
    in one more LayerNorm, as ``nn.TransformerDecoder(norm=...)``."""

    def __init__(
        self,
        num_layers: int,
        d_model: int,
        num_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        activation: str = "relu",
        norm_first: bool = False,
        eps: float = 1e-5,
        bias: bool = True,
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderBlock(d_model, num_heads, d_ff, dropout, activation, norm_first, eps, bias)
            for _ in range(num_layers)
        )
        self.norm = LayerNorm(d_model, eps=eps, bias=bias) if norm_first else nn.Identity()

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        self_attn_mask: Tensor | None = None,
        cross_attn_mask: Tensor | None = None,
        causal: bool = True,
    ) -> Tensor:
        for layer in self.layers:
            x = layer(x, memory, self_attn_mask, cross_attn_mask, causal)  # (B, T, C)
        return self.norm(x)


@torch.no_grad()
def copy_weights_from_torch(block: DecoderBlock, layer: nn.TransformerDecoderLayer) -> None:
    """Load an ``nn.TransformerDecoderLayer``'s weights into ``block``.

    torch's names: self_attn, multihead_attn (the cross-attention), linear1, linear2,
    norm1 (after/before self-attn), norm2 (cross-attn), norm3 (feed-forward).
    """
    if layer.norm_first != block.norm_first:
        raise ValueError(
            f"norm_first differs (torch layer {layer.norm_first}, block {block.norm_first}); "
            "build both with the same norm_first or they compute different functions"
        )
    _mha.copy_weights_from_torch(block.self_attn, layer.self_attn)
    _mha.copy_weights_from_torch(block.cross_attn, layer.multihead_attn)
    block.ffn.fc1.load_state_dict(layer.linear1.state_dict())
    block.ffn.fc2.load_state_dict(layer.linear2.state_dict())
    copy_layer_norm(block.self_attn_residual.norm, layer.norm1)
    copy_layer_norm(block.cross_attn_residual.norm, layer.norm2)
    copy_layer_norm(block.ffn_residual.norm, layer.norm3)


def main(argv=None):
    import argparse

    arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")
    parser = argparse.ArgumentParser(
        description="Decoder block (masked self-attn + cross-attn), vs nn.TransformerDecoderLayer"
    )
    parser.add_argument("--d-model", type=arg_types.positive_int, default=16)
    parser.add_argument("--num-heads", type=arg_types.positive_int, default=4)
    parser.add_argument("--d-ff", type=arg_types.positive_int, default=64)
    parser.add_argument("--num-layers", type=arg_types.positive_int, default=6)
    args = parser.parse_args(argv)
    if args.d_model % args.num_heads:
        parser.error(f"--num-heads {args.num_heads} does not divide --d-model {args.d_model}: "
                     "each head gets d_model // num_heads channels; pick a divisor")
    torch.manual_seed(0)
    torch.set_printoptions(precision=3, sci_mode=False)

    B, T, S, C = 2, 4, 6, args.d_model
    x, memory = torch.randn(B, T, C), torch.randn(B, S, C)  # decoder input, encoder output
    src_keep = _sdpa.padding_mask(torch.tensor([6, 4]), S)  # (B, 1, 1, S)
    for norm_first in (False, True):
        block = DecoderBlock(C, args.num_heads, args.d_ff, norm_first=norm_first).eval()
        ref = nn.TransformerDecoderLayer(
            C, args.num_heads, args.d_ff, batch_first=True, norm_first=norm_first
        ).eval()
        copy_weights_from_torch(block, ref)
        with torch.no_grad():
            y, w_self, w_cross = block(x, memory, cross_attn_mask=src_keep, return_weights=True)
            # torch needs the look-ahead mask spelled out, in its True = ignore convention
            y_ref = ref(
                x,
                memory,
                tgt_mask=~_sdpa.causal_mask(T),
                memory_key_padding_mask=~src_keep[:, 0, 0],
            )
        kind = "pre-norm " if norm_first else "post-norm"
        print(
            f"{kind}: x {tuple(x.shape)}, memory {tuple(memory.shape)} -> {tuple(y.shape)}; "
            f"max |ours - nn.TransformerDecoderLayer| = {(y - y_ref).abs().max():.2e}"
        )
    print(
        f"\nmasked self-attention weights {tuple(w_self.shape)}, sequence 0, head 0 "
        "(zeros above the diagonal):\n",
        w_self[0, 0],
    )
    print(
        f"cross-attention weights {tuple(w_cross.shape)}, sequence 1, head 0 "
        "(memory positions 4, 5 are padding):\n",
        w_cross[1, 0],
    )

    decoder = Decoder(args.num_layers, C, args.num_heads, args.d_ff).eval()
    with torch.no_grad():
        out = decoder(x, memory, cross_attn_mask=src_keep)
        x2 = x.clone()
        x2[:, -1] += 5.0  # change only the last target token
        out2 = decoder(x2, memory, cross_attn_mask=src_keep)
    changed = (out2 - out).abs().amax(dim=(0, 2))
    print(
        f"\n{args.num_layers} stacked blocks: {tuple(out.shape)}; changing the last target token "
        f"changes positions {[i for i, c in enumerate(changed.tolist()) if c > 0]} only"
    )


if __name__ == "__main__":
    main()
