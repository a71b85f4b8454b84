"""Random affine augmentation for a whole batch at once (each image its own transform).

torchvision's RandomAffine draws one transform per call, so on a batch tensor every image
would get the same one; building one 2x3 matrix per image and resampling with grid_sample
gives each digit its own rotation, scale and shift, in one vectorised call.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class BatchRandomAffine:
    def __init__(
        self,
        degrees: float = 10.0,
        translate_px: float = 2.0,
        scale: tuple[float, float] = (0.9, 1.1),
        fill: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        self.degrees = degrees
        self.translate_px = translate_px
        self.scale = scale
        self.fill = fill  # the value of the background (after normalisation it is not 0)
        self.generator = generator

    def _uniform(self, n: int, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=self.generator)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape  # (B, C, H, W)
        angle = self._uniform(b, -self.degrees, self.degrees) * math.pi / 180
        s = self._uniform(b, *self.scale)
        # grid coordinates run from -1 to 1 over the image, so one pixel is 2/size
        tx = self._uniform(b, -self.translate_px, self.translate_px) * 2 / w
        ty = self._uniform(b, -self.translate_px, self.translate_px) * 2 / h
        cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
        # theta maps output coordinates to input coordinates: (B, 2, 3). It is drawn on the CPU
        # (the generator lives there, so a seed gives the same transforms on every device) and
        # then moved to the batch's device.
        theta = torch.stack(
            [torch.stack([cos, -sin, tx], dim=1), torch.stack([sin, cos, ty], dim=1)], dim=1
        ).to(x.device, x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2)
        # grid_sample pads with zeros; shift so the padding equals the background value
        out = F.grid_sample(x - self.fill, grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False)
        return out + self.fill
