"""Learning-rate schedule: linear warmup, then cosine decay to a floor.

    lr(s) = max_lr * (s + 1) / warmup                                   for s < warmup
    lr(s) = min_lr + (max_lr - min_lr) * 0.5 * (1 + cos(pi * r))        for warmup <= s < decay
            with r = (s - warmup) / (decay_steps - warmup)
    lr(s) = min_lr                                                      for s >= decay_steps

The schedule is a pure function of the step, so resuming at step k needs no scheduler state.
"""

from __future__ import annotations

import math


def lr_at(step: int, max_lr: float, min_lr: float, warmup_steps: int, decay_steps: int) -> float:
    """Learning rate for optimizer step ``step`` (0-based)."""
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= decay_steps:
        return min_lr
    ratio = (step - warmup_steps) / max(1, decay_steps - warmup_steps)
    return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * ratio))
