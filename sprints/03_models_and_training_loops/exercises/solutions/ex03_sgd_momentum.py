"""Solution 3: heavy-ball momentum, PyTorch's convention (no dampening, no Nesterov)."""

import torch


def sgd_momentum_step(params: list[torch.Tensor], buffers: list[torch.Tensor | None], lr: float,
                      momentum: float, weight_decay: float) -> list[torch.Tensor]:
    new_buffers = []
    with torch.no_grad():
        for p, buf in zip(params, buffers, strict=True):
            g = p.grad + weight_decay * p
            buf = g.clone() if buf is None else momentum * buf + g
            p -= lr * buf
            new_buffers.append(buf)
    return new_buffers
