"""MediaPipe selfie segmentation (a real pretrained network) as a SEGCERTIFY base model.

The network is a TFLite file run by the LiteRT interpreter (``ai-edge-litert``),
not a torch module: :class:`SelfieSegmenter` is a plain callable, torch in (the
perturbed batch our samplers produce), numpy through the interpreter, torch class
scores out. It is the proof that :class:`smoothing.SegCertify` accepts any batched
callable.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from smoothing.real._common import check_image_batch
from smoothing.real.assets import FETCH_COMMAND, AssetMissingError, asset_path

__all__ = ["SelfieSegmenter", "litert_interpreter", "load_astronaut"]

#: ``factory(model_path, num_threads) -> interpreter`` (the TFLite Interpreter API).
InterpreterFactory = Callable[[str, int], Any]


def litert_interpreter(model_path: str, num_threads: int) -> Any:
    """A LiteRT (``ai_edge_litert``) interpreter for ``model_path``.

    The default ``interpreter_factory`` of :class:`SelfieSegmenter`.

    Parameters
    ----------
    model_path : str
        A ``.tflite`` file.
    num_threads : int
        CPU threads (XNNPACK delegate).

    Returns
    -------
    ai_edge_litert.interpreter.Interpreter
        Not yet allocated.

    Raises
    ------
    ImportError
        If ``ai-edge-litert`` is not installed (``pip install 'segcertify[real]'``).
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the selfie segmentation model runs on the LiteRT interpreter; install it with "
            "`pip install 'segcertify[real]'` (or `pip install ai-edge-litert`)."
        ) from err
    return Interpreter(model_path=model_path, num_threads=num_threads)


class SelfieSegmenter:
    """MediaPipe's selfie segmentation network as a 2-class image segmenter.

    Call it on a batch of RGB images (B, 3, H, W) in [0, 1] -- in SEGCERTIFY, the
    noisy copies drawn by the sampler -- and it returns class scores (B, 2, H, W)
    ``[1 - p, p]`` with ``p`` = P(person) per pixel, so the argmax is the class
    (0 = background, 1 = person; ties go to background).

    Parameters
    ----------
    model_path : path, optional
        The ``.tflite`` file. Default: the cached asset
        (:func:`smoothing.real.assets.asset_path`, ``'selfie_segmentation'``).
    interpreter_factory : callable, optional
        ``factory(model_path, num_threads)`` returning an object with the TFLite
        Interpreter API (``get_input_details``, ``get_output_details``,
        ``resize_tensor_input``, ``allocate_tensors``, ``set_tensor``, ``invoke``,
        ``get_tensor``). Default: :func:`litert_interpreter`. Tests inject a fake.
    num_threads : int, default 2
        CPU threads of the interpreter.
    max_batch : int, default 32
        Largest batch handed to the interpreter at once; bigger inputs run in chunks.

    Attributes
    ----------
    layout : str
        ``'BCHW'`` (read by SegCertify).
    num_classes : int
        2.
    input_size : tuple of int
        The network's (height, width), read from the interpreter: (256, 256).

    Raises
    ------
    smoothing.real.AssetMissingError
        If ``model_path`` is not given and the asset is not in the cache (or fails
        its checksum), or -- with the default interpreter -- ``model_path`` is not
        a file; the message names ``python -m smoothing.real fetch``.
    TypeError
        If ``interpreter_factory`` is not callable.
    ValueError
        If ``num_threads`` or ``max_batch`` < 1, or the interpreter's input is not
        (B, H, W, 3) float32 or its output not (B, H, W, 1).

    Notes
    -----
    **Pre-processing** (part of the base model ``f``, so the certificate covers it):
    the noisy input is clipped to [0, 1] -- the range the network was trained on --
    then resized bilinearly (with antialiasing) to the network's 256 x 256 if it has
    another size, and made channels-last float32. The probabilities are resized back
    to (H, W). SEGCERTIFY's guarantee holds for any deterministic ``f``; clipping
    and resizing are just part of it.

    **Cost.** About 2 ms per 256 x 256 image on two CPU threads (LiteRT, XNNPACK);
    one ``resize_tensor_input`` + ``allocate_tensors`` whenever the chunk size
    changes (twice per SEGCERTIFY phase at most).

    Examples
    --------
    With a fake interpreter that predicts "person" where the red channel is bright:

    >>> import numpy as np, torch
    >>> class Fake:
    ...     def __init__(self, path, threads): self.shape = [1, 8, 8, 3]
    ...     def get_input_details(self):
    ...         return [{"index": 0, "shape": np.array(self.shape), "dtype": np.float32}]
    ...     def get_output_details(self):
    ...         return [{"index": 1, "shape": np.array(self.shape[:3] + [1])}]
    ...     def resize_tensor_input(self, i, shape): self.shape = list(shape)
    ...     def allocate_tensors(self): pass
    ...     def set_tensor(self, i, x): self.x = x
    ...     def invoke(self): self.y = (self.x[..., :1] > 0.5).astype(np.float32)
    ...     def get_tensor(self, i): return self.y
    >>> seg = SelfieSegmenter("fake.tflite", interpreter_factory=Fake)
    >>> x = torch.zeros(2, 3, 8, 8); x[:, 0, :, 4:] = 1.0
    >>> scores = seg(x)
    >>> scores.shape, seg.layout, scores.argmax(1)[0, 0].tolist()
    (torch.Size([2, 2, 8, 8]), 'BCHW', [0, 0, 0, 0, 1, 1, 1, 1])
    """

    layout: ClassVar[str] = "BCHW"
    num_classes: ClassVar[int] = 2

    def __init__(self, model_path: str | os.PathLike | None = None, *,
                 interpreter_factory: InterpreterFactory | None = None,
                 num_threads: int = 2, max_batch: int = 32) -> None:
        for name, value in (("num_threads", num_threads), ("max_batch", max_batch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1; got {value!r}.")
        if interpreter_factory is not None and not callable(interpreter_factory):
            raise TypeError("`interpreter_factory` must be callable; got "
                            f"{type(interpreter_factory).__name__}.")
        path = asset_path("selfie_segmentation") if model_path is None else model_path
        if interpreter_factory is None and not Path(path).is_file():
            raise AssetMissingError(
                f"`model_path` {str(path)!r} is not a file. The selfie segmentation model "
                f"comes from the package registry: run `{FETCH_COMMAND}` and leave "
                "`model_path` unset (or point it at the fetched .tflite)."
            )
        self.model_path = str(path)
        self.max_batch = max_batch
        factory = litert_interpreter if interpreter_factory is None else interpreter_factory
        self._interpreter = factory(self.model_path, num_threads)
        self._input, self._output = self._check_io()
        self.input_size: tuple[int, int] = tuple(int(s) for s in self._input["shape"][1:3])
        self._allocated = int(self._input["shape"][0])
        self._interpreter.allocate_tensors()

    def __repr__(self) -> str:
        return (f"SelfieSegmenter(model_path={self.model_path!r}, "
                f"input_size={self.input_size}, max_batch={self.max_batch})")

    def _check_io(self) -> tuple[dict, dict]:
        inp = self._interpreter.get_input_details()[0]
        out = self._interpreter.get_output_details()[0]
        in_shape = tuple(int(s) for s in inp["shape"])
        out_shape = tuple(int(s) for s in out["shape"])
        if (len(in_shape) != 4 or in_shape[3] != 3 or np.dtype(inp["dtype"]) != np.float32
                or out_shape != in_shape[:3] + (1,)):
            raise ValueError(
                f"expected a network with float32 input (B, H, W, 3) and output (B, H, W, 1); "
                f"got input {in_shape} ({np.dtype(inp['dtype'])}) and output {out_shape}."
            )
        return inp, out

    def _run_chunk(self, chunk: np.ndarray) -> np.ndarray:
        """P(person) (b, H, W) of one channels-last chunk of at most ``max_batch``."""
        interp = self._interpreter
        if chunk.shape[0] != self._allocated:
            interp.resize_tensor_input(self._input["index"], list(chunk.shape))
            interp.allocate_tensors()
            self._allocated = chunk.shape[0]
        interp.set_tensor(self._input["index"], chunk)
        interp.invoke()
        out = np.asarray(interp.get_tensor(self._output["index"]))
        if out.shape != chunk.shape[:3] + (1,):
            raise ValueError(f"the interpreter returned shape {out.shape} for an input of "
                             f"shape {chunk.shape}; expected {chunk.shape[:3] + (1,)}.")
        return out[..., 0].astype(np.float32, copy=False)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """P(person) per pixel.

        Parameters
        ----------
        x : torch.Tensor
            RGB images (B, 3, H, W), nominally in [0, 1]; any device and float dtype.

        Returns
        -------
        torch.Tensor
            float32 (B, H, W) on ``x.device``.

        Raises
        ------
        TypeError
            If ``x`` is not a floating-point tensor.
        ValueError
            If ``x`` is not (B, 3, H, W).
        """
        check_image_batch(x, 3, "RGB images")
        size = tuple(x.shape[-2:])
        net_in = x.detach().float().clamp(0.0, 1.0)
        if size != self.input_size:
            net_in = F.interpolate(net_in, size=self.input_size, mode="bilinear",
                                   align_corners=False, antialias=True)
        nhwc = np.ascontiguousarray(net_in.permute(0, 2, 3, 1).cpu().numpy(), dtype=np.float32)
        probs = np.concatenate([self._run_chunk(nhwc[i:i + self.max_batch])
                                for i in range(0, nhwc.shape[0], self.max_batch)])
        p = torch.from_numpy(probs).to(x.device)
        if size != self.input_size:
            p = F.interpolate(p.unsqueeze(1), size=size, mode="bilinear",
                              align_corners=False).squeeze(1)
        return p

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (B, 2, H, W) = ``[1 - p, p]`` in ``x``'s dtype and device."""
        p = self.probabilities(x).to(x.dtype)
        return torch.stack([1.0 - p, p], dim=1)


def load_astronaut(size: int | None = 256) -> torch.Tensor:
    """``skimage.data.astronaut()`` (a photo of a person) as (3, size, size) in [0, 1].

    Parameters
    ----------
    size : int or None, default 256
        Side of the square output (resized with antialiasing); ``None``: the
        original 512 x 512.

    Returns
    -------
    torch.Tensor
        float32 (3, H, W) in [0, 1].

    Raises
    ------
    ValueError
        If ``size`` is not ``None`` or an integer >= 8.
    ImportError
        If scikit-image is not installed (``pip install 'segcertify[real]'``).

    Examples
    --------
    >>> x = load_astronaut(64)
    >>> x.shape, x.dtype, 0.0 <= float(x.min()) <= float(x.max()) <= 1.0
    (torch.Size([3, 64, 64]), torch.float32, True)
    """
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 8):
        raise ValueError(f"`size` must be None or an integer >= 8; got {size!r}.")
    try:
        from skimage import data, transform
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("`load_astronaut` needs scikit-image: "
                          "`pip install 'segcertify[real]'`.") from err
    img = data.astronaut().astype(np.float32) / 255.0
    if size is not None:
        img = transform.resize(img, (size, size), order=1, anti_aliasing=True).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).clamp_(0.0, 1.0)
