"""Random rotations of point clouds: parameter-space smoothing (Fischer et al., 2020).

A point-cloud batch has shape (B, N, 3) -- xyz positions -- or (B, N, 6) -- positions,
then normal vectors. A rotation acts on positions *and* normals with the same matrix,
about the origin (clouds are centred before smoothing, §6.3 of the SEGCERTIFY paper).
Point i stays point i, so per-point labels keep their meaning.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from samplers._base import (
    Sampler,
    _check_generator,
    _check_input,
    _check_point_cloud,
    _check_positive,
    _normal_ppf,
    _radii_via,
    _radius_via,
)

__all__ = ["Rotation3D", "RotationZ"]

_NAMED_AXES: dict[str, tuple[float, float, float]] = {
    "x": (1.0, 0.0, 0.0),
    "y": (0.0, 1.0, 0.0),
    "z": (0.0, 0.0, 1.0),
}


# ---------------------------------------------------------------------------
# Kernels: pure tensor maths, no validation.
# ---------------------------------------------------------------------------


def _axis_angle_matrix(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: rotation by ``angle`` (shape S) about unit ``axis`` (3,) -> S x 3 x 3.

    ``R = cos(t) I + sin(t) [u]_x + (1 - cos(t)) u u^T``.
    """
    u = axis.to(angle)
    zero = torch.zeros((), dtype=angle.dtype, device=angle.device)
    cross = torch.stack(
        (
            torch.stack((zero, -u[2], u[1])),
            torch.stack((u[2], zero, -u[0])),
            torch.stack((-u[1], u[0], zero)),
        )
    )
    eye = torch.eye(3, dtype=angle.dtype, device=angle.device)
    c = torch.cos(angle)[..., None, None]
    s = torch.sin(angle)[..., None, None]
    return c * eye + s * cross + (1.0 - c) * torch.outer(u, u)


def _euler_xyz_matrix(angles: torch.Tensor) -> torch.Tensor:
    """``Rz(g) @ Ry(b) @ Rx(a)`` for ``angles[..., :] = (a, b, g)`` -> (..., 3, 3)."""
    rx = _axis_angle_matrix(torch.tensor(_NAMED_AXES["x"]), angles[..., 0])
    ry = _axis_angle_matrix(torch.tensor(_NAMED_AXES["y"]), angles[..., 1])
    rz = _axis_angle_matrix(torch.tensor(_NAMED_AXES["z"]), angles[..., 2])
    return rz @ ry @ rx


def _apply_rotation(x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Rotate positions (and normals) of ``x`` (B, N, 3k) by ``rot`` (B, 3, 3): p -> R p."""
    b, n, c = x.shape
    vectors = x.reshape(b, n, c // 3, 3)  # (B, N, 1 or 2, 3): positions, normals
    rotated = vectors @ rot.transpose(-1, -2).unsqueeze(1)  # row vectors: p^T R^T
    return rotated.reshape(b, n, c)


def _float_tensor(values: torch.Tensor | float | Sequence[float]) -> torch.Tensor:
    """A floating tensor: tensors keep a floating dtype, everything else becomes float64."""
    if isinstance(values, torch.Tensor) and torch.is_floating_point(values):
        return values
    return torch.as_tensor(values, dtype=torch.float64)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Trigonometry in at least float32, so half-precision inputs get accurate matrices."""
    return torch.promote_types(dtype, torch.float32)


def _as_angles(
    angles: torch.Tensor | float | Sequence[float],
    x: torch.Tensor,
    dtype: torch.dtype,
    *,
    trailing: tuple[int, ...],
    name: str,
) -> torch.Tensor:
    """Angles as a (B, *trailing) tensor on ``x.device``; one set is broadcast over B."""
    a = torch.as_tensor(angles, device=x.device, dtype=dtype)
    batch = x.shape[0]
    if tuple(a.shape) == trailing:
        return a.expand(batch, *trailing)
    if tuple(a.shape) == (batch, *trailing):
        return a
    want = " or ".join(str(s) for s in (trailing, (batch, *trailing)))
    raise ValueError(f"`{name}` must have shape {want} for this batch; got {tuple(a.shape)}.")


# ---------------------------------------------------------------------------
# Samplers.
# ---------------------------------------------------------------------------


def _check_axis(axis: object) -> tuple[str | tuple[float, float, float], tuple[float, ...]]:
    """Return ``(axis as stored, unit vector)`` for a name or a 3-vector."""
    choices = "one of {'x', 'y', 'z'} or a length-3 vector of real numbers"
    if isinstance(axis, str):
        key = axis.lower()
        if key not in _NAMED_AXES:
            raise ValueError(f"`axis` must be {choices}; got {axis!r}.")
        return key, _NAMED_AXES[key]
    if isinstance(axis, torch.Tensor):
        axis = axis.tolist()
    if not isinstance(axis, Iterable):
        raise TypeError(f"`axis` must be {choices}; got {type(axis).__name__}.")
    items = list(axis)
    if any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in items):
        raise TypeError(f"`axis` must be {choices}; got {axis!r}.")
    if len(items) != 3:
        raise ValueError(f"`axis` must be {choices}; got {axis!r}.")
    vec = tuple(float(v) for v in items)
    norm = math.sqrt(sum(v * v for v in vec))
    if not (math.isfinite(norm) and norm > 0.0):
        raise ValueError(f"`axis` must be a finite, non-zero vector; got {axis!r}.")
    unit = (vec[0] / norm, vec[1] / norm, vec[2] / norm)
    return unit, unit


@dataclass(frozen=True)
class RotationZ(Sampler):
    r"""Rotate each point cloud about one fixed axis by an angle :math:`\theta \sim N(0, \sigma^2)`.

    Parameters
    ----------
    sigma : float
        Standard deviation of the angle, in radians; finite and > 0.
    axis : {'x', 'y', 'z'} or sequence of 3 floats, default 'z'
        The fixed rotation axis through the origin (a vector is normalised). The
        class is named for the default; the certificate is the same for any axis.

    Raises
    ------
    TypeError
        If ``sigma`` is not a real number, or ``axis`` is neither a string nor a
        sequence of real numbers.
    ValueError
        If ``sigma`` is <= 0 or not finite, or ``axis`` is an unknown name or not a
        finite, non-zero 3-vector.

    Notes
    -----
    **Certificate (sound).** Rotations about one fixed axis compose additively,
    :math:`R(\varepsilon) R(\delta) = R(\varepsilon + \delta)`. Hence the smoothed
    model at an attacked cloud :math:`x' = R(\delta) x` sees the rotations
    :math:`R(\varepsilon + \delta) x`: Gaussian smoothing in the one-dimensional
    angle space, shifted by :math:`\delta`. By the parameter-space smoothing of [2]_
    and Theorem 5.1 of [1]_, every non-abstaining point keeps its label for all
    attacker rotations about ``axis`` by :math:`|\delta| \le R = \sigma\,\Phi^{-1}(\tau)`
    radians. The statement is exact: rotating a point cloud involves no
    interpolation. It says nothing about rotations about other axes.

    Positions and normals are rotated by the same matrix; the layout is (B, N, 3) or
    (B, N, 6). Cost: one ``torch.randn`` of shape (B,) plus a (B, N, 3k) matmul.

    References
    ----------
    .. [1] M. Fischer, M. Baader, M. Vechev, "Scalable Certified Segmentation via
       Randomized Smoothing", ICML 2021, §5.2 and App. B.5.
    .. [2] M. Fischer, M. Baader, M. Vechev, "Certified Defense to Image
       Transformations via Randomized Smoothing", NeurIPS 2020.

    Examples
    --------
    >>> import math, torch
    >>> from samplers import RotationZ
    >>> sampler = RotationZ(sigma=0.25)
    >>> round(sampler.radius(0.75), 4)  # radians
    0.1686
    >>> cloud = torch.tensor([[[1.0, 0.0, 0.5, 1.0, 0.0, 0.0]]])  # one point + normal
    >>> quarter_turn = sampler.rotate(cloud, math.pi / 2)  # x -> y, z fixed
    >>> expected = torch.tensor([[[0.0, 1.0, 0.5, 0.0, 1.0, 0.0]]])
    >>> bool(torch.allclose(quarter_turn, expected, atol=1e-6))
    True
    >>> sampler.perturb(torch.randn(8, 1024, 6)).shape
    torch.Size([8, 1024, 6])
    """

    sigma: float
    axis: str | tuple[float, float, float] = "z"
    _unit_axis: tuple[float, ...] = field(init=False, repr=False, compare=False)

    sound: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", _check_positive(self.sigma, "sigma"))
        stored, unit = _check_axis(self.axis)
        object.__setattr__(self, "axis", stored)
        object.__setattr__(self, "_unit_axis", unit)

    @property
    def threat_model(self) -> str:
        """Rotation about the fixed axis, radius = largest certified angle (radians)."""
        if isinstance(self.axis, str):
            axis = self.axis
        else:
            axis = "(" + ", ".join(f"{v:.4g}" for v in self.axis) + ")"
        return f"rotation about the {axis} axis by |angle| <= R (radians)"

    def matrix(self, angle: torch.Tensor | float) -> torch.Tensor:
        """Rotation matrices for ``angle`` (any shape S) about the axis -> S x 3 x 3.

        A Python float gives a float64 matrix; a tensor keeps its floating dtype.
        """
        a = _float_tensor(angle)
        return _axis_angle_matrix(torch.tensor(self._unit_axis, dtype=torch.float64), a)

    def rotate(self, x: torch.Tensor, angle: torch.Tensor | float) -> torch.Tensor:
        """Apply the deterministic rotation by ``angle`` to positions and normals.

        Parameters
        ----------
        x : torch.Tensor
            Point-cloud batch, shape (B, N, 3) or (B, N, 6), floating point.
        angle : float or torch.Tensor
            One angle for the whole batch (scalar) or one per cloud, shape (B,);
            radians.

        Returns
        -------
        torch.Tensor
            Same shape, dtype and device as ``x``.

        Raises
        ------
        TypeError
            If ``x`` is not a floating-point tensor.
        ValueError
            If ``x`` is not (B, N, 3|6) or ``angle`` has the wrong shape.
        """
        x = _check_input(x)
        _check_point_cloud(x)
        dtype = _compute_dtype(x.dtype)
        a = _as_angles(angle, x, dtype, trailing=(), name="angle")
        axis = torch.tensor(self._unit_axis, dtype=dtype, device=x.device)
        rot = _axis_angle_matrix(axis, a)
        return _apply_rotation(x.to(dtype), rot).to(x.dtype)

    def perturb(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Rotate every cloud of the batch by its own angle drawn from N(0, sigma^2).

        Parameters
        ----------
        x : torch.Tensor
            Point-cloud batch, shape (B, N, 3) or (B, N, 6), floating point.
        generator : torch.Generator, optional
            Source of randomness, on ``x.device``; the same seed gives the same output.

        Returns
        -------
        torch.Tensor
            Same shape, dtype and device as ``x``.

        Raises
        ------
        TypeError
            If ``x`` is not a floating-point tensor or ``generator`` is not a generator.
        ValueError
            If ``x`` is not (B, N, 3|6) or ``generator`` is on another device.
        """
        x = _check_input(x)
        _check_point_cloud(x)
        generator = _check_generator(generator, x)
        dtype = _compute_dtype(x.dtype)
        angle = torch.randn(x.shape[0], generator=generator, device=x.device, dtype=dtype)
        return self.rotate(x, angle.mul_(self.sigma))

    def radius(self, tau: float) -> float:
        r"""Certified rotation angle :math:`\sigma\,\Phi^{-1}(\tau)`, in radians.

        Parameters
        ----------
        tau : float
            Threshold on the top-class probability, in [1/2, 1).

        Returns
        -------
        float
            The radius (0 at ``tau = 1/2``).

        Raises
        ------
        ValueError
            If ``tau`` lies outside [1/2, 1).
        """
        return _radius_via(self._formula, tau)

    def radii(self, p_lower):
        r"""Vectorised :meth:`radius`: :math:`\sigma\,\Phi^{-1}(p)` where ``p > 1/2``, else 0.

        The same float64 expression as :meth:`radius`, so ``radii(p) == radius(p)``
        exactly. See :meth:`samplers.Sampler.radii`.
        """
        return _radii_via(self._formula, p_lower)

    def _formula(self, p: torch.Tensor) -> torch.Tensor:
        return self.sigma * _normal_ppf(p)


@dataclass(frozen=True)
class Rotation3D(Sampler):
    r"""HEURISTIC: rotate each point cloud by three Euler angles, each :math:`\sim N(0, \sigma^2)`.

    The rotation is :math:`R(\theta) = R_z(\theta_3) R_y(\theta_2) R_x(\theta_1)`:
    first about the fixed x axis, then y, then z (extrinsic x-y-z), as in App. B.5 of
    [1]_. Its :meth:`radius` is **not** a proven bound on the rotation an adversary
    may apply to the input (``sound = False``); see Notes.

    Parameters
    ----------
    sigma : float
        Standard deviation of each of the three angles, in radians; finite and > 0.

    Raises
    ------
    TypeError
        If ``sigma`` is not a real number.
    ValueError
        If ``sigma`` is <= 0 or not finite.

    Notes
    -----
    **What the radius means.** Write :math:`\psi_\theta(x)` for the cloud rotated by
    :math:`R(\theta)` and :math:`\varepsilon \sim N(0, \sigma^2 I_3)`. Theorem 3.1 of
    [1]_ applied to :math:`\theta \mapsto f(\psi_\theta(x))` proves this about the
    *parameter-space* smoothed model anchored at the clean cloud ``x``,

    .. math:: g_x(\theta) = \arg\max_c P_\varepsilon(f(\psi_{\theta+\varepsilon}(x)) = c):

    if the top class has probability above ``tau`` at :math:`\theta = 0`, then
    :math:`g_x(\theta) = g_x(0)` for every :math:`\|\theta\|_2 \le R = \sigma\Phi^{-1}(\tau)`.
    That is the guarantee App. B.5 of [1]_ states, and it is true -- but it is about
    Euler-angle vectors added to the noise *before* the matrix is formed.

    A certifier only sees the possibly attacked cloud :math:`x' = A x` and estimates
    :math:`P_\varepsilon(f(\psi_\varepsilon(A x)) = c)`. This equals
    :math:`P_\varepsilon(f(\psi_{\varepsilon+\delta}(x)) = c)`, and so turns the
    statement above into one about the adversary, only if
    :math:`\psi_\varepsilon \circ A = \psi_{\varepsilon+\delta}` for all
    :math:`\varepsilon`, i.e. if the attack composes additively with the noise.
    With this convention that holds exactly for :math:`A = R_x(\delta_1)`, a
    rotation about the x axis (the first-applied factor), since
    :math:`R_z R_y R_x(\varepsilon_1) R_x(\delta_1) = R_z R_y R_x(\varepsilon_1+\delta_1)`;
    so :math:`|\delta_1| \le R` *is* certified -- the certificate of
    ``RotationZ(sigma, axis='x')``, bought with noise on two more angles. For any
    other rotation (about y or z alone, or a general 3D rotation) the factors do not
    commute, :math:`\psi_\varepsilon \circ A` is not :math:`\psi_{\varepsilon+\delta}`
    for any :math:`\delta` independent of :math:`\varepsilon`, and nothing is proven
    about the attacked cloud: the radius is a bound neither on the rotation angle of
    :math:`A` nor on the norm of its Euler angles. This remains so for a radius of
    :math:`\sqrt{3}\pi` (App. B.5), which covers every Euler-angle vector but still
    only speaks about :math:`g_x`. Report results of this sampler as heuristic.

    Cost: one ``torch.randn`` of shape (B, 3) plus a (B, N, 3k) matmul.

    References
    ----------
    .. [1] M. Fischer, M. Baader, M. Vechev, "Scalable Certified Segmentation via
       Randomized Smoothing", ICML 2021, §5.2 and App. B.5.
    .. [2] M. Fischer, M. Baader, M. Vechev, "Certified Defense to Image
       Transformations via Randomized Smoothing", NeurIPS 2020.

    Examples
    --------
    >>> import torch
    >>> from samplers import Rotation3D
    >>> sampler = Rotation3D(sigma=0.25)
    >>> sampler.sound
    False
    >>> round(sampler.radius(0.75), 4)  # l2 norm of the Euler-angle vector, radians
    0.1686
    >>> rot = sampler.matrix(torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64))
    >>> bool(torch.allclose(rot @ rot.T, torch.eye(3, dtype=torch.float64)))
    True
    >>> sampler.perturb(torch.randn(4, 512, 3)).shape
    torch.Size([4, 512, 3])
    """

    sigma: float

    sound: ClassVar[bool] = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", _check_positive(self.sigma, "sigma"))

    @property
    def threat_model(self) -> str:
        """Euler-angle parameter ball; flagged heuristic."""
        return (
            "heuristic: l2 ball of Euler angles (x, y, z; radians) in parameter space; "
            "sound only for rotations about the x axis"
        )

    def matrix(self, angles: torch.Tensor | Sequence[float]) -> torch.Tensor:
        """Rotation matrices ``Rz(angles[..., 2]) Ry(angles[..., 1]) Rx(angles[..., 0])``.

        ``angles`` has shape (..., 3); the result (..., 3, 3). A list of floats gives a
        float64 matrix; a tensor keeps its floating dtype.
        """
        a = _float_tensor(angles)
        if a.ndim < 1 or a.shape[-1] != 3:
            raise ValueError(f"`angles` must have shape (..., 3); got {tuple(a.shape)}.")
        return _euler_xyz_matrix(a)

    def rotate(
        self, x: torch.Tensor, angles: torch.Tensor | Sequence[float]
    ) -> torch.Tensor:
        """Apply the deterministic rotation :meth:`matrix` (``angles``) to ``x``.

        Parameters
        ----------
        x : torch.Tensor
            Point-cloud batch, shape (B, N, 3) or (B, N, 6), floating point.
        angles : torch.Tensor or sequence of 3 floats
            Euler angles (about x, y, z; radians), shape (3,) for the whole batch or
            (B, 3), one set per cloud.

        Returns
        -------
        torch.Tensor
            Same shape, dtype and device as ``x``; positions and normals rotated.

        Raises
        ------
        TypeError
            If ``x`` is not a floating-point tensor.
        ValueError
            If ``x`` is not (B, N, 3|6) or ``angles`` has the wrong shape.
        """
        x = _check_input(x)
        _check_point_cloud(x)
        dtype = _compute_dtype(x.dtype)
        a = _as_angles(angles, x, dtype, trailing=(3,), name="angles")
        return _apply_rotation(x.to(dtype), _euler_xyz_matrix(a)).to(x.dtype)

    def perturb(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Rotate every cloud by its own three Euler angles drawn from N(0, sigma^2).

        Parameters
        ----------
        x : torch.Tensor
            Point-cloud batch, shape (B, N, 3) or (B, N, 6), floating point.
        generator : torch.Generator, optional
            Source of randomness, on ``x.device``; the same seed gives the same output.

        Returns
        -------
        torch.Tensor
            Same shape, dtype and device as ``x``.

        Raises
        ------
        TypeError
            If ``x`` is not a floating-point tensor or ``generator`` is not a generator.
        ValueError
            If ``x`` is not (B, N, 3|6) or ``generator`` is on another device.
        """
        x = _check_input(x)
        _check_point_cloud(x)
        generator = _check_generator(generator, x)
        dtype = _compute_dtype(x.dtype)
        angles = torch.randn(x.shape[0], 3, generator=generator, device=x.device, dtype=dtype)
        return self.rotate(x, angles.mul_(self.sigma))

    def radius(self, tau: float) -> float:
        r"""Heuristic radius :math:`\sigma\,\Phi^{-1}(\tau)` in Euler-angle space (radians).

        Sound only against rotations about the x axis; see the class Notes.

        Parameters
        ----------
        tau : float
            Threshold on the top-class probability, in [1/2, 1).

        Returns
        -------
        float
            The radius (0 at ``tau = 1/2``).

        Raises
        ------
        ValueError
            If ``tau`` lies outside [1/2, 1).
        """
        return _radius_via(self._formula, tau)

    def radii(self, p_lower):
        r"""Vectorised :meth:`radius` (heuristic, as it): :math:`\sigma\,\Phi^{-1}(p)`
        where ``p > 1/2``, else 0; equal to :meth:`radius` bit for bit.

        See :meth:`samplers.Sampler.radii`.
        """
        return _radii_via(self._formula, p_lower)

    def _formula(self, p: torch.Tensor) -> torch.Tensor:
        return self.sigma * _normal_ppf(p)
