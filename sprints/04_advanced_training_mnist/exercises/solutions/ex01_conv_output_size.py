"""Solution 1: the count of kernel positions that fit."""


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> int:
    span = dilation * (kernel - 1) + 1  # how far one kernel reaches
    return (size + 2 * padding - span) // stride + 1
