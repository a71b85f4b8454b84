"""Early stopping that remembers the best weights and can put them back."""

from __future__ import annotations

import copy

from torch import nn


class EarlyStopping:
    """Stop when the validation loss has not improved for ``patience`` epochs in a row.

    Call :meth:`step` once per epoch; it returns True when training should stop. Every time
    the loss improves by more than ``min_delta`` a copy of the model's weights is kept in
    memory; :meth:`restore` loads that copy back into the model.
    """

    def __init__(self, patience: int = 4, min_delta: float = 0.0) -> None:
        if patience < 1:
            raise ValueError(f"patience must be at least 1, got {patience}")
        self.patience = patience
        self.min_delta = min_delta
        self.best_loss = float("inf")
        self.best_epoch = 0  # 1-based epoch of the best loss; 0 until the first step
        self.best_state: dict | None = None
        self.epochs_seen = 0
        self.bad_epochs = 0
        self.improved = False  # did the last step improve? (the caller saves a checkpoint then)

    def step(self, val_loss: float, model: nn.Module) -> bool:
        self.epochs_seen += 1
        self.improved = val_loss < self.best_loss - self.min_delta
        if self.improved:
            self.best_loss = val_loss
            self.best_epoch = self.epochs_seen
            # deepcopy: state_dict() returns views of the live tensors, which training mutates
            self.best_state = copy.deepcopy(model.state_dict())
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def restore(self, model: nn.Module) -> None:
        if self.best_state is None:
            raise RuntimeError("EarlyStopping.restore() before any improving step(): no weights")
        model.load_state_dict(self.best_state)
