"""Residual connections in the "Add & Norm" pattern, in both placements of the LayerNorm.

    post-norm (original Transformer, 2017):  x = LayerNorm(x + Dropout(Sublayer(x)))
    pre-norm  (GPT-2, 2019):                 x = x + Dropout(Sublayer(LayerNorm(x)))

``norm_first=False`` is post-norm, ``norm_first=True`` is pre-norm (the same flag name as
``torch.nn.TransformerEncoderLayer``). In pre-norm the residual path x -> x + ... carries the
input through every block untouched by any normalization (Xiong et al., 2020, "On Layer
Normalization in the Transformer Architecture", show this lets pre-norm stacks train without
the learning-rate warm-up post-norm needs); such stacks then need one final LayerNorm on top.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from .layer_norm import LayerNorm

Sublayer = Callable[[Tensor], Tensor]


def post_norm_residual(
    x: Tensor, sublayer: Sublayer, norm: nn.Module, dropout: nn.Module
) -> Tensor:
    """Add, then Norm: LayerNorm(x + Dropout(sublayer(x)))."""
    return norm(x + dropout(sublayer(x)))


def pre_norm_residual(x: Tensor, sublayer: Sublayer, norm: nn.Module, dropout: nn.Module) -> Tensor:
    """Norm, sublayer, then Add: x + Dropout(sublayer(LayerNorm(x)))."""
    return x + dropout(sublayer(norm(x)))


class ResidualConnection(nn.Module):
    """One LayerNorm + one Dropout around a sub-layer (attention or feed-forward).

    forward(x, sublayer) with x: (B, T, C) and sublayer a function (B, T, C) -> (B, T, C).
    """

    def __init__(
        self,
        d_model: int,
        dropout: float = 0.0,
        norm_first: bool = False,
        eps: float = 1e-5,
        bias: bool = True,
    ):
        super().__init__()
        self.norm_first = norm_first
        self.norm = LayerNorm(d_model, eps=eps, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, sublayer: Sublayer) -> Tensor:
        if self.norm_first:
            return pre_norm_residual(x, sublayer, self.norm, self.dropout)
        return post_norm_residual(x, sublayer, self.norm, self.dropout)

    def extra_repr(self) -> str:
        return f"norm_first={self.norm_first}"
