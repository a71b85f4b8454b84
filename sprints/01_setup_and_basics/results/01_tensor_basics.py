"""Tensor basics: creation, dtypes, devices, indexing and matrix products, each printed.

Every section prints the expression it evaluates next to the result, so the output
reads like a worked example. See notes/02a_tensor_basics.md.
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


def creation() -> None:
    print("\n== 1. Creating tensors ==")
    show("torch.tensor([[1, 2], [3, 4]])  (copies Python data)", torch.tensor([[1, 2], [3, 4]]))
    show("torch.zeros(2, 3)", torch.zeros(2, 3))
    show("torch.ones(2, 2, dtype=torch.int64)", torch.ones(2, 2, dtype=torch.int64))
    show("torch.arange(0, 10, 3)  (end excluded)", torch.arange(0, 10, 3))
    show("torch.linspace(0, 1, 5)  (end included)", torch.linspace(0, 1, 5))
    show("torch.eye(3)", torch.eye(3))
    g = torch.Generator().manual_seed(0)
    show(
        "torch.randn(2, 3, generator=seeded)  (N(0,1), repeatable)", torch.randn(2, 3, generator=g)
    )
    x = torch.arange(6).reshape(2, 3)
    show("x = torch.arange(6).reshape(2, 3)", x)
    show("x.shape, x.ndim, x.numel()", (tuple(x.shape), x.ndim, x.numel()))
    show("torch.zeros_like(x)  (same shape, dtype and device as x)", torch.zeros_like(x))


def dtypes() -> None:
    print("\n== 2. dtypes ==")
    show("torch.tensor([1, 2]).dtype  (Python ints)", torch.tensor([1, 2]).dtype)
    show("torch.tensor([1.0, 2]).dtype  (Python floats)", torch.tensor([1.0, 2]).dtype)
    show("torch.get_default_dtype()", torch.get_default_dtype())
    # Promotion: mixing int and float gives float, never silently truncates.
    show(
        "(torch.tensor([1, 2]) + 0.5).dtype  (int + float -> float)",
        (torch.tensor([1, 2]) + 0.5).dtype,
    )
    show("torch.tensor([1, 2]) / 2  (true division gives float)", torch.tensor([1, 2]) / 2)
    show(
        "torch.tensor([2.7, -2.7]).to(torch.int64)  (truncates toward 0)",
        torch.tensor([2.7, -2.7]).to(torch.int64),
    )
    for dt in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        info = torch.finfo(dt)
        show(
            f"torch.finfo({dt}): bytes, eps, max",
            (torch.empty(0, dtype=dt).element_size(), info.eps, info.max),
        )
    show(
        "torch.tensor(1.0, dtype=torch.float16) + 1e-4  (below half precision's step)",
        torch.tensor(1.0, dtype=torch.float16) + 1e-4,
    )


def devices() -> None:
    print("\n== 3. Devices ==")
    show("torch.cuda.is_available()", torch.cuda.is_available())
    show("torch.backends.mps.is_available()", torch.backends.mps.is_available())
    if torch.cuda.is_available():
        device = torch.device("cuda")
    elif torch.backends.mps.is_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    show("chosen device", device)
    x = torch.ones(2, 2)
    y = x.to(device)  # a copy on the device (or x itself if it is already there)
    show("x.device, x.to(device).device", (x.device, y.device))
    show("torch.zeros(2, device=device)  (create in place, no copy)", torch.zeros(2, device=device))
    print("    Operands of one operation must share a device; move with .to(device), and")
    print("    bring results back with .cpu() before .numpy() or printing large values.")


def indexing() -> None:
    print("\n== 4. Indexing ==")
    x = torch.arange(12).reshape(3, 4)
    show("x = torch.arange(12).reshape(3, 4)", x)
    show("x[1]  (second row)", x[1])
    show("x[:, 2]  (third column)", x[:, 2])
    show("x[1:, ::2]  (rows 1.., every second column)", x[1:, ::2])
    show("x[-1, -1]  (last element; .item() gives a Python number)", x[-1, -1].item())
    show("x[x % 2 == 0]  (boolean mask -> 1-D tensor of chosen elements)", x[x % 2 == 0])
    show("x[[0, 2], [1, 3]]  (integer arrays pick pairs (0,1) and (2,3))", x[[0, 2], [1, 3]])
    show("x[:, None].shape  (None inserts an axis of size 1)", tuple(x[:, None].shape))
    show(
        "torch.gather(x, 1, torch.tensor([[3], [0], [2]]))  (one column per row)",
        torch.gather(x, 1, torch.tensor([[3], [0], [2]])),
    )
    y = x.clone()
    y[y > 8] = 0
    show("y = x.clone(); y[y > 8] = 0  (masked assignment)", y)


def matrix_products() -> None:
    print("\n== 5. Matrix products ==")
    A = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    B = torch.tensor([[5.0, 6.0], [7.0, 8.0]])
    show("A @ B  (matrix product: row of A dot column of B)", A @ B)
    show("A * B  (elementwise, NOT a matrix product)", A * B)
    v = torch.tensor([1.0, 1.0])
    show("A @ v  (matrix-vector -> shape (2,))", A @ v)
    show("torch.dot(v, v)  (1-D dot product)", torch.dot(v, v))
    batch = torch.randn(8, 3, 4, generator=torch.Generator().manual_seed(0))
    W = torch.randn(4, 5, generator=torch.Generator().manual_seed(1))
    show(
        "(batch (8, 3, 4) @ W (4, 5)).shape  (W broadcast over the batch)", tuple((batch @ W).shape)
    )
    show(
        "torch.einsum('bij,jk->bik', batch, W) equals batch @ W",
        torch.allclose(torch.einsum("bij,jk->bik", batch, W), batch @ W),
    )
    show("A.T  (transpose: a view, no copy)", A.T)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--section",
        choices=["all", "creation", "dtypes", "devices", "indexing", "matmul"],
        default="all",
        help="print only one section",
    )
    args = parser.parse_args()
    sections = {
        "creation": creation,
        "dtypes": dtypes,
        "devices": devices,
        "indexing": indexing,
        "matmul": matrix_products,
    }
    for name, fn in sections.items():
        if args.section in ("all", name):
            fn()


if __name__ == "__main__":
    main()
