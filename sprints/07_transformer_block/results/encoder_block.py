"""The Transformer encoder block: self-attention and a feed-forward network, each wrapped
in a residual connection with LayerNorm (Add & Norm).

    post-norm (norm_first=False):            pre-norm (norm_first=True):
      x = LN1(x + Drop(SelfAttn(x)))           x = x + Drop(SelfAttn(LN1(x)))
      x = LN2(x + Drop(FFN(x)))                x = x + Drop(FFN(LN2(x)))

Built from sprint 6's ``MultiHeadAttention`` and this sprint's ``LayerNorm`` and
``PositionwiseFeedForward``. Masks are boolean, True = may attend (this repository's
convention; ``torch.nn.TransformerEncoderLayer`` uses True = ignore for bool masks).
"""

from __future__ import annotations

from importlib import import_module

import torch
from torch import Tensor, nn

from .layer_norm import LayerNorm
from .positionwise_feed_forward import PositionwiseFeedForward
from .residual import ResidualConnection

_mha = import_module("sprints.06_multi_head_attention.results.multi_head_attention")
MultiHeadAttention = _mha.MultiHeadAttention


class EncoderBlock(nn.Module):
    """forward(x (B, T, C), mask=None) -> (B, T, C).

    ``mask`` broadcastable to (B, h, T, T), e.g. ``padding_mask(lengths, T)`` of shape
    (B, 1, 1, T) so no token attends to padding. With ``return_weights=True`` the
    attention weights (B, h, T, T) come back as well.
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
        self.ffn = PositionwiseFeedForward(
            d_model, d_ff, dropout=dropout, activation=activation, bias=bias
        )
        # Each residual owns its LayerNorm and the dropout applied to the sub-layer's output.
        self.attn_residual = ResidualConnection(d_model, dropout, norm_first, eps, bias)
        self.ffn_residual = ResidualConnection(d_model, 0.0, norm_first, eps, bias)
        # (the FFN already ends in dropout, so its residual adds none)

    def forward(self, x: Tensor, mask: Tensor | None = None, return_weights: bool = False):
        weights = []

        def self_attention(h: Tensor) -> Tensor:
            out, w = self.self_attn(h, mask=mask)  # (B, T, C), (B, h, T, T)
            weights.append(w)
            return out

        x = self.attn_residual(x, self_attention)
        x = self.ffn_residual(x, self.ffn)
        return (x, weights[0]) if return_weights else x


class Encoder(nn.Module):
    """A stack of ``num_layers`` encoder blocks; pre-norm stacks end in one more LayerNorm
    (their residual stream is never normalized otherwise), as ``nn.TransformerEncoder(norm=...)``.
    """

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
            EncoderBlock(d_model, num_heads, d_ff, dropout, activation, norm_first, eps, bias)
            for _ in range(num_layers)
        )
        self.norm = LayerNorm(d_model, eps=eps, bias=bias) if norm_first else nn.Identity()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        for layer in self.layers:
            x = layer(x, mask=mask)  # (B, T, C) -> (B, T, C): the shape never changes
        return self.norm(x)


@torch.no_grad()
def copy_layer_norm(ours: LayerNorm, theirs: nn.LayerNorm) -> None:
    ours.weight.copy_(theirs.weight)
    if ours.bias is not None:
        ours.bias.copy_(theirs.bias)


@torch.no_grad()
def copy_weights_from_torch(block: EncoderBlock, layer: nn.TransformerEncoderLayer) -> None:
    """Load an ``nn.TransformerEncoderLayer``'s weights into ``block`` (name map below)."""
    if layer.norm_first != block.norm_first:
        raise ValueError(
            f"norm_first differs (torch layer {layer.norm_first}, block {block.norm_first}); "
            "build both with the same norm_first or they compute different functions"
        )
    _mha.copy_weights_from_torch(block.self_attn, layer.self_attn)
    block.ffn.fc1.load_state_dict(layer.linear1.state_dict())  # d_model -> d_ff
    block.ffn.fc2.load_state_dict(layer.linear2.state_dict())  # d_ff -> d_model
    copy_layer_norm(block.attn_residual.norm, layer.norm1)
    copy_layer_norm(block.ffn_residual.norm, layer.norm2)


def main(argv=None):
    import argparse

    arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")
    parser = argparse.ArgumentParser(
        description="Encoder block on a padded batch, checked against nn.TransformerEncoderLayer"
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
    sdpa = import_module("sprints.06_multi_head_attention.results.scaled_dot_product_attention")

    B, T, C = 2, 5, args.d_model
    x = torch.randn(B, T, C)
    lengths = torch.tensor([5, 3])  # the second sequence ends in 2 padding tokens
    mask = sdpa.padding_mask(lengths, T)  # (B, 1, 1, T), True = real token
    for norm_first in (False, True):
        block = EncoderBlock(C, args.num_heads, args.d_ff, norm_first=norm_first).eval()
        ref = nn.TransformerEncoderLayer(
            C, args.num_heads, args.d_ff, batch_first=True, norm_first=norm_first
        ).eval()
        copy_weights_from_torch(block, ref)
        with torch.no_grad():
            y, w = block(x, mask=mask, return_weights=True)
            y_ref = ref(x, src_key_padding_mask=~mask[:, 0, 0])  # torch: True = ignore
        kind = "pre-norm " if norm_first else "post-norm"
        print(
            f"{kind}: x {tuple(x.shape)} -> {tuple(y.shape)}, weights {tuple(w.shape)}, "
            f"max |ours - nn.TransformerEncoderLayer| = {(y - y_ref).abs().max():.2e}"
        )
    print("\nsequence 1, head 0 weights (columns 3, 4 are padding -> 0):\n", w[1, 0])

    encoder = Encoder(args.num_layers, C, args.num_heads, args.d_ff, norm_first=True).eval()
    with torch.no_grad():
        out = encoder(x, mask=mask)
    n_params = sum(p.numel() for p in encoder.parameters())
    print(
        f"\n{args.num_layers} stacked pre-norm blocks: {tuple(x.shape)} -> {tuple(out.shape)}, "
        f"{n_params} parameters"
    )


if __name__ == "__main__":
    main()
