"""Checks shared by the real-model wrappers."""

from __future__ import annotations

import torch


def check_image_batch(x: object, channels: int, kind: str) -> torch.Tensor:
    """``x`` if it is a floating-point (B, ``channels``, H, W) tensor, else raise.

    Raises
    ------
    TypeError
        If ``x`` is not a floating-point tensor.
    ValueError
        If ``x`` is not (B, ``channels``, H, W); the message names ``kind``.
    """
    if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
        raise TypeError(f"`x` must be a floating-point torch.Tensor; got {type(x).__name__}.")
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"`x` must be {kind} (B, {channels}, H, W); got shape "
                         f"{tuple(x.shape)}.")
    return x
