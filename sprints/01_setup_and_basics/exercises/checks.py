"""Checks for the sprint 1 exercises; references: torch.broadcast_shapes, autograd, closed forms."""

import torch
import torch.nn.functional as F

from sprints.check import expect_close, expect_equal, expect_raises


def check_ex01_broadcast_shape(m):
    cases = [((3, 1), (1, 4)), ((5, 3, 1), (4,)), ((2, 1, 6), (7, 1)), ((1,), (8, 2)),
             ((), (2, 3)), ((4, 0), (1,)), ((3,), (3,))]
    for a, b in cases:
        expect_equal(f"broadcast_shape({a}, {b})", m.broadcast_shape(a, b),
                     tuple(torch.broadcast_shapes(a, b)))
    for a, b in [((3,), (4,)), ((2, 3), (3, 2))]:
        expect_raises(f"broadcast_shape({a}, {b})", ValueError, m.broadcast_shape, a, b)


def check_ex02_softmax_ce_backward(m):
    for n, k, scale in [(1, 3, 1.0), (4, 5, 1.0), (8, 10, 30.0)]:
        logits = (torch.randn(n, k, dtype=torch.float64) * scale).requires_grad_()
        targets = torch.randint(0, k, (n,))
        F.cross_entropy(logits, targets).backward()
        got = m.softmax_cross_entropy_backward(logits.detach().clone(), targets)
        expect_close(f"softmax_cross_entropy_backward(logits of shape ({n}, {k}) with scale "
                     f"{scale}, targets {targets.tolist()})", got, logits.grad, atol=1e-10)


def check_ex03_central_difference(m):
    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    expect_close("central_difference_grad(sum(x**3), x=[0.5, -1, 2])",
                 m.central_difference_grad(lambda t: (t**3).sum(), x), 3 * x**2, atol=1e-6)
    x = torch.randn(2, 3, dtype=torch.float64)
    before = x.clone()
    got = m.central_difference_grad(lambda t: torch.sin(t).sum() * t[0, 0], x)
    x_req = x.clone().requires_grad_()
    (torch.sin(x_req).sum() * x_req[0, 0]).backward()
    expect_close("central_difference_grad(sum(sin(x)) * x[0, 0], x of shape (2, 3))",
                 got, x_req.grad, atol=1e-6)
    expect_equal("x after central_difference_grad (it must be left unchanged)", x, before)


def check_ex04_linear_backward(m):
    for n, d_in, d_out in [(1, 2, 3), (5, 4, 6)]:
        x = torch.randn(n, d_in, dtype=torch.float64, requires_grad=True)
        layer = torch.nn.Linear(d_in, d_out, dtype=torch.float64)
        out = layer(x)
        grad_out = torch.randn_like(out)
        out.backward(grad_out)
        got = m.linear_backward(x.detach(), layer.weight.detach(), grad_out)
        call = f"linear_backward(x ({n}, {d_in}), weight ({d_out}, {d_in}), grad_out)"
        expect_equal(f"number of results of {call}", len(got), 3)
        for name, g, ref in zip(["grad_x", "grad_weight", "grad_bias"], got,
                                [x.grad, layer.weight.grad, layer.bias.grad], strict=True):
            expect_close(f"{name} of {call}", g, ref, atol=1e-10)


CHECKS = [check_ex01_broadcast_shape, check_ex02_softmax_ce_backward,
          check_ex03_central_difference, check_ex04_linear_backward]
