"""Exercise 3: early stopping (notes/04_early_stopping_and_checkpoints.md)."""


class EarlyStopping:
    """Stop when the validation loss has not improved by more than ``min_delta`` on the best
    so far for ``patience`` epochs in a row."""

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.best = float("inf")
        self.bad_epochs = 0

    def step(self, val_loss: float) -> bool:
        """Record one epoch's validation loss; return True when training should stop."""
        raise NotImplementedError(
            "hint: improved if val_loss < best - min_delta: reset the counter, else count up")
