"""Checks for the sprint 3 exercises; references: autograd with a hand-written SGD update,
the full dataset in one batch, torch.optim.SGD."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from sprints.check import expect_close


def check_ex01_train_step(m):
    model = nn.Linear(3, 2)
    reference = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(2):
        x, y = torch.randn(5, 3), torch.randn(5, 2)
        for p in model.parameters():
            p.grad = torch.ones_like(p) * 100.0  # stale gradients that must be cleared
        loss = F.mse_loss(reference(x), y)
        grads = torch.autograd.grad(loss, list(reference.parameters()))
        with torch.no_grad():
            for p, g in zip(reference.parameters(), grads, strict=True):
                p -= 0.1 * g
        call = f"train_step number {step + 1} (SGD lr 0.1, MSE loss, nn.Linear(3, 2))"
        expect_close(f"the loss returned by {call}", m.train_step(model, optimizer, F.mse_loss,
                                                                   x, y), loss.item())
        for (name, p), r in zip(model.named_parameters(), reference.parameters(), strict=True):
            expect_close(f"{name} after {call}", p, r)


def check_ex02_evaluate(m):
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    x, y = torch.randn(11, 4), torch.randint(0, 3, (11,))
    model.eval()
    with torch.no_grad():
        expected = F.cross_entropy(model(x), y).item()
    model.train()
    batches = [(x[i:i + 4], y[i:i + 4]) for i in range(0, 11, 4)]  # 4, 4 and 3 samples
    got = m.evaluate(model, batches, F.cross_entropy)
    expect_close("evaluate(model with dropout, batches of 4, 4 and 3 samples) against the "
                 "eval-mode loss of all 11 at once", got, expected)


def check_ex03_sgd_momentum(m):
    ours = [torch.randn(3, 2), torch.randn(4)]
    ref = [nn.Parameter(p.clone()) for p in ours]
    optimizer = torch.optim.SGD(ref, lr=0.05, momentum=0.9, weight_decay=0.01)
    buffers = [None, None]
    for step in range(3):
        grads = [torch.randn_like(p) for p in ours]
        for p, r, g in zip(ours, ref, grads, strict=True):
            p.grad, r.grad = g.clone(), g.clone()
        buffers = m.sgd_momentum_step(ours, buffers, lr=0.05, momentum=0.9, weight_decay=0.01)
        optimizer.step()
        for i, (p, r) in enumerate(zip(ours, ref, strict=True)):
            expect_close(f"params[{i}] after step {step + 1} of sgd_momentum_step(lr=0.05, "
                         "momentum=0.9, weight_decay=0.01) against torch.optim.SGD", p, r.detach())


CHECKS = [check_ex01_train_step, check_ex02_evaluate, check_ex03_sgd_momentum]
