"""A compact U-Net for semantic segmentation of small images."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["SmallUNet"]


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SmallUNet(nn.Module):
    """U-Net with ``depth`` poolings: (B, in_channels, H, W) -> (B, num_classes, H, W) logits.

    Every level is two 3x3 conv-BN-ReLU layers; the decoder upsamples bilinearly and
    concatenates the skip connection. Any H and W work (the decoder resizes to the
    skip's size).

    Parameters
    ----------
    num_classes : int
        Number of output channels (classes); >= 1.
    in_channels : int, default 3
        Input channels.
    width : int, default 16
        Channels of the first level; level ``k`` has ``width * 2**k``.
    depth : int, default 2
        Number of 2x poolings; >= 1.

    Raises
    ------
    ValueError
        If an argument is < 1.

    Notes
    -----
    **Cost.** With the defaults about 0.12 M parameters (0.5 MB as float32) and
    0.25 GMAC per 64 x 128 image. Inputs are expected in [0, 1]; the model centres
    them itself, so noise can be added in [0, 1] pixel space.

    Examples
    --------
    >>> import torch
    >>> model = SmallUNet(num_classes=8).eval()
    >>> model(torch.rand(2, 3, 30, 50)).shape
    torch.Size([2, 8, 30, 50])
    """

    def __init__(
        self, num_classes: int, in_channels: int = 3, width: int = 16, depth: int = 2
    ) -> None:
        super().__init__()
        for name, value in (
            ("num_classes", num_classes),
            ("in_channels", in_channels),
            ("width", width),
            ("depth", depth),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1; got {value!r}.")
        self.num_classes, self.in_channels = num_classes, in_channels
        self.width, self.depth = width, depth
        chans = [width * 2**k for k in range(depth + 1)]
        self.down = nn.ModuleList(
            [_block(in_channels, chans[0])] + [_block(chans[k], chans[k + 1]) for k in range(depth)]
        )
        self.up = nn.ModuleList(
            [_block(chans[k + 1] + chans[k], chans[k]) for k in reversed(range(depth))]
        )
        self.head = nn.Conv2d(chans[0], num_classes, 1)
        self.metadata: dict = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel class logits of shape (B, num_classes, H, W)."""
        h = self.down[0](x - 0.5)
        skips = [h]
        for block in self.down[1:]:
            h = block(F.max_pool2d(h, 2, ceil_mode=True))
            skips.append(h)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1))
        return self.head(h)

    def arch_kwargs(self) -> dict[str, int]:
        """The constructor arguments that rebuild this architecture."""
        return {
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "width": self.width,
            "depth": self.depth,
        }
