"""Autograd: the graph, grad_fn, .grad, requires_grad, no_grad, detach, accumulation, zeroing.

See notes/02c_autograd.md.
"""

import argparse

import torch

# Every (label, value) printed, in order: the tests check each printed claim against an
# independent computation (tests/test_sprint01.py).
SHOWN: list[tuple[str, object]] = []


def show(label: str, value) -> None:
    SHOWN.append((label, value))
    text = str(value).replace("\n", "\n    ")
    print(f"  {label}\n    {text}")


def graph_and_grad() -> None:
    print("\n== 1. The graph and .grad ==")
    x = torch.tensor(2.0, requires_grad=True)  # a leaf that autograd tracks
    w = torch.tensor(3.0, requires_grad=True)
    b = torch.tensor(1.0)  # requires_grad=False: a constant for autograd
    y = w * x + b
    y.retain_grad()  # non-leaf tensors drop their .grad unless asked to keep it
    z = y**2
    show("x=2, w=3 (requires_grad), b=1 (not); y = w*x + b; z = y**2", (y.item(), z.item()))
    show("z.grad_fn, and the node it points back to", (z.grad_fn, z.grad_fn.next_functions))
    show("x.is_leaf, y.is_leaf, x.grad_fn", (x.is_leaf, y.is_leaf, x.grad_fn))
    z.backward()
    # dz/dx = 2y * w = 2*7*3 = 42 and dz/dw = 2y * x = 2*7*2 = 28
    show(
        "after z.backward(): x.grad (2*y*w = 42), w.grad (2*y*x = 28)",
        (x.grad.item(), w.grad.item()),
    )
    show(
        "b.grad (no requires_grad -> None); y.grad (kept by retain_grad: dz/dy = 2y = 14)",
        (b.grad, y.grad.item()),
    )


def no_grad_and_detach() -> None:
    print("\n== 2. no_grad and detach ==")
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    with torch.no_grad():
        u = w * 2  # no graph is recorded: cheaper, used for evaluation and weight updates
    show(
        "with torch.no_grad(): u = w * 2 -> u.requires_grad, u.grad_fn",
        (u.requires_grad, u.grad_fn),
    )
    d = w.detach()
    show(
        "d = w.detach() -> d.requires_grad; shares memory with w?",
        (d.requires_grad, d.data_ptr() == w.data_ptr()),
    )
    # detach cuts the graph: gradient flows through the first factor only.
    loss = (w * w.detach()).sum()
    loss.backward()
    show(
        "loss = sum(w * w.detach()); w.grad is w (not 2w): the detached factor is a constant",
        w.grad,
    )
    with torch.no_grad():
        w -= 0.1 * w.grad  # in-place update on a leaf is only allowed without recording
    show("with torch.no_grad(): w -= 0.1 * w.grad", w)


def accumulation() -> None:
    print("\n== 3. Gradients accumulate until zeroed ==")
    w = torch.tensor(1.0, requires_grad=True)
    for step in range(3):
        (3 * w).backward()  # d(3w)/dw = 3 each time
        show(f"after backward #{step + 1}: w.grad (3 added each call)", w.grad.item())
    w.grad.zero_()  # what optimizer.zero_grad() does (or sets .grad = None)
    (3 * w).backward()
    show("after w.grad.zero_() and one more backward", w.grad.item())
    print("    Accumulation is a feature: summing gradients of several small batches")
    print("    before one optimizer step simulates one large batch.")
    a = torch.tensor(1.0, requires_grad=True)
    c = torch.tensor([1.0, 3.0])  # two examples with losses c_i * a
    (c * a).mean().backward()  # the whole batch at once: d/da mean(c * a) = mean(c) = 2
    g_batch = a.grad.item()
    a.grad = None
    for c_i in c:  # two micro-batches of one example; divide by their count
        (c_i * a / len(c)).backward()
    show(
        "gradient of the batch mean vs two accumulated micro-batches (each / 2)",
        (g_batch, a.grad.item()),
    )


def vector_backward() -> None:
    print("\n== 4. Non-scalar outputs ==")
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x**2
    try:
        y.backward()
    except RuntimeError as err:
        show("y = x**2 (a vector); y.backward() -> error", str(err).splitlines()[0])
    y.backward(torch.ones_like(y))  # vector-Jacobian product with v = ones
    show("y.backward(torch.ones_like(y)) gives sum's gradient 2x", x.grad)
    show(
        "torch.autograd.grad(f, inputs) returns gradients instead of storing them",
        torch.autograd.grad((x**3).sum(), x),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    graph_and_grad()
    no_grad_and_detach()
    accumulation()
    vector_backward()


if __name__ == "__main__":
    main()
