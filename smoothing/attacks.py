"""Projected gradient descent in l2 for segmentation models (App. C.1 of the paper)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.nn import functional as F

from smoothing._sampling import (
    LAYOUTS,
    check_input,
    check_int,
    check_layout,
    check_real,
    infer_layout,
    resolve_layout,
)

__all__ = ["pgd_l2", "project_l2"]


def _norms(d: torch.Tensor) -> torch.Tensor:
    """Per-example l2 norms of a batch, in float64, shape (B, 1, ..., 1)."""
    n = d.detach().double().flatten(1).norm(dim=1)
    return n.reshape(-1, *([1] * (d.ndim - 1)))


def project_l2(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Project every example of a batch of perturbations onto the l2 ball of radius ``eps``.

    ``delta * min(1, eps / ||delta||_2)`` per example (dimension 0), a real
    projection: perturbations inside the ball are unchanged (the reference code's
    ``renorm`` result was discarded, a no-op). The result satisfies
    ``||delta||_2 <= eps`` exactly when checked in float64.

    Examples
    --------
    >>> import torch
    >>> from smoothing.attacks import project_l2
    >>> d = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    >>> project_l2(d, 1.0)
    tensor([[0.6000, 0.8000],
            [0.3000, 0.4000]])
    """
    out = delta
    for _ in range(8):  # one round suffices except for float rounding
        norms = _norms(out)
        if not bool((norms > eps).any()):
            return out
        # shrink a hair more than eps / norm so that rounding cannot overshoot
        scale = torch.where(norms > eps, eps / norms * (1.0 - 1e-7), torch.ones_like(norms))
        out = out * scale.to(out.dtype)
    return out  # pragma: no cover - float rounding settles within a round or two


def pgd_l2(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int = 100,
    step_size: float | None = None,
    random_start: bool = True,
    clamp: tuple[float, float] | None = (0.0, 1.0),
    ignore_index: int = 255,
    layout: str = "auto",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Untargeted l2 PGD on the mean per-component cross-entropy (App. C.1 of [1]_).

    Starting from a random point of the l2 ball of radius ``eps`` around ``x``,
    each of the ``steps`` iterations moves every example by ``step_size`` along its
    normalised gradient of the loss
    :math:`\frac1N \sum_i H(f_i(x'), y_i)` (Xie et al., 2017), projects the
    perturbation back onto the ball and clamps to the valid input range.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Returns logits in ``layout`` for a batch of inputs.
    x : torch.Tensor
        Batch of clean inputs, floating point: images (B, C, H, W) or point
        clouds (B, N, d).
    y : torch.Tensor
        int64 ground truth (B, H, W) or (B, N); ``ignore_index`` entries are left
        out of the loss.
    eps : float
        Radius of the l2 ball, per example (the norm is over all of an example's
        coordinates), > 0.
    steps : int, default 100
        Number of iterations, >= 1.
    step_size : float, optional
        l2 length of every step; default ``10 * eps / steps`` (App. C).
    random_start : bool, default True
        Start at a uniform random point of the ball (else at ``x``).
    clamp : (float, float) or None, default (0.0, 1.0)
        Valid input range; ``x`` must lie inside it. ``None``: no clamping.
    ignore_index : int, default 255
        Ground-truth value without a loss.
    layout : {'auto', 'BCHW', 'BHWC', 'BNC', 'BCN'}, default 'auto'
        Layout of the model's output; ``'auto'``: the model's ``layout``
        attribute, else inferred from the shapes.
    generator : torch.Generator, optional
        Source of the random start, on ``x``'s device.

    Returns
    -------
    torch.Tensor
        The adversarial batch (detached), with
        ``(x_adv - x).flatten(1).norm(dim=1) <= eps`` for every example and,
        with ``clamp``, inside the valid range.

    Raises
    ------
    TypeError
        If ``x`` is not a floating-point tensor or ``y`` not an integer tensor.
    ValueError
        If ``eps``, ``steps`` or ``step_size`` are out of range, the shapes do not
        match, or ``x`` lies outside ``clamp``.

    Notes
    -----
    The model runs in eval mode (its mode is restored afterwards); gradients are
    taken with respect to the input only, so no parameter gradients accumulate.
    The projection is the Euclidean projection onto the ball (the paper's
    formula rescales every perturbation to norm exactly ``eps``, and the
    reference code's projection was a no-op). Clamping after the projection only
    moves coordinates towards ``x`` and so stays within the ball. Cost: ``steps``
    forward and backward passes.

    References
    ----------
    .. [1] M. Fischer, M. Baader, M. Vechev, "Scalable Certified Segmentation via
       Randomized Smoothing", ICML 2021, App. C.1.

    Examples
    --------
    >>> import torch
    >>> from smoothing import pgd_l2
    >>> model = torch.nn.Conv2d(3, 4, 3, padding=1)
    >>> x, y = torch.rand(2, 3, 16, 16), torch.randint(0, 4, (2, 16, 16))
    >>> adv = pgd_l2(model, x, y, eps=0.5, steps=5, generator=torch.Generator().manual_seed(0))
    >>> bool(((adv - x).flatten(1).norm(dim=1) <= 0.5).all()), adv.min() >= 0, adv.max() <= 1
    (True, tensor(True), tensor(True))
    """
    x = check_input(x)
    if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32, torch.uint8,
                                                          torch.int16):
        raise TypeError("`y` must be an integer torch.Tensor of class indices.")
    if x.ndim < 2 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"`x` must be a batch and `y` its labels; got shapes {tuple(x.shape)} and "
            f"{tuple(y.shape)}."
        )
    eps = check_real(eps, "eps", 0.0, math.inf, closed_low=False, text="(0, inf)")
    steps = check_int(steps, "steps")
    if step_size is None:
        step_size = 10.0 * eps / steps
    step_size = check_real(step_size, "step_size", 0.0, math.inf, closed_low=False,
                           text="(0, inf)")
    layout = resolve_layout(check_layout(layout), model)
    if clamp is not None:
        lo, hi = float(clamp[0]), float(clamp[1])
        if not lo < hi:
            raise ValueError(f"`clamp` must be (low, high) with low < high; got {clamp!r}.")
        if bool((x < lo).any() or (x > hi).any()):
            raise ValueError(f"`x` must lie inside `clamp` = {clamp!r}.")

    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    x = x.detach()
    y = y.to(device=x.device, dtype=torch.int64)

    def loss_of(inp: torch.Tensor) -> torch.Tensor:
        out = model(inp)
        name = layout if layout != "auto" else infer_layout(tuple(out.shape),
                                                            tuple(y.shape[1:]), None)
        class_dim = LAYOUTS[name].class_dim
        if class_dim != 1:
            out = out.movedim(class_dim, 1)
        if out.shape[0] != y.shape[0] or out.shape[2:] != y.shape[1:]:
            raise ValueError(
                f"the model output {tuple(out.shape)} (layout {name!r}) does not match the "
                f"labels {tuple(y.shape)}."
            )
        return F.cross_entropy(out, y, ignore_index=ignore_index)

    try:
        if random_start:  # uniform in the ball: Gaussian direction, radius eps * U^(1/d)
            d = x[0].numel()
            direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            u = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=torch.float64)
            radius = (eps * u.pow(1.0 / d)).reshape(-1, *([1] * (x.ndim - 1)))
            delta = direction / _norms(direction).clamp_min(1e-30).to(x.dtype)
            delta = delta * radius.to(x.dtype)
        else:
            delta = torch.zeros_like(x)
        delta = _to_box(x, project_l2(delta, eps), clamp)
        for _ in range(steps):
            delta.requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(loss_of(x + delta), [delta])
            with torch.no_grad():
                g = grad / _norms(grad).clamp_min(1e-30).to(grad.dtype)
                delta = delta.detach() + step_size * g
                delta = _to_box(x, project_l2(delta, eps), clamp)
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
    return _final(x, delta.detach(), eps, clamp)


def _to_box(x: torch.Tensor, delta: torch.Tensor, clamp: tuple[float, float] | None
            ) -> torch.Tensor:
    """The perturbation that keeps ``x + delta`` inside ``clamp`` (coordinate-wise)."""
    if clamp is None:
        return delta
    return (x + delta).clamp(clamp[0], clamp[1]) - x


def _final(x: torch.Tensor, delta: torch.Tensor, eps: float,
           clamp: tuple[float, float] | None) -> torch.Tensor:
    """``x + delta`` (clamped), with ``||adv - x|| <= eps`` re-checked after rounding."""
    adv = x + _to_box(x, delta, clamp)
    for k in range(8):
        d = adv - x  # what a caller measures, rounding of x + delta included
        if not bool((_norms(d) > eps).any()):
            return adv
        # shrink with a growing margin (1e-7, 1e-6, ...; the last round returns x)
        adv = x + _to_box(x, project_l2(d, eps * (1.0 - 10.0 ** (k - 7))), clamp)
    return adv
