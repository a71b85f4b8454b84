"""Embeddings that mean something, for the visualization scripts.

Two views of scikit-learn's bundled handwritten digits (1797 images of 8x8 pixels, ships
with scikit-learn, no download):
- ``raw``: the 64 pixel intensities, scaled to [0, 1];
- ``hidden``: the hidden layer of a small MLP (64 -> hidden -> 10) trained here in about a
  second. Training pulls the images of one class together, so its clusters are tighter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

# The shared flags live in the light cli module (so --help need not import torch); this
# name stays importable from here as before.
from .cli import add_common_args as add_common_args


@dataclass
class DigitsEmbeddings:
    raw: np.ndarray  # (N, 64) pixels in [0, 1]
    hidden: np.ndarray  # (N, hidden) MLP hidden activations
    labels: np.ndarray  # (N,) digit 0..9
    test_accuracy: float  # MLP accuracy on the held-out quarter of the shown samples


def load_digits_subset(n_samples: int | None = None, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Pixels (N, 64) in [0, 1] and labels (N,), shuffled; the first n_samples if given."""
    from sklearn.datasets import load_digits  # imported here: sklearn is slow to import

    digits = load_digits()
    x, y = digits.data.astype(np.float32) / 16.0, digits.target.astype(np.int64)
    if n_samples is None:
        n_samples = len(y)
    if not 20 <= n_samples <= len(y):
        raise ValueError(f"n_samples must be between 20 and {len(y)}; got {n_samples}")
    # Shuffle: the file is ordered by writer, so a plain head/tail split would test on new writers.
    keep = np.random.default_rng(seed).permutation(len(y))[:n_samples]
    return x[keep], y[keep]


class DigitsMLP(nn.Module):
    def __init__(self, hidden: int = 32):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(64, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))  # (N, 64) -> (N, hidden) -> (N, 10)


def digits_embeddings(
    n_samples: int | None = None, hidden: int = 32, epochs: int = 200, seed: int = 0
) -> DigitsEmbeddings:
    """Load the digits, train the MLP on 3/4 of them (full batch, Adam), embed all of them."""
    x, y = load_digits_subset(n_samples, seed)
    torch.manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    n_train = int(0.75 * len(y))
    model = DigitsMLP(hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(epochs):
        loss = nn.functional.cross_entropy(model(xt[:n_train]), yt[:n_train])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(xt[n_train:]).argmax(1) == yt[n_train:]).float().mean().item()
        hidden_features = model.encoder(xt).numpy()  # (N, hidden)
    return DigitsEmbeddings(x, hidden_features, y, accuracy)
