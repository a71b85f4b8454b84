"""Exercise 2: cosine annealing as a closed form (notes/03_cosine_lr_schedule.md)."""


def cosine_lr(epoch: int, base_lr: float, t_max: int, eta_min: float = 0.0) -> float:
    """The learning rate CosineAnnealingLR gives at epoch 0..t_max."""
    raise NotImplementedError(
        "hint: eta_min + (base_lr - eta_min) * (1 + cos(pi epoch / t_max)) / 2")
