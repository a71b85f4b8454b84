"""Checks for the sprint 9 exercises; references: indexing loops, torch's LR schedulers,
torch.nn.utils.clip_grad_norm_, a full-batch backward."""

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from sprints.check import expect_close, expect_equal


def check_ex01_shift_targets(m):
    tokens = torch.randint(0, 50, (40,))
    for starts, t in [([0], 1), ([3, 0, 30], 8), ([31], 8)]:
        x, y = m.inputs_and_targets(tokens, starts, t)
        ref_x = torch.tensor([[int(tokens[s + i]) for i in range(t)] for s in starts])
        ref_y = torch.tensor([[int(tokens[s + i + 1]) for i in range(t)] for s in starts])
        call = f"inputs_and_targets(tokens of length 40, starts={starts}, block_size={t})"
        expect_equal(f"x of {call}", x, ref_x)
        expect_equal(f"y of {call}", y, ref_y)


def _torch_schedule(max_lr, min_lr, warmup, decay):
    """The same schedule from PyTorch's own schedulers, read off an optimizer."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=max_lr)
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / warmup, end_factor=1.0,
                                             total_iters=warmup - 1)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=decay - warmup, eta_min=min_lr)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[warmup])
    lrs = []
    for _ in range(decay + 1):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def check_ex02_lr_at(m):
    for max_lr, min_lr, warmup, decay in [(1e-3, 1e-4, 5, 30), (6e-4, 0.0, 2, 11)]:
        reference = _torch_schedule(max_lr, min_lr, warmup, decay)
        for step, ref in enumerate(reference):
            expect_close(f"lr_at(step={step}, max_lr={max_lr}, min_lr={min_lr}, warmup_steps="
                         f"{warmup}, decay_steps={decay})",
                         m.lr_at(step, max_lr, min_lr, warmup, decay), ref, atol=1e-12)
        expect_close(f"lr_at(step={decay + 7}, ...) after the decay", m.lr_at(
            decay + 7, max_lr, min_lr, warmup, decay), min_lr, atol=1e-12)


def check_ex03_clip_grad_norm(m):
    for max_norm, scale in [(1.0, 10.0), (100.0, 1.0)]:
        params = [nn.Parameter(torch.randn(3, 4)), nn.Parameter(torch.randn(5)),
                  nn.Parameter(torch.randn(2))]
        for p in params[:2]:
            p.grad = torch.randn_like(p) * scale
        ref = [nn.Parameter(p.detach().clone()) for p in params]
        for r, p in zip(ref, params, strict=True):
            r.grad = None if p.grad is None else p.grad.clone()
        ref_norm = torch.nn.utils.clip_grad_norm_(ref, max_norm).item()
        call = f"clip_grad_norm(params with gradients of norm ~{ref_norm:.3g}, max_norm={max_norm})"
        expect_close(f"the returned norm of {call}", m.clip_grad_norm(params, max_norm), ref_norm)
        for i in range(2):
            expect_close(f"params[{i}].grad after {call}", params[i].grad, ref[i].grad)


def check_ex04_grad_accumulation(m):
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    reference = copy.deepcopy(model)
    x, y = torch.randn(10, 4), torch.randint(0, 3, (10,))
    full_loss = F.cross_entropy(reference(x), y)
    full_loss.backward()
    model.zero_grad()
    for p in model.parameters():
        p.grad = torch.full_like(p, math.pi)  # stale gradients that must not leak in
    sizes = [(0, 4), (4, 7), (7, 10)]
    loss = m.accumulate_gradients(model, F.cross_entropy, [(x[a:b], y[a:b]) for a, b in sizes])
    call = "accumulate_gradients(model, cross_entropy, micro-batches of 4, 3 and 3 samples)"
    expect_close(f"the loss returned by {call}", loss, full_loss.item())
    for (name, p), r in zip(model.named_parameters(), reference.parameters(), strict=True):
        expect_close(f"{name}.grad after {call}, against one batch of 10", p.grad, r.grad)


CHECKS = [check_ex01_shift_targets, check_ex02_lr_at, check_ex03_clip_grad_norm,
          check_ex04_grad_accumulation]
