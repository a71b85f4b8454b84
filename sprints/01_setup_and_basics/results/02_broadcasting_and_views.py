"""Broadcasting, and views versus copies (.view, .reshape, .contiguous, data_ptr, .clone).

See notes/02b_broadcasting_and_views.md for the rules these printouts illustrate.
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


def broadcasting() -> None:
    print("\n== 1. Broadcasting ==")
    print("  Rule: align shapes on the right; each pair of sizes must be equal or one of them 1;")
    print("  a size-1 (or missing) axis is repeated to match, without copying memory.")
    col = torch.tensor([[0.0], [10.0], [20.0]])  # (3, 1)
    row = torch.tensor([1.0, 2.0, 3.0, 4.0])  # (4,) -> treated as (1, 4)
    show("col (3, 1) + row (4,)  -> (3, 4)", col + row)
    show(
        "equals col.expand(3, 4) + row.expand(3, 4)",
        torch.equal(col + row, col.expand(3, 4) + row.expand(3, 4)),
    )
    show("torch.broadcast_shapes((8, 1, 5), (3, 1))", torch.broadcast_shapes((8, 1, 5), (3, 1)))
    X = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]])  # (N=3, D=2)
    show("X - X.mean(dim=0)  (subtract each column's mean: (3, 2) - (2,))", X - X.mean(dim=0))
    show(
        "X / X.sum(dim=1, keepdim=True)  (keepdim keeps (3, 1) so rows divide)",
        X / X.sum(dim=1, keepdim=True),
    )
    try:
        torch.ones(3, 2) + torch.ones(3)
    except RuntimeError as err:
        show(
            "torch.ones(3, 2) + torch.ones(3)  -> error (2 vs 3 on the last axis)",
            str(err).splitlines()[0],
        )
    e = torch.zeros(1, 4).expand(3, 4)
    show(
        "torch.zeros(1, 4).expand(3, 4).stride()  (stride 0: one row read three times)", e.stride()
    )


def views_and_copies() -> None:
    print("\n== 2. Views versus copies ==")
    x = torch.arange(6)
    v = x.view(2, 3)  # same storage, new shape
    show("x = torch.arange(6); v = x.view(2, 3)", v)
    show("v.data_ptr() == x.data_ptr()  (same memory)", v.data_ptr() == x.data_ptr())
    v[0, 0] = 100
    show("after v[0, 0] = 100, x is", x)
    c = x.clone()
    c[1] = -1
    show(
        "c = x.clone(); c[1] = -1 -> x unchanged; c.data_ptr() == x.data_ptr()",
        (x.tolist(), c.data_ptr() == x.data_ptr()),
    )
    s = x[2:4]
    show(
        "x[2:4] is a view too: its data_ptr is x's plus 2 elements * 8 bytes",
        s.data_ptr() - x.data_ptr(),
    )

    print("\n== 3. Strides, transpose and contiguity ==")
    m = torch.arange(6).reshape(2, 3)
    show(
        "m = torch.arange(6).reshape(2, 3); m.stride()  (step 3 per row, 1 per column)", m.stride()
    )
    t = m.T
    show("t = m.T; t.stride(), t.is_contiguous()", (t.stride(), t.is_contiguous()))
    try:
        t.view(6)
    except RuntimeError as err:
        show("t.view(6) -> error", str(err).splitlines()[0][:90] + " ...")
    r = t.reshape(6)
    show("t.reshape(6)  (copies when a view is impossible)", r)
    show("t.reshape(6).data_ptr() == m.data_ptr()", r.data_ptr() == m.data_ptr())
    show(
        "m.reshape(3, 2).data_ptr() == m.data_ptr()  (view when possible)",
        m.reshape(3, 2).data_ptr() == m.data_ptr(),
    )
    tc = t.contiguous()
    show(
        "t.contiguous(): new memory laid out row by row; stride, is_contiguous",
        (tc.stride(), tc.is_contiguous()),
    )
    show("t.contiguous().view(6)", tc.view(6))

    print("\n== 4. In-place operations ==")
    a = torch.ones(3)
    ptr = a.data_ptr()
    a.add_(1)  # trailing underscore: modifies a's memory
    show("a = torch.ones(3); a.add_(1) -> a, same memory?", (a.tolist(), a.data_ptr() == ptr))
    a = a + 1  # builds a new tensor, rebinds the name
    show("a = a + 1 -> same memory?", a.data_ptr() == ptr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--section",
        choices=["all", "broadcasting", "views"],
        default="all",
        help="print only one part",
    )
    args = parser.parse_args()
    if args.section in ("all", "broadcasting"):
        broadcasting()
    if args.section in ("all", "views"):
        views_and_copies()


if __name__ == "__main__":
    main()
