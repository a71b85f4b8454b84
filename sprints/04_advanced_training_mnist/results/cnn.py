"""A small convolutional network for 28x28 digits.

Two blocks of (conv-BN-ReLU, conv-BN-ReLU, max-pool) turn a 1x28x28 image into 64 feature
maps of 7x7; a dropout-regularised two-layer head turns those into 10 class scores.
"""

from __future__ import annotations

from torch import Tensor, nn


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    # bias=False: the batch norm right after adds its own shift, a conv bias would be wasted
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class MnistCNN(nn.Module):
    def __init__(self, width: int = 32, hidden: int = 128, dropout: float = 0.4) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(1, width),  # (B, 1, 28, 28) -> (B, w, 28, 28)
            conv_bn_relu(width, width),
            nn.MaxPool2d(2),  # -> (B, w, 14, 14)
            conv_bn_relu(width, 2 * width),  # -> (B, 2w, 14, 14)
            conv_bn_relu(2 * width, 2 * width),
            nn.MaxPool2d(2),  # -> (B, 2w, 7, 7)
        )
        self.head = nn.Sequential(
            nn.Flatten(),  # (B, 2w, 7, 7) -> (B, 2w*49)
            nn.Dropout(dropout / 2),
            nn.Linear(2 * width * 7 * 7, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, 10),  # -> (B, 10) logits
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"MnistCNN expects (B, 1, 28, 28) images, got {tuple(x.shape)}")
        return self.head(self.features(x))
