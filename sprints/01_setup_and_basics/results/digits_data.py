"""scikit-learn's bundled handwritten digits as standardized torch tensors.

``load_digits`` ships inside scikit-learn (1797 8x8 images, 10 classes), so nothing is
downloaded. Both versions of the hidden-layer network train on the split made here.
"""

from dataclasses import dataclass

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


@dataclass
class DigitsSplit:
    X_train: torch.Tensor  # (N_train, 64) float, standardized with the training statistics
    y_train: torch.Tensor  # (N_train,) int64 class ids 0..9
    X_test: torch.Tensor  # (N_test, 64)
    y_test: torch.Tensor  # (N_test,)


def load_digits_split(
    test_size: float = 0.25, seed: int = 0, dtype: torch.dtype = torch.float32
) -> DigitsSplit:
    """A fixed, stratified held-out split of load_digits, standardized per pixel."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must lie strictly between 0 and 1, got {test_size}")
    X, y = load_digits(return_X_y=True)  # X: (1797, 64) pixel values 0..16
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=y
    )
    X_tr = torch.tensor(X_tr, dtype=dtype)
    X_te = torch.tensor(X_te, dtype=dtype)
    # Statistics come from the training part only, so the test set stays unseen.
    mean = X_tr.mean(dim=0)
    # Some border pixels are always 0; clamping keeps them at 0 instead of dividing by 0.
    std = X_tr.std(dim=0).clamp_min(1e-3)
    return DigitsSplit(
        X_train=(X_tr - mean) / std,
        y_train=torch.tensor(y_tr, dtype=torch.long),
        X_test=(X_te - mean) / std,
        y_test=torch.tensor(y_te, dtype=torch.long),
    )


def batch_order(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Index batches of one shuffled epoch; shared so both networks see the same batches."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return list(torch.randperm(n, generator=generator).split(batch_size))


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows whose largest logit is the true class."""
    return (logits.argmax(dim=1) == y).float().mean().item()
