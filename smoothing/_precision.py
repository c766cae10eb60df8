"""Faster forward passes of the base model: autocast, ``torch.compile``, channels_last.

:class:`FastForward` wraps the model that SEGCERTIFY samples; only the model's own
forward pass changes. The noise is drawn and added in float32 by the sampler before
the wrapper sees the batch, the argmax is read from the logits cast back to float32,
and the counts and the statistics never see a reduced-precision number.

Soundness: randomized smoothing needs the base classifier to be a *fixed* function of
its input. A model run in bfloat16 or float16, or compiled, is a different function
from the float32 eager model (its labels can differ where two logits are close), but
it is still one fixed function: the certificate is a statement about the smoothed
version of *that* classifier. It says nothing about the float32 model.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["PRECISIONS", "CompileFallbackWarning", "FastForward", "check_precision",
           "fast_forward"]

#: Names of the precisions of the model's forward pass, and their autocast dtypes.
PRECISIONS: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}

_SUPPORTED: dict[tuple[str, int | None, torch.dtype], str | None] = {}


class CompileFallbackWarning(UserWarning):
    """``torch.compile`` failed; the model runs uncompiled (eager) instead."""


def check_precision(precision: object) -> str:
    """``precision`` if it names one of :data:`PRECISIONS`, else ValueError.

    Examples
    --------
    >>> check_precision("bfloat16")
    'bfloat16'
    >>> check_precision("half")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `precision` must be one of 'float32', 'bfloat16', 'float16'; got 'half'.
    """
    if precision not in PRECISIONS:
        choices = ", ".join(repr(p) for p in PRECISIONS)
        raise ValueError(f"`precision` must be one of {choices}; got {precision!r}.")
    return str(precision)


def check_compile(compile: object) -> bool | str:
    """``False``, ``True`` (torch's default backend, inductor) or a backend name."""
    if isinstance(compile, bool) or (isinstance(compile, str) and compile):
        return compile
    raise TypeError(f"`compile` must be a bool or a torch.compile backend name (e.g. "
                    f"'inductor'); got {compile!r}.")


def check_autocast(device: torch.device, precision: str) -> None:
    """Refuse a reduced ``precision`` that autocast cannot run on ``device``.

    A tiny convolution and matrix product run under :func:`torch.autocast` on the
    device (once per device and dtype); an error, or a result that is not in the
    reduced dtype, means the device does not support it.

    Raises
    ------
    ValueError
        Naming the device, the precision and torch's reason, and the precisions
        to use instead.
    """
    dtype = PRECISIONS[precision]
    if dtype == torch.float32:
        return
    key = (device.type, device.index, dtype)
    if key not in _SUPPORTED:
        _SUPPORTED[key] = _probe(device, dtype)
    reason = _SUPPORTED[key]
    if reason is not None:
        others = "'float32'" + (" or 'bfloat16'" if precision == "float16" else "")
        raise ValueError(f"`precision` {precision!r} is not supported on device {device} "
                         f"({reason}); use {others}.")


def _probe(device: torch.device, dtype: torch.dtype) -> str | None:
    """``None`` if autocast to ``dtype`` works on ``device``, else the reason."""
    try:
        if not torch.amp.is_autocast_available(device.type):
            return f"torch has no autocast for device type {device.type!r}"
        x = torch.ones(1, 2, 4, 4, device=device)
        w = torch.ones(2, 2, 3, 3, device=device)
        with torch.autocast(device.type, dtype=dtype):
            y = F.conv2d(x, w, padding=1)
            z = y.flatten(1) @ torch.ones(32, 2, device=device)
        if y.dtype != dtype or z.dtype != dtype:
            return f"autocast computed in {y.dtype}, not {dtype}"
        if not bool(torch.isfinite(z.float()).all()):
            return "autocast returned non-finite values on a small test"
    except (RuntimeError, TypeError, ValueError, AssertionError) as err:
        return f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
    return None


def model_device(model: object) -> torch.device | None:
    """The device of a module's first parameter or buffer (``None`` if it has none)."""
    if isinstance(model, nn.Module):
        for t in model.parameters():
            return t.device
        for t in model.buffers():
            return t.device
    return None


class FastForward(nn.Module):
    """``model`` run under autocast, compiled, and/or in channels_last memory format.

    Parameters
    ----------
    model : torch.nn.Module or callable
        The base model (its ``layout`` attribute, if any, is passed on).
    precision : {'float32', 'bfloat16', 'float16'}, default 'float32'
        dtype of :func:`torch.autocast` around the model's forward pass
        (``'float32'``: no autocast). The output is cast back to float32.
    compile : bool or str, default False
        ``True``: :func:`torch.compile` the model (default backend); a string: that
        backend. If compilation (or the compiled model) fails, the model runs eagerly
        from then on, with one :class:`CompileFallbackWarning` naming the cause; if
        the eager model fails too, its own error is raised.
    channels_last : bool or None, default None
        Convert 4-d inputs (and, once, the module's weights, in place; their values
        do not change) to the channels_last memory format. ``None``: only on CUDA
        with a reduced precision or compilation, where it speeds up convolutions.

    Notes
    -----
    The wrapper is a module: ``eval()``, ``parameters()`` and the device of the
    model pass through it, so SEGCERTIFY treats it like the model.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Conv2d(3, 2, 1)
    >>> fast = FastForward(net, precision="bfloat16")
    >>> out = fast(torch.rand(2, 3, 4, 4))
    >>> out.dtype, out.shape
    (torch.float32, torch.Size([2, 2, 4, 4]))
    """

    def __init__(self, model: nn.Module | Callable[[torch.Tensor], Any], *,
                 precision: str = "float32", compile: bool | str = False,
                 channels_last: bool | None = None) -> None:
        super().__init__()
        if not callable(model):
            raise TypeError(f"`model` must be a torch module or callable; got "
                            f"{type(model).__name__}.")
        self.model = model
        self.precision = check_precision(precision)
        self.dtype = PRECISIONS[self.precision]
        self.compile = check_compile(compile)
        if channels_last is not None and not isinstance(channels_last, bool):
            raise TypeError(f"`channels_last` must be a bool or None; got {channels_last!r}.")
        self.channels_last = channels_last
        self.layout = getattr(model, "layout", None)
        self.fallback_reason: str | None = None
        # kept out of the module tree: the compiled wrapper shares the model's weights
        self.__dict__["_compiled"] = None
        if self.compile:
            backend = "inductor" if self.compile is True else self.compile
            try:
                self.__dict__["_compiled"] = torch.compile(model, backend=backend)
            except Exception as err:  # e.g. an unknown backend, an unsupported platform
                self._fall_back(err)
        self._weights_converted = False
        device = model_device(model)
        if device is not None:
            check_autocast(device, self.precision)

    @property
    def compiled(self) -> bool:
        """Whether the compiled model is (still) in use."""
        return self.__dict__["_compiled"] is not None

    def extra_repr(self) -> str:
        return f"precision={self.precision!r}, compile={self.compile!r}"

    def _use_channels_last(self, x: torch.Tensor) -> bool:
        if x.ndim != 4:
            return False
        if self.channels_last is not None:
            return self.channels_last
        return x.device.type == "cuda" and (self.dtype != torch.float32 or bool(self.compile))

    def _fall_back(self, err: BaseException) -> None:
        self.__dict__["_compiled"] = None
        self.fallback_reason = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
        warnings.warn(f"torch.compile failed ({self.fallback_reason}); the model runs "
                      "without compilation.", CompileFallbackWarning, stacklevel=3)

    def _call(self, x: torch.Tensor) -> Any:
        compiled = self.__dict__["_compiled"]
        if compiled is None:
            return self.model(x)
        try:
            return compiled(x)
        except Exception as err:  # compile errors surface at the first call
            out = self.model(x)  # the model's own error, if it has one, is raised here
            self._fall_back(err)
            return out

    def forward(self, x: torch.Tensor) -> Any:
        """The model's output on ``x``, floating tensors cast to float32."""
        if self._use_channels_last(x):
            if not self._weights_converted and isinstance(self.model, nn.Module):
                self.model.to(memory_format=torch.channels_last)
                self._weights_converted = True
            x = x.contiguous(memory_format=torch.channels_last)
        if self.dtype == torch.float32:
            out = self._call(x)
        else:
            check_autocast(x.device, self.precision)
            with torch.autocast(x.device.type, dtype=self.dtype):
                out = self._call(x)
        if isinstance(out, torch.Tensor) and out.is_floating_point():
            out = out.float()
        return out


def fast_forward(model: Any, *, precision: str = "float32", compile: bool | str = False,
                 channels_last: bool | None = None) -> Any:
    """``model`` itself when nothing is asked for, else :class:`FastForward` around it.

    A ``model`` that already is a :class:`FastForward` with these options is returned
    as it is (not wrapped twice): certifiers built on one wrapper share its compiled
    model.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Conv2d(3, 2, 1)
    >>> fast_forward(net) is net, type(fast_forward(net, precision="bfloat16")).__name__
    (True, 'FastForward')
    >>> fast = fast_forward(net, precision="bfloat16")
    >>> fast_forward(fast, precision="bfloat16") is fast
    True
    """
    precision = check_precision(precision)
    compile = check_compile(compile)
    if isinstance(model, FastForward) and (model.precision, model.compile,
                                           model.channels_last) == (precision, compile,
                                                                    channels_last):
        return model
    if precision == "float32" and not compile and not channels_last:
        return model
    return FastForward(model, precision=precision, compile=compile,
                       channels_last=channels_last)
