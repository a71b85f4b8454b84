"""The two loops every PyTorch project repeats: train one epoch, evaluate.

Sprint 3 trains a linear regression with them; sprint 4 imports them for its CNN.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    desc: str = "train",
    progress: bool = True,
) -> dict[str, float]:
    """One pass over ``loader``: forward, loss, backward, step, zero_grad.

    Returns the mean loss (weighted by batch size) and, for classifiers (targets of dtype
    long), the accuracy. ``scheduler`` (if given) steps once per batch; ``batch_transform``
    runs on each input batch (augmentation).
    """
    model.train()  # dropout on, batch norm uses and updates batch statistics
    total_loss, correct, seen = 0.0, 0, 0
    classifier = False
    for inputs, targets in tqdm(loader, desc=desc, leave=False, disable=not progress):
        if batch_transform is not None:
            inputs = batch_transform(inputs)
        outputs = model(inputs)  # forward
        loss = loss_fn(outputs, targets)
        loss.backward()  # gradients of the mean batch loss w.r.t. every parameter
        optimizer.step()  # move the parameters against their gradients
        if scheduler is not None:
            scheduler.step()  # per-batch schedule: the learning rate changes smoothly
        optimizer.zero_grad(set_to_none=True)  # .backward() adds up; clear before next batch
        total_loss += loss.item() * len(targets)
        seen += len(targets)
        if targets.dtype == torch.long:
            classifier = True
            correct += (outputs.argmax(dim=1) == targets).sum().item()
    if seen == 0:
        raise ValueError("train_one_epoch got an empty loader")
    stats = {"loss": total_loss / seen}
    if classifier:
        stats["accuracy"] = correct / seen
    return stats


@torch.no_grad()  # no graph is recorded: less memory, faster, and no accidental training
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    *,
    desc: str = "eval",
    progress: bool = False,
) -> dict[str, float]:
    """Mean loss (and accuracy for classifiers) over ``loader`` with the model in eval mode."""
    was_training = model.training
    model.eval()  # dropout off, batch norm uses its running statistics
    total_loss, correct, seen = 0.0, 0, 0
    classifier = False
    for inputs, targets in tqdm(loader, desc=desc, leave=False, disable=not progress):
        outputs = model(inputs)
        total_loss += loss_fn(outputs, targets).item() * len(targets)
        seen += len(targets)
        if targets.dtype == torch.long:
            classifier = True
            correct += (outputs.argmax(dim=1) == targets).sum().item()
    model.train(was_training)
    if seen == 0:
        raise ValueError("evaluate got an empty loader")
    stats = {"loss": total_loss / seen}
    if classifier:
        stats["accuracy"] = correct / seen
    return stats
