"""Exercise 2: the evaluation loop (notes/02_training_and_evaluation_loops.md)."""

from collections.abc import Iterable

import torch
from torch import nn


def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
             loss_fn) -> float:
    """Mean loss per SAMPLE over all batches (the last batch may be smaller), in eval mode and
    without building a graph. ``loss_fn`` returns the mean over its batch."""
    raise NotImplementedError(
        "hint: model.eval() and torch.no_grad(); sum loss * len(x), divide by the sample count")
