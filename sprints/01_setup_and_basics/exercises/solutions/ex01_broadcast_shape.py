"""Solution 1: broadcast two shapes by hand."""


def broadcast_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)  # pad the shorter shape with 1s on the left
    b = (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b, strict=True):
        if x != y and 1 not in (x, y):
            raise ValueError(f"sizes {x} and {y} cannot be broadcast")
        out.append(max(x, y) if 0 not in (x, y) else 0)
    return tuple(out)
