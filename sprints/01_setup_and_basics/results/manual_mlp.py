"""A one-hidden-layer network on raw tensors, with the backward pass written by hand.

No autograd here: every gradient is one line of matrix algebra, derived in
``notes/02d_hidden_layer_network.md``. Shapes: N examples, D inputs, H hidden units,
C classes.

    Z1 = X @ W1 + b1        (N, D) @ (D, H) -> (N, H)
    A1 = tanh(Z1)           (N, H)
    Z2 = A1 @ W2 + b2       (N, H) @ (H, C) -> (N, C)   the logits
    L  = mean_i -log softmax(Z2)[i, y_i]
"""

import math

import torch

from .digits_data import batch_order

PARAM_NAMES = ("W1", "b1", "W2", "b2")


class ManualMLP:
    """Parameters are plain tensors with ``requires_grad=False``; ``backward`` fills gradients."""

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        if min(n_in, n_hidden, n_out) < 1:
            raise ValueError(f"layer sizes must be positive, got {n_in=}, {n_hidden=}, {n_out=}")
        # Scaling by 1/sqrt(fan_in) keeps the pre-activations near unit variance, so tanh
        # starts in its steep middle part instead of its flat, saturated ends.
        self.W1 = torch.randn(n_in, n_hidden, generator=generator, dtype=dtype) / math.sqrt(n_in)
        self.b1 = torch.zeros(n_hidden, dtype=dtype)
        self.W2 = torch.randn(n_hidden, n_out, generator=generator, dtype=dtype) / math.sqrt(
            n_hidden
        )
        self.b2 = torch.zeros(n_out, dtype=dtype)
        self._cache: dict[str, torch.Tensor] = {}

    def parameters(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in PARAM_NAMES}

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Logits (N, C); keeps what the backward pass needs."""
        if X.ndim != 2 or X.shape[1] != self.W1.shape[0]:
            raise ValueError(
                f"expected X of shape (N, {self.W1.shape[0]}), got {tuple(X.shape)}; "
                "flatten each example into one row first"
            )
        Z1 = X @ self.W1 + self.b1  # (N, D) @ (D, H) + (H,) -> (N, H), b1 broadcast over rows
        A1 = torch.tanh(Z1)  # (N, H)
        Z2 = A1 @ self.W2 + self.b2  # (N, H) @ (H, C) + (C,) -> (N, C)
        self._cache = {"X": X, "A1": A1, "Z2": Z2}
        return Z2

    @staticmethod
    def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean cross-entropy and the softmax probabilities (N, C)."""
        # Subtracting the row max changes nothing mathematically but keeps exp() from overflowing.
        shifted = logits - logits.max(dim=1, keepdim=True).values
        log_probs = shifted - shifted.exp().sum(dim=1, keepdim=True).log()  # (N, C)
        loss = -log_probs[torch.arange(len(y)), y].mean()
        return loss, log_probs.exp()

    def backward(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Gradients of the mean cross-entropy of the last ``forward`` w.r.t. every parameter."""
        if not self._cache:
            raise RuntimeError("call forward(X) before backward(y)")
        X, A1, Z2 = self._cache["X"], self._cache["A1"], self._cache["Z2"]
        N = X.shape[0]
        _, P = self.cross_entropy(Z2, y)
        # dL/dZ2 = (softmax - one_hot) / N: the famous "prediction minus target".
        dZ2 = P.clone()  # (N, C)
        dZ2[torch.arange(N), y] -= 1.0
        dZ2 /= N
        dW2 = A1.T @ dZ2  # (H, N) @ (N, C) -> (H, C)
        db2 = dZ2.sum(dim=0)  # (C,): b2 was broadcast over N rows, so its gradient sums them
        dA1 = dZ2 @ self.W2.T  # (N, C) @ (C, H) -> (N, H)
        dZ1 = dA1 * (1.0 - A1**2)  # (N, H): tanh'(z) = 1 - tanh(z)^2, elementwise
        dW1 = X.T @ dZ1  # (D, N) @ (N, H) -> (D, H)
        db1 = dZ1.sum(dim=0)  # (H,)
        return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}

    def sgd_step(self, grads: dict[str, torch.Tensor], lr: float) -> None:
        for name in PARAM_NAMES:
            getattr(self, name).sub_(lr * grads[name])  # in place: p <- p - lr * dL/dp


def train_manual(
    model: ManualMLP,
    X: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
) -> list[float]:
    """Mini-batch SGD; returns the mean training loss of every epoch."""
    gen = torch.Generator().manual_seed(seed)
    history = []
    for _ in range(epochs):
        total = 0.0
        for idx in batch_order(len(X), batch_size, gen):
            logits = model.forward(X[idx])
            loss, _ = model.cross_entropy(logits, y[idx])
            model.sgd_step(model.backward(y[idx]), lr)
            total += loss.item() * len(idx)
        history.append(total / len(X))
    return history
