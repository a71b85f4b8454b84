"""Exercise 2: linear warmup then cosine decay (notes/04_training_loop.md)."""


def lr_at(step: int, max_lr: float, min_lr: float, warmup_steps: int, decay_steps: int) -> float:
    """Learning rate at optimizer step ``step`` (0-based).

    Warmup: max_lr * (step + 1) / warmup_steps for step < warmup_steps (so step warmup-1 is max_lr).
    Then cosine from max_lr at step warmup_steps down to min_lr at step decay_steps, and
    min_lr after that.
    """
    raise NotImplementedError(
        "hint: r = (step - warmup) / (decay - warmup); min + (max - min) * 0.5 * (1 + cos(pi r))")
