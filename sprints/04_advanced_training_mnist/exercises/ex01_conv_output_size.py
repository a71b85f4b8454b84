"""Exercise 1: the output size of a convolution (notes/01_cnn.md)."""


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> int:
    """Output length along one spatial dimension of nn.Conv2d / nn.MaxPool2d."""
    raise NotImplementedError(
        "hint: floor((size + 2 padding - dilation (kernel - 1) - 1) / stride) + 1")
