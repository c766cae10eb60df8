"""Shared SAMPLE step: perturb, run the base model in batches, count on the device.

Every certifier in :mod:`smoothing` (SEGCERTIFY, Cohen et al.'s CERTIFY/PREDICT and
the JointClass/IndivClass baselines) draws its Monte-Carlo samples through this
module, so the properties the guarantees rest on are implemented once:

* every sample gets **fresh** noise (``sampler.perturb`` on a batch of copies);
* the model runs in eval mode under :func:`torch.inference_mode`, on its own device;
* counts are accumulated on that device in the smallest sufficient integer dtype,
  and no sample is kept: peak extra memory does not grow with the number of samples;
* the model's output is validated (layout, number of classes, finite values).

Nothing here is public API; :mod:`smoothing.segcertify` and friends wrap it.
"""

from __future__ import annotations

import itertools
import math
import numbers
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from multitest._validation import check_alpha  # noqa: F401 (re-exported)
from samplers import Sampler
from samplers._base import _check_tau as check_tau  # noqa: F401 (re-exported)

__all__ = ["ABSTAIN", "LAYOUTS"]

#: Label of a component the certified model abstains on. Never a class index.
ABSTAIN: int = -1


@dataclass(frozen=True)
class _Layout:
    """Where the class and component dimensions of a batched model output are."""

    name: str
    ndim: int  # of the batched output
    class_dim: int  # in the batched output
    input_ndim: int | None  # of ONE input (no batch dim); None: any


#: Output layouts a model may declare (``model.layout``) or SegCertify may be told.
LAYOUTS: dict[str, _Layout] = {
    "BCHW": _Layout("BCHW", 4, 1, 3),  # images (C, H, W) -> logits (B, C, H, W)
    "BHWC": _Layout("BHWC", 4, 3, 3),  # images, channels-last logits (B, H, W, C)
    "BNC": _Layout("BNC", 3, 2, 2),  # point clouds (N, d) -> logits (B, N, C)
    "BCN": _Layout("BCN", 3, 1, 2),  # point clouds (N, d) -> logits (B, C, N)
    "BC": _Layout("BC", 2, 1, None),  # classifiers: any input -> logits (B, C)
}


# ---------------------------------------------------------------------------
# argument validation (shared by the public classes)
# ---------------------------------------------------------------------------
def check_int(value: object, name: str, *, low: int = 1) -> int:
    """Return ``value`` as an ``int >= low`` or raise (TypeError / ValueError)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer >= {low}; got {value!r}.")
    if value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}; got {value!r}.")
    return int(value)


def check_real(value: object, name: str, low: float, high: float, *, closed_low: bool,
               text: str) -> float:
    """Return ``value`` as a float in the interval described by ``text`` or raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number; got {type(value).__name__}.")
    v = float(value)
    ok = (v >= low if closed_low else v > low) and v < high  # NaN fails both
    if not ok:
        raise ValueError(f"`{name}` must lie in {text}; got {value!r}.")
    return v


def check_sampler(sampler: object) -> Sampler:
    if not isinstance(sampler, Sampler):
        raise TypeError(
            f"`sampler` must be a samplers.Sampler (e.g. samplers.GaussianL2(0.25)); "
            f"got {type(sampler).__name__}."
        )
    return sampler


def check_model(model: object) -> Callable[[torch.Tensor], torch.Tensor]:
    if not callable(model):
        raise TypeError(f"`model` must be a torch module or callable; got {type(model).__name__}.")
    return model


def check_layout(layout: object, *, allowed: tuple[str, ...] | None = None) -> str:
    """``'auto'`` or one of :data:`LAYOUTS` (restricted to ``allowed``)."""
    names = tuple(LAYOUTS) if allowed is None else allowed
    if layout != "auto" and layout not in names:
        choices = ", ".join(repr(n) for n in ("auto", *names))
        raise ValueError(f"`layout` must be one of {choices}; got {layout!r}.")
    return str(layout)


def check_input(x: object, name: str = "x") -> torch.Tensor:
    """``x`` must be a finite floating-point tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor; got {type(x).__name__}.")
    if not torch.is_floating_point(x):
        raise TypeError(f"`{name}` must be a floating-point tensor; got dtype {x.dtype}.")
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return x


# ---------------------------------------------------------------------------
# devices, generators, dtypes
# ---------------------------------------------------------------------------
def model_device(model: object, x: torch.Tensor) -> torch.device:
    """The device of the model's first parameter or buffer, else the input's."""
    if isinstance(model, nn.Module):
        for t in itertools.chain(model.parameters(), model.buffers()):
            return t.device
    return x.device


def set_eval(model: object) -> None:
    """Put a module (and so its dropout / batch-norm layers) in eval mode."""
    if isinstance(model, nn.Module):
        model.eval()


def split_generator(generator: torch.Generator | None, device: torch.device,
                    k: int) -> list[torch.Generator | None]:
    """``k`` independent generators on ``device``, seeded from ``generator``.

    Each phase of an algorithm (the ``n0`` and the ``n`` samples, say) gets its own
    stream, so the phases are independent draws, and the noise is drawn on the
    model's device whatever device the user's generator lives on. The same seed
    gives the same streams; the user's generator advances, so two calls with one
    generator draw different noise. ``None`` (the global RNG) stays ``None``.
    """
    if generator is None:
        return [None] * k
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"`generator` must be a torch.Generator or None; got {type(generator).__name__}."
        )
    seeds = torch.randint(0, 2**63 - 1, (k,), generator=generator, device=generator.device)
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds.tolist()]


def count_dtype(max_count: int) -> torch.dtype:
    """Smallest integer dtype that holds counts up to ``max_count``."""
    if max_count <= 2**8 - 1:
        return torch.uint8
    if max_count <= 2**15 - 1:
        return torch.int16
    if max_count <= 2**31 - 1:
        return torch.int32
    return torch.int64


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels on ``device`` (so wall-clock timings are honest)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """Accumulates wall-clock seconds, synchronising ``device`` at both ends."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds = 0.0
        self._start = 0.0

    def __enter__(self) -> Stopwatch:
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        self.seconds += time.perf_counter() - self._start


# ---------------------------------------------------------------------------
# reading the model's output
# ---------------------------------------------------------------------------
def resolve_layout(layout: str, model: object, x: torch.Tensor | None = None) -> str:
    """``'auto'`` -> the model's declared ``layout`` attribute, if it has one, else
    ``'BCHW'`` for ONE image ``x`` (C, H, W). Point clouds stay ``'auto'`` until the
    first output shows where the classes are (:func:`infer_layout`).
    """
    if layout == "auto":
        declared = getattr(model, "layout", None)
        if declared is not None:
            return check_layout(declared)
        if x is not None and x.ndim == 3:
            return "BCHW"
    return layout


def infer_layout(out_shape: tuple[int, ...], component_shape: tuple[int, ...],
                 num_classes: int | None) -> str:
    """Guess the layout of an undeclared model from one batched output shape.

    4-d outputs of image models are ``'BCHW'``; 3-d outputs are ``'BNC'`` or
    ``'BCN'`` according to where the ``N`` components are. Raises if ambiguous.
    """
    if len(out_shape) == 4:
        return "BCHW"
    if len(out_shape) == 3 and len(component_shape) == 1:
        (n,) = component_shape
        a, b = out_shape[1], out_shape[2]
        bnc = a == n and (num_classes is None or b == num_classes)
        bcn = b == n and (num_classes is None or a == num_classes)
        if bnc and bcn:
            raise ValueError(
                f"cannot tell whether the model output of shape {tuple(out_shape)} is "
                "(B, N, C) or (B, C, N); pass `layout='BNC'` or `layout='BCN'`, or wrap "
                "the model in smoothing.adapters.PointCloudSegmenter."
            )
        if bnc:
            return "BNC"
        if bcn:
            return "BCN"
    if len(out_shape) == 2 and not component_shape:
        return "BC"
    raise ValueError(
        f"cannot infer the layout of a model output of shape {tuple(out_shape)} for "
        f"components of shape {component_shape}; pass `layout=` (one of "
        f"{', '.join(LAYOUTS)}) or wrap the model in a smoothing.adapters class."
    )


def component_shape(x: torch.Tensor, layout: str) -> tuple[int, ...]:
    """Shape of the labels of ONE input ``x`` under ``layout`` (validated)."""
    if layout == "auto":  # images (C, H, W) or point clouds (N, d)
        if x.ndim == 3:
            return tuple(x.shape[1:])
        if x.ndim == 2:
            return (x.shape[0],)
        raise ValueError(
            f"`x` must be ONE input without a batch dimension: an image (C, H, W) or a "
            f"point cloud (N, d); got shape {tuple(x.shape)}. For other inputs pass `layout=`."
        )
    spec = LAYOUTS[layout]
    if spec.input_ndim is not None and x.ndim != spec.input_ndim:
        what = "an image (C, H, W)" if spec.input_ndim == 3 else "a point cloud (N, d)"
        raise ValueError(
            f"`x` must be ONE input without a batch dimension for layout {layout!r}, "
            f"i.e. {what}; got shape {tuple(x.shape)}."
        )
    if layout in ("BCHW", "BHWC"):
        return tuple(x.shape[1:])
    if layout in ("BNC", "BCN"):
        return (x.shape[0],)
    return ()


def check_output(out: object) -> torch.Tensor:
    """``out`` if it is a tensor; a dict or tuple output (torchvision's ``{"out": ...}``,
    Hugging Face's ``(logits, ...)``) is refused with the adapter that selects one entry.

    Examples
    --------
    >>> check_output({"out": torch.zeros(1), "aux": torch.zeros(1)})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: the model returns a dict with keys ['out', 'aux'], not a tensor of logits: ...
    """
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping):
        keys = list(out)
        key = next((k for k in ("out", "logits") if k in out), keys[0] if keys else "...")
        raise TypeError(
            f"the model returns a {type(out).__name__} with keys {keys[:8]!r}, not a tensor "
            "of logits: pass an output key (wrap the model as "
            f"smoothing.adapters.OutputSelector(model, key={key!r}), or `--output-key "
            f"{key}` on the command line)."
        )
    if isinstance(out, tuple | list):
        raise TypeError(
            f"the model returns a {type(out).__name__} of {len(out)} items, not a tensor of "
            "logits: pass an output key (wrap the model as "
            "smoothing.adapters.OutputSelector(model, key=0) for the first item, or "
            "`--output-key 0` on the command line)."
        )
    raise TypeError(f"the model must return a tensor of logits; got {type(out).__name__}.")


class OutputReader:
    """Turns batched model outputs into per-component class predictions.

    ``read(out, batch)`` validates one output (a floating tensor of the declared
    layout, ``num_classes`` classes, the components of the input) and returns the
    argmax over classes, shape (batch, N) int64 -- ties go to the lowest class
    index. Non-finite maxima (NaN or +-inf top logits) are recorded on the device
    without a host sync and reported by :meth:`check_finite` (``-inf`` logits of
    *other* classes are allowed: they mark impossible classes).
    """

    def __init__(self, layout: str, num_classes: int, components: tuple[int, ...],
                 device: torch.device) -> None:
        self.layout = layout
        self.num_classes = num_classes
        self.components = components
        self.num_components = math.prod(components)
        self._finite = torch.ones((), dtype=torch.bool, device=device)

    def read(self, out: object, batch: int) -> torch.Tensor:
        out = check_output(out)
        if not torch.is_floating_point(out):
            raise TypeError(
                f"the model must return floating-point logits; got dtype {out.dtype}."
            )
        if self.layout == "auto":
            self.layout = infer_layout(tuple(out.shape), self.components, self.num_classes)
        spec = LAYOUTS[self.layout]
        if out.ndim != spec.ndim or out.shape[0] != batch:
            raise ValueError(
                f"the model output has shape {tuple(out.shape)}; layout {self.layout!r} "
                f"expects {spec.ndim} dimensions with the batch of {batch} first."
            )
        if out.shape[spec.class_dim] != self.num_classes:
            raise ValueError(
                f"the model output has {out.shape[spec.class_dim]} classes in dimension "
                f"{spec.class_dim} (layout {self.layout!r}, shape {tuple(out.shape)}); "
                f"expected `num_classes` = {self.num_classes}."
            )
        rest = tuple(s for d, s in enumerate(out.shape) if d not in (0, spec.class_dim))
        if rest != self.components:
            raise ValueError(
                f"the model output has components of shape {rest} (output shape "
                f"{tuple(out.shape)}, layout {self.layout!r}); the input has {self.components}."
            )
        values, pred = out.max(dim=spec.class_dim)  # first maximum: lowest class index
        self._finite &= torch.isfinite(values).all()
        return pred.reshape(batch, self.num_components)

    def check_finite(self) -> None:
        if not bool(self._finite):
            raise ValueError(
                "the model output contains non-finite values (NaN, +inf, or a component "
                "whose logits are all -inf)."
            )


# ---------------------------------------------------------------------------
# the sampling loop and the two counters
# ---------------------------------------------------------------------------
def iter_predictions(model: Callable[[torch.Tensor], torch.Tensor], sampler: Sampler,
                     x: torch.Tensor, reader: OutputReader, *, num: int, batch_size: int,
                     generator: torch.Generator | None, progress: bool = False,
                     desc: str = "sampling") -> Iterator[torch.Tensor]:
    """Yield (b, N) predictions for ``num`` fresh perturbations of ``x``, in batches.

    The last batch holds the remainder. Each batch is ``b`` copies of ``x`` (a
    broadcast view, no copy) that ``sampler.perturb`` turns into ``b`` independent
    samples. Call inside :func:`torch.inference_mode`.
    """
    batches = range(0, num, batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=desc, total=len(batches), leave=False)
    for start in batches:
        b = min(batch_size, num - start)
        copies = x.unsqueeze(0).expand(b, *x.shape)
        who, batch = "sampler", copies
        try:
            batch = sampler.perturb(copies, generator=generator)
            who = "model"
            out = model(batch)
        except torch.cuda.OutOfMemoryError:
            raise
        except (RuntimeError, ValueError, IndexError) as err:
            message = shape_slip(x, reader.layout, tuple(batch.shape), err, who)
            if message is None:  # no likely slip of the caller's: the error as it is
                raise
            raise ValueError(message) from err
        yield reader.read(out, b)


def shape_slip(x: torch.Tensor, layout: str, batch_shape: tuple[int, ...],
               err: BaseException, who: str = "model") -> str | None:
    """Explain a model (or sampler) failing on ``x`` because of a likely slip of the
    caller's, or ``None``: an image without its channel dimension (H, W), W not 3 or
    6, is read as a point cloud; a point cloud with a batch dimension (1, N, 3 or 6)
    as an image. Other failures keep their own type and message."""
    if layout in ("BNC", "BCN", "auto") and x.ndim == 2 and x.shape[1] not in (3, 6):
        what = "a point cloud (N, d)"
        hint = "if `x` is an image without a channel dimension, pass x.unsqueeze(0) (1, H, W)"
    elif (layout in ("BCHW", "BHWC") and x.ndim == 3 and x.shape[0] == 1
          and x.shape[2] in (3, 6) and x.shape[1] > 6):  # (1, N, 3 or 6), not (1, H, W)
        what = "an image (C, H, W)"
        hint = ("if `x` is a point cloud with a batch dimension, pass x[0] (shape (N, d)): "
                "SegCertify takes ONE input")
    else:
        return None
    return (f"the {who} cannot process `x` of shape {tuple(x.shape)}, read as {what} (the "
            f"{who} got a batch of shape {batch_shape}); {hint}. The {who} said: "
            f"{' '.join(str(err).split())}")


def count_classes(model, sampler, x, reader, *, num, batch_size, generator,
                  progress=False) -> torch.Tensor:
    """Per-component class counts over ``num`` samples: (N, C), on the device.

    Counts are scattered into a flat (N * C) tensor of :func:`count_dtype` (``num``)
    -- no Python loop over components, no one-hot tensor.
    """
    n_comp, c = reader.num_components, reader.num_classes
    dtype = count_dtype(num)
    counts = torch.zeros(n_comp * c, dtype=dtype, device=x.device)
    offsets = torch.arange(n_comp, device=x.device) * c
    one = torch.ones((), dtype=dtype, device=x.device)
    for pred in iter_predictions(model, sampler, x, reader, num=num, batch_size=batch_size,
                                 generator=generator, progress=progress, desc="n0 samples"):
        index = (pred + offsets).reshape(-1)
        counts.scatter_add_(0, index, one.expand(index.numel()))
    return counts.view(n_comp, c)


def count_matches(model, sampler, x, reader, guesses: torch.Tensor, *, num, batch_size,
                  generator, progress=False,
                  match: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """How often each component predicts its guessed class in ``num`` samples: (N,).

    ``match`` (hierarchical certification) replaces the test ``pred == guesses``:
    it maps a (b, N) batch of predicted classes to a boolean (b, *guesses.shape)
    mask of hits, e.g. whether each prediction lies in each of the (N, D) guessed
    nodes; the counts then have the shape of ``guesses``.
    """
    dtype = count_dtype(num)
    counts = torch.zeros(guesses.shape, dtype=dtype, device=x.device)
    for pred in iter_predictions(model, sampler, x, reader, num=num, batch_size=batch_size,
                                 generator=generator, progress=progress, desc="n samples"):
        hits = pred == guesses if match is None else match(pred)
        counts += hits.sum(dim=0, dtype=dtype)
    return counts


def top_class(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The guess of Algorithm 2: each row's most frequent class (ties: the lowest
    index) and its count, from an (N, C) table of counts."""
    guesses = table.argmax(dim=1)
    return guesses, table.gather(1, guesses.unsqueeze(1)).squeeze(1)


@dataclass(frozen=True)
class GuessAndCount:
    """Outcome of the two sampling phases shared by SEGCERTIFY and IndivClass."""

    guesses: torch.Tensor  # (N,) int64, top class of the n0 counts (hierarchical: (N, D))
    counts0: torch.Tensor  # n0-phase count of the guess, shape of guesses
    counts: torch.Tensor  # n-phase count of the guess, shape of guesses
    layout: str  # the resolved layout
    seconds: float  # wall clock of both phases (device synchronised)
    components: tuple[int, ...]  # the shape of ONE input's labels


@dataclass
class Prepared:
    """ONE input ready for sampling: what :func:`prepare` returns."""

    x: torch.Tensor  # validated, on the model's device
    device: torch.device
    components: tuple[int, ...]  # the shape of the input's labels
    reader: OutputReader  # validates the model's outputs
    generators: list[torch.Generator | None]  # independent streams, one per phase


def prepare(model, x, *, layout: str, num_classes: int, generator: torch.Generator | None,
            streams: int) -> Prepared:
    """The set-up every sampling routine shares: validate ``x``, resolve the layout,
    move ``x`` to the model's device, put the model in eval mode, and split
    ``generator`` into ``streams`` independent streams (one per sampling phase)."""
    x = check_input(x)
    if x.numel() == 0:
        raise ValueError(f"`x` is empty (shape {tuple(x.shape)}): an input needs at least "
                         "one component and one value per component.")
    layout = resolve_layout(layout, model, x)
    components = component_shape(x, layout)
    device = model_device(model, x)
    set_eval(model)
    return Prepared(x.to(device), device, components,
                    OutputReader(layout, num_classes, components, device),
                    split_generator(generator, device, streams))


def guess_and_count(model, sampler, x, *, num_classes: int, n0: int, n: int, batch_size: int,
                    layout: str, generator: torch.Generator | None,
                    progress: bool = False,
                    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
                    guess: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
                    | None = None,
                    match: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                    ) -> GuessAndCount:
    """SAMPLE twice: guess each component's top class from ``n0`` samples, then
    count that class in ``n`` independent samples. Counts stay on the model's device.

    ``reduce`` (used by :mod:`smoothing.distributed`) maps this process's counts to
    the counts summed over all processes; it is applied to the (N, C) ``n0`` table
    before the guess and to the (N,) ``n`` counts, and ``n0`` and ``n`` are then
    this process's shares of the samples.

    ``guess`` and ``match`` (used by :mod:`smoothing.hierarchical`) replace the
    guess: ``guess(table)`` maps the (N, C) ``n0`` table to ``(guesses, counts0)``
    (default :func:`top_class`: the argmax and its count), and ``match(pred,
    guesses)`` gives the hits of a batch of predictions (see :func:`count_matches`).
    """
    ready = prepare(model, x, layout=layout, num_classes=num_classes, generator=generator,
                    streams=2)
    x, reader, (gen0, gen1) = ready.x, ready.reader, ready.generators
    watch = Stopwatch(ready.device)
    with watch, torch.inference_mode():
        counts0_all = count_classes(model, sampler, x, reader, num=n0, batch_size=batch_size,
                                    generator=gen0, progress=progress)
        reader.check_finite()
        if reduce is not None:  # sum the n0 tables of all processes: one guess everywhere
            counts0_all = reduce(counts0_all)
        guesses, counts0 = (guess or top_class)(counts0_all)
        del counts0_all
        counts = count_matches(model, sampler, x, reader, guesses, num=n,
                               batch_size=batch_size, generator=gen1, progress=progress,
                               match=None if match is None else partial(match,
                                                                        guesses=guesses))
        reader.check_finite()
        if reduce is not None:
            counts = reduce(counts)
    # clones made outside inference mode are ordinary tensors the caller may modify
    return GuessAndCount(guesses.clone(), counts0.clone(), counts.clone(), reader.layout,
                         watch.seconds, ready.components)
