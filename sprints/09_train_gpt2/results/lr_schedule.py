"""Learning-rate schedules: linear warmup, then cosine decay or warmup-stable-decay (WSD).

cosine (GPT-2, nanoGPT):
    lr(s) = max_lr * (s + 1) / warmup                                   for s < warmup
    lr(s) = min_lr + (max_lr - min_lr) * 0.5 * (1 + cos(pi * r))        for warmup <= s < decay
            with r = (s - warmup) / (decay_steps - warmup)
    lr(s) = min_lr                                                      for s >= decay_steps

wsd (warmup, stable, decay): the same warmup, then max_lr held constant, then a straight line
down to min_lr over the last ``cooldown_fraction`` of the ``decay_steps`` steps:
    lr(s) = max_lr                                                      for warmup <= s < c
    lr(s) = min_lr + (max_lr - min_lr) * (decay_steps - s) / (decay_steps - c)   for c <= s
            with c = decay_steps - round(cooldown_fraction * decay_steps) (never before warmup)

WSD spends longer at the peak learning rate and leaves the loss drop to a short, steep
cooldown; on short runs it ends lower than cosine with the same steps (notes/12_speedrun.md:
1.832 against 1.855 after 350 steps of a 4 x 128 character model, 1.845 against 1.865 after
300 steps of the 2 x 192 speedrun model).

A schedule is a pure function of the step, so resuming at step k needs no scheduler state.
"""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "wsd")


def lr_at(step: int, max_lr: float, min_lr: float, warmup_steps: int, decay_steps: int,
          schedule: str = "cosine", cooldown_fraction: float = 0.5) -> float:
    """Learning rate for optimizer step ``step`` (0-based)."""
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= decay_steps:
        return min_lr
    if schedule == "wsd":
        cooldown_start = max(warmup_steps, decay_steps - round(cooldown_fraction * decay_steps))
        if step < cooldown_start:
            return max_lr
        return min_lr + (max_lr - min_lr) * (decay_steps - step) / (decay_steps - cooldown_start)
    if schedule != "cosine":
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {SCHEDULES}")
    ratio = (step - warmup_steps) / max(1, decay_steps - warmup_steps)
    return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * ratio))
