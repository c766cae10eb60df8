"""A compact PointNet for point-cloud part segmentation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["CategoryMasked", "PointNetSeg"]


def _mlp(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, cout, 1, bias=False), nn.BatchNorm1d(cout), nn.ReLU(True))


class PointNetSeg(nn.Module):
    """PointNet part segmentation: (B, N, in_channels) -> (B, N, num_classes) logits.

    A shared per-point MLP (``width``, ``2 width``, ``4 width``, ``8 width`` channels),
    a max-pooled global feature, and a per-point head on the concatenation of
    every local feature with the global one (Qi et al., 2017, without the
    alignment networks). The output does not depend on the order of the points.

    Parameters
    ----------
    num_classes : int, default 50
        Number of part labels (50 global ShapeNet parts).
    in_channels : {3, 6}, default 3
        3: positions only; 6: positions and normals.
    width : int, default 32
        Channels of the first layer; >= 1.

    Raises
    ------
    ValueError
        If ``num_classes`` or ``width`` is < 1 or ``in_channels`` is not 3 or 6.

    Notes
    -----
    **Cost.** With the defaults and ``in_channels=6`` about 0.12 M parameters
    (0.47 MB as float32) and 0.12 MMAC per point. The input must be centred and
    scaled to the unit ball.

    Examples
    --------
    >>> import torch
    >>> model = PointNetSeg(num_classes=50, in_channels=6).eval()
    >>> x = torch.randn(2, 100, 6)
    >>> model(x).shape
    torch.Size([2, 100, 50])
    >>> perm = torch.randperm(100)
    >>> bool(torch.allclose(model(x[:, perm]), model(x)[:, perm], atol=1e-5))
    True
    """

    def __init__(self, num_classes: int = 50, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        for name, value in (("num_classes", num_classes), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1; got {value!r}.")
        if in_channels not in (3, 6):
            raise ValueError(f"`in_channels` must be 3 or 6; got {in_channels!r}.")
        self.num_classes, self.in_channels, self.width = num_classes, in_channels, width
        w = width
        self.local = nn.ModuleList([_mlp(in_channels, w), _mlp(w, 2 * w), _mlp(2 * w, 4 * w)])
        self.expand = _mlp(4 * w, 8 * w)
        self.head = nn.Sequential(
            _mlp(w + 2 * w + 4 * w + 8 * w, 4 * w),
            _mlp(4 * w, 2 * w),
            nn.Conv1d(2 * w, num_classes, 1),
        )
        self.metadata: dict = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-point part logits of shape (B, N, num_classes)."""
        if x.ndim != 3 or x.shape[-1] != self.in_channels:
            raise ValueError(
                f"`x` must have shape (B, N, {self.in_channels}); got {tuple(x.shape)}."
            )
        h = x.transpose(1, 2)
        feats = []
        for layer in self.local:
            h = layer(h)
            feats.append(h)
        g = self.expand(h).amax(dim=2, keepdim=True).expand(-1, -1, h.shape[2])
        out = self.head(torch.cat([*feats, g], dim=1))
        return out.transpose(1, 2)

    def arch_kwargs(self) -> dict[str, int]:
        """The constructor arguments that rebuild this architecture."""
        return {
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "width": self.width,
        }


class CategoryMasked(nn.Module):
    """Restrict a part model's predictions to the parts of one object category.

    Logits of labels outside ``parts`` are set to ``-inf``, so the argmax (and any
    smoothed prediction built on it) only returns the category's own parts, the
    usual ShapeNet evaluation.

    Parameters
    ----------
    model : torch.nn.Module
        Returns (B, N, C) logits.
    parts : sequence of int
        Allowed labels, e.g. ``smoothing.datasets.category_parts("Mug")``.

    Examples
    --------
    >>> import torch
    >>> masked = CategoryMasked(PointNetSeg(in_channels=3).eval(), parts=(36, 37))
    >>> pred = masked(torch.randn(1, 64, 3)).argmax(-1)
    >>> set(pred.unique().tolist()) <= {36, 37}
    True
    """

    def __init__(self, model: nn.Module, parts: Sequence[int]) -> None:
        super().__init__()
        parts = [int(p) for p in parts]
        if not parts:
            raise ValueError("`parts` must name at least one label; got an empty sequence.")
        self.model = model
        self.register_buffer("parts", torch.tensor(parts, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the wrapped model with every other label at ``-inf``."""
        logits = self.model(x)
        keep = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
        keep[self.parts.to(logits.device)] = True
        return logits.masked_fill(~keep, float("-inf"))
