"""Exercise 1: the shape that broadcasting gives two shapes
(notes/02b_broadcasting_and_views.md)."""


def broadcast_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of ``x + y`` for tensors of shapes ``a`` and ``b``.

    Raise ValueError when the shapes cannot be broadcast together.
    """
    raise NotImplementedError(
        "hint: line the shapes up from the right; two sizes match when equal or when one is 1")
