"""Checks for the sprint 4 exercises; references: nn.Conv2d's real output, CosineAnnealingLR,
a recount of the whole loss history at every epoch."""

import random

import torch
from torch import nn

from sprints.check import expect_close, expect_equal


def check_ex01_conv_output_size(m):
    for size, kernel, stride, padding, dilation in [(28, 3, 1, 1, 1), (28, 5, 1, 0, 1),
                                                    (28, 2, 2, 0, 1), (13, 3, 2, 1, 1),
                                                    (17, 3, 3, 2, 2), (7, 7, 1, 0, 1)]:
        conv = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding, dilation=dilation)
        real = conv(torch.zeros(1, 1, size, size)).shape[-1]
        expect_equal(f"conv_output_size(size={size}, kernel={kernel}, stride={stride}, "
                     f"padding={padding}, dilation={dilation})",
                     m.conv_output_size(size, kernel, stride, padding, dilation), real)


def check_ex02_cosine_lr(m):
    for base_lr, t_max, eta_min in [(0.1, 10, 0.0), (1e-3, 7, 1e-5)]:
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=base_lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t_max, eta_min=eta_min)
        for epoch in range(t_max + 1):
            expect_close(f"cosine_lr(epoch={epoch}, base_lr={base_lr}, t_max={t_max}, "
                         f"eta_min={eta_min})", m.cosine_lr(epoch, base_lr, t_max, eta_min),
                         opt.param_groups[0]["lr"], atol=1e-12)
            opt.step()
            sched.step()


def _should_stop(history, patience, min_delta):
    """Count, from the whole history, the epochs since the last real improvement."""
    best, last_improvement = float("inf"), -1
    for i, loss in enumerate(history):
        if loss < best - min_delta:
            best, last_improvement = loss, i
    return len(history) - 1 - last_improvement >= patience


def check_ex03_early_stopping(m):
    rng = random.Random(0)
    for patience, min_delta in [(1, 0.0), (3, 0.0), (2, 0.05)]:
        losses = [1.0 / (1 + i) + rng.uniform(0, 0.3) for i in range(20)]
        stopper = m.EarlyStopping(patience, min_delta)
        for epoch in range(len(losses)):
            expected = _should_stop(losses[:epoch + 1], patience, min_delta)
            seen = [round(x, 3) for x in losses[:epoch + 1]]
            expect_equal(f"EarlyStopping(patience={patience}, min_delta={min_delta}).step() "
                         f"after the losses {seen}", stopper.step(losses[epoch]), expected)
            if expected:
                break


CHECKS = [check_ex01_conv_output_size, check_ex02_cosine_lr, check_ex03_early_stopping]
