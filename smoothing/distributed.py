"""Scale SEGCERTIFY out with :mod:`torch.distributed`: several processes, GPUs or nodes.

Launch one process per device with ``torchrun`` (which sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``) and call
:func:`init_from_env`; it returns ``None`` in a plain single process, so the same
script runs both ways. Two ways to split the work:

* **Sharded sampling** (one input, many samples): :class:`DistributedSegCertify`.
  Every rank draws its share (:func:`split_counts`) of the ``n0`` and ``n``
  samples from its own random stream (:func:`rank_seed`), counts on its own
  device, and the counts -- the sufficient statistics -- are summed with
  ``all_reduce``. Every rank then holds the same certificate.
* **Sharded datasets** (many inputs): each rank certifies the disjoint slice
  :func:`~smoothing.runs.shards.shard_indices` of the inputs with a plain
  :class:`~smoothing.SegCertify`, appends to its own results file and resumes from it
  (:mod:`smoothing.runs.shards`); :func:`~smoothing.runs.shards.merge_results` (on rank 0, after
  :meth:`DistContext.barrier`) writes the combined ``results.jsonl``.

Failures never hang silently: the process group has a timeout, and under sharded
sampling the ranks exchange a failure flag before every collective, so an
exception on one rank makes every other rank raise :class:`RankFailedError`
naming it (the failing rank raises its own exception). A rank that dies outright
makes the others' next collective fail (connection closed) or time out.

Backends: ``gloo`` on CPUs (the tests), ``nccl`` on CUDA GPUs (one process per
GPU; the default when CUDA is available). See ``docs/distributed.md``.

One module (~640 lines, about half docstrings): the process-group context, the
failure exchange and the sharded certifier use each other's private collectives.
"""

from __future__ import annotations

import hashlib
import numbers
import os
import struct
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from smoothing import _sampling as S
from smoothing.segcertify import SegCertify, SegmentationCertificate

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DistContext",
    "DistributedSegCertify",
    "RankFailedError",
    "init_from_env",
    "rank_generator",
    "rank_seed",
    "split_counts",
]

#: Default timeout of the process group (seconds): a collective, a barrier or the
#: rendezvous that waits longer than this fails instead of hanging.
DEFAULT_TIMEOUT_S: float = 1800.0

_BACKENDS = ("gloo", "nccl")

T = TypeVar("T")


class RankFailedError(RuntimeError):
    """Raised on the surviving ranks when another rank failed.

    Attributes
    ----------
    failed_ranks : tuple of int
        The ranks that reported a failure; empty when contact was lost (a rank
        died or did not reach a collective within the timeout).
    messages : dict of int to str
        The reported exception of every failed rank (``'TypeName: message'``).
    """

    def __init__(self, message: str, failed_ranks: Sequence[int] = (),
                 messages: dict[int, str] | None = None) -> None:
        super().__init__(message)
        self.failed_ranks = tuple(failed_ranks)
        self.messages = dict(messages or {})


# ---------------------------------------------------------------------------
# the process group
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DistContext:
    """One process's place in a distributed run (what :func:`init_from_env` returns).

    Attributes
    ----------
    rank, world_size, local_rank : int
        This process's global rank, the number of processes, and its rank on
        this node (the GPU index under ``nccl``).
    backend : {'gloo', 'nccl'}
        The process group's backend.
    device : torch.device
        Where collectives' tensors live and where the model should go:
        ``cuda:{local_rank}`` under ``nccl``, the CPU under ``gloo``.
    timeout_s : float
        Timeout of every collective, barrier and the rendezvous, in seconds.
    group : ProcessGroup or None
        The process group (``None``: the default group).
    owns_group : bool
        Whether :func:`init_from_env` created the group (then :meth:`destroy`
        destroys it).
    """

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device
    timeout_s: float
    group: Any = None
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """``True`` on rank 0, the rank that writes combined outputs."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every rank gets here (at most ``timeout_s``), or raise.

        Under ``gloo`` a :func:`torch.distributed.monitored_barrier`, whose error
        names the ranks that did not arrive.

        Raises
        ------
        RankFailedError
            If a rank died or did not arrive within the timeout.
        """
        if self.backend == "gloo":
            _collective(self, "barrier", lambda: dist.monitored_barrier(
                group=self.group, timeout=timedelta(seconds=self.timeout_s),
                wait_all_ranks=True))
        else:
            _collective(self, "barrier", lambda: dist.barrier(group=self.group))

    def broadcast_object(self, obj: T, src: int = 0) -> T:
        """Rank ``src``'s ``obj`` on every rank (any picklable object).

        For decisions all ranks must share under sharded sampling, e.g. the list of
        inputs still to certify when a run resumes (rank 0 reads the results, the
        others take its answer, so a file written meanwhile cannot split them).

        Raises
        ------
        RankFailedError
            If a rank died or did not get here within the timeout.
        """
        box = [obj if self.rank == src else None]
        _collective(self, "broadcast_object_list",
                    lambda: dist.broadcast_object_list(box, src=src, group=self.group))
        return box[0]

    def destroy(self) -> None:
        """Destroy the process group if :func:`init_from_env` created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def init_from_env(backend: str | None = None, *,
                  timeout_s: float = DEFAULT_TIMEOUT_S) -> DistContext | None:
    """Join the process group that ``torchrun`` describes in the environment.

    Parameters
    ----------
    backend : {'gloo', 'nccl'}, optional
        ``None``: ``'nccl'`` when CUDA is available, else ``'gloo'``.
    timeout_s : float, default :data:`DEFAULT_TIMEOUT_S`
        Seconds a collective, a barrier or the rendezvous may wait before it
        fails (> 0). Under sharded sampling the ranks meet a few times per input,
        so it only has to cover one sampling phase; under sharded datasets it
        must cover the ranks' difference in finishing time (final barrier).

    Returns
    -------
    DistContext or None
        ``None`` when ``WORLD_SIZE`` is unset or 1 (a single process: use plain
        code paths), else this process's context. Under ``nccl`` the current CUDA
        device is set to ``cuda:{LOCAL_RANK}``. If a default process group
        already exists it is reused with its own backend (and not destroyed by
        :meth:`DistContext.destroy`); ``timeout_s`` is then only recorded.

    Raises
    ------
    ValueError
        If ``backend`` or ``timeout_s`` is invalid, ``'nccl'`` is asked for
        without CUDA, or ``RANK``, ``MASTER_ADDR`` or ``MASTER_PORT`` is missing
        or malformed.

    Examples
    --------
    >>> import os
    >>> "WORLD_SIZE" in os.environ or init_from_env() is None  # not under torchrun
    True
    """
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return None
    rank = _env_int("RANK")
    local_rank = _env_int("LOCAL_RANK", rank)
    timeout_s = _check_timeout(timeout_s)
    owns = not dist.is_initialized()
    # an existing group keeps its backend; a new one gets the requested (or default) one
    backend = _check_backend(backend) if owns else str(dist.get_backend())
    device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    if backend == "nccl":
        torch.cuda.set_device(device)
    if owns:
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if not os.environ.get(name):
                raise ValueError(
                    f"`{name}` is not set; launch with torchrun (or set MASTER_ADDR, "
                    "MASTER_PORT, RANK and WORLD_SIZE yourself)."
                )
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size,
                                timeout=timedelta(seconds=timeout_s))
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(),
                       local_rank=local_rank, backend=backend, device=device,
                       timeout_s=timeout_s, owns_group=owns)


# ---------------------------------------------------------------------------
# random streams and shares
# ---------------------------------------------------------------------------
def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s random stream in a run seeded with ``seed``.

    Rank 0 uses ``seed`` itself, so one process (or rank 0 alone) draws exactly
    what ``SegCertify.certify(x, generator=torch.Generator().manual_seed(seed))``
    draws. Rank ``r >= 1`` uses the 64-bit word of
    ``np.random.SeedSequence(seed, spawn_key=(r,))`` -- the ``r``-th child of
    ``SeedSequence(seed).spawn(...)`` -- a hash of ``(seed, r)``, so the ranks'
    streams are statistically independent. NumPy keeps ``SeedSequence`` stable
    across versions: the certificates are reproducible for a given ``seed``, world
    size and device type.

    Parameters
    ----------
    seed : int
        The run's seed, in [0, 2**64).
    rank : int
        The rank, >= 0.

    Returns
    -------
    int
        A seed in [0, 2**64) for :meth:`torch.Generator.manual_seed`.

    Examples
    --------
    >>> rank_seed(7, 0), rank_seed(7, 1), rank_seed(7, 2)
    (7, 4042502035264064771, 17559002276220262541)
    """
    seed = _check_seed(seed)
    rank = S.check_int(rank, "rank", low=0)
    if rank == 0:
        return seed
    return int(np.random.SeedSequence(seed, spawn_key=(rank,)).generate_state(1, np.uint64)[0])


def rank_generator(seed: int, rank: int) -> torch.Generator:
    """A CPU :class:`torch.Generator` seeded with :func:`rank_seed` ``(seed, rank)``.

    This is the generator rank ``rank`` hands to :meth:`SegCertify.certify
    <smoothing.SegCertify.certify>`, which splits it into the two phase streams
    (``n0`` and ``n``) on the model's device. Noise drawn on a CUDA device differs
    from noise drawn on the CPU with the same seed.

    Examples
    --------
    >>> torch.randint(100, (3,), generator=rank_generator(0, 1)).tolist() == \\
    ...     torch.randint(100, (3,), generator=rank_generator(0, 1)).tolist()
    True
    """
    return torch.Generator().manual_seed(rank_seed(seed, rank))


def split_counts(total: int, world_size: int, rank: int) -> int:
    """Rank ``rank``'s share of ``total`` samples: equal shares, remainder to the lowest ranks.

    Examples
    --------
    >>> [split_counts(10, 4, r) for r in range(4)]
    [3, 3, 2, 2]
    >>> sum(split_counts(7, 3, r) for r in range(3))
    7
    """
    total = S.check_int(total, "total", low=0)
    world_size, rank = _check_rank(world_size, rank)
    return total // world_size + (rank < total % world_size)


# ---------------------------------------------------------------------------
# sharded sampling
# ---------------------------------------------------------------------------
class DistributedSegCertify:
    r"""Certify ONE input with the samples split over all ranks (sharded sampling).

    Wraps a :class:`~smoothing.SegCertify` that every rank builds identically (same
    model weights, sampler and parameters; the model on :attr:`DistContext.device`).
    :meth:`certify` must be called on every rank with the same input and seed;
    every rank returns the same certificate.

    Parameters
    ----------
    certifier : SegCertify
        The single-process certifier: ``n0``, ``n``, ``tau``, ``alpha``,
        ``correction`` and ``batch_size`` (per rank) are its.
    ctx : DistContext, optional
        From :func:`init_from_env`. ``None``: one process -- :meth:`certify` is
        then ``certifier.certify(x, generator=torch.Generator().manual_seed(seed))``.

    Raises
    ------
    TypeError
        If ``certifier`` is not a :class:`~smoothing.SegCertify` or ``ctx`` not a
        :class:`DistContext`.
    ValueError
        If ``certifier`` uses the randomized test (``randomized=True``): not
        supported across processes.

    Notes
    -----
    **Algorithm.** Rank ``r`` of ``w`` draws ``split_counts(n0, w, r)`` and
    ``split_counts(n, w, r)`` samples, from the two phase streams that
    :meth:`SegCertify.certify <smoothing.SegCertify.certify>` splits off
    :func:`rank_generator` ``(seed, r)``. (1) Each rank counts its (N, C) ``n0``
    table; the tables are summed with ``all_reduce`` and every rank takes the same
    argmax (ties: lowest class), so all ranks agree on the guesses. (2) Each rank
    counts the matches of its ``n`` samples; the (N,) counts are summed. (3) Every
    rank runs the same deterministic test on the same integer counts (no further
    communication). Communication: two ``all_reduce`` of N x C and N integers
    (int32) per input, plus a few tiny control messages.

    **Guarantee.** The ranks' samples are independent draws of the same noise, so
    the summed ``n0`` table and ``n`` counts have exactly the distribution of a
    single process drawing ``n0`` and ``n`` samples: the certificate is identical
    in distribution to :meth:`SegCertify.certify <smoothing.SegCertify.certify>`
    and Proposition 1 (FWER ``alpha``) holds unchanged. For a given ``seed``,
    world size and device type the certificate is exactly reproducible.

    **Failures.** Before each collective the ranks exchange a failure flag, and a
    first exchange checks that all ranks certify the same input (content hash),
    seed and parameters. An exception on one rank makes that rank raise it and
    every other rank raise :class:`RankFailedError` naming it; the process group
    stays usable. A rank that dies makes the others raise :class:`RankFailedError`
    when their next collective fails or times out (``ctx.timeout_s``).

    Examples
    --------
    In one process (``ctx=None``) it is :class:`~smoothing.SegCertify` seeded with
    ``seed``:

    >>> import torch
    >>> from samplers import GaussianL2
    >>> from smoothing import SegCertify
    >>> model = torch.nn.Conv2d(3, 2, kernel_size=1)
    >>> cert = SegCertify(model, GaussianL2(0.25), num_classes=2, n0=10, n=100, tau=0.75,
    ...                   alpha=0.001, batch_size=50)
    >>> x = torch.rand(3, 4, 4)
    >>> a = DistributedSegCertify(cert).certify(x, seed=0)
    >>> b = cert.certify(x, generator=torch.Generator().manual_seed(0))
    >>> torch.equal(a.labels, b.labels) and torch.equal(a.counts, b.counts)
    True
    >>> a.params["world_size"], a.params["seed"]
    (1, 0)
    """

    def __init__(self, certifier: SegCertify, ctx: DistContext | None = None) -> None:
        if not isinstance(certifier, SegCertify):
            raise TypeError(
                f"`certifier` must be a smoothing.SegCertify; got {type(certifier).__name__}."
            )
        if ctx is not None and not isinstance(ctx, DistContext):
            raise TypeError(
                f"`ctx` must be a DistContext (from init_from_env) or None; "
                f"got {type(ctx).__name__}."
            )
        if certifier.randomized:
            raise ValueError(
                "`certifier` uses the randomized test (randomized=True), which "
                "DistributedSegCertify does not support (every rank would need the same "
                "U draws); build the SegCertify with randomized=False."
            )
        self.certifier = certifier
        self.ctx = ctx

    def __repr__(self) -> str:
        return (f"DistributedSegCertify({self.certifier!r}, rank={self.rank}, "
                f"world_size={self.world_size})")

    @property
    def rank(self) -> int:
        """This process's rank (0 without a context)."""
        return 0 if self.ctx is None else self.ctx.rank

    @property
    def world_size(self) -> int:
        """Number of processes sharing the samples (1 without a context)."""
        return 1 if self.ctx is None else self.ctx.world_size

    def certify(self, x: torch.Tensor, *, seed: int) -> SegmentationCertificate:
        """Run SEGCERTIFY on ONE input with the samples split over all ranks.

        Parameters
        ----------
        x : torch.Tensor
            ONE input, as in :meth:`SegCertify.certify
            <smoothing.SegCertify.certify>`; the same on every rank.
        seed : int
            Seed of the run, in [0, 2**64); the same on every rank (rank ``r``
            draws from :func:`rank_generator` ``(seed, r)``; rank 0 from
            ``torch.Generator().manual_seed(seed)``).

        Returns
        -------
        SegmentationCertificate
            The same on every rank; ``params`` also records ``world_size`` and
            ``seed``. Timings are this rank's (sampling includes the waits for
            the other ranks).

        Raises
        ------
        TypeError, ValueError
            As :meth:`SegCertify.certify <smoothing.SegCertify.certify>`, on
            every rank; ``ValueError`` if the ranks disagree on the input, the
            seed or the parameters.
        RankFailedError
            If another rank failed or contact with it was lost.
        """
        c = self.certifier
        return self._run(x, seed, c.n0, c.n, c.alpha)

    def predict(self, x: torch.Tensor, *, seed: int, n: int | None = None,
                n0: int | None = None, alpha: float | None = None) -> SegmentationCertificate:
        """:meth:`SegCertify.predict <smoothing.SegCertify.predict>` with the samples
        split over all ranks (same arguments, plus ``seed`` as in :meth:`certify`)."""
        c = self.certifier
        n = c.n if n is None else S.check_int(n, "n")
        n0 = c.n0 if n0 is None else S.check_int(n0, "n0")
        alpha = c.alpha if alpha is None else S.check_alpha(alpha)
        return self._run(x, seed, n0, n, alpha)

    def _run(self, x: torch.Tensor, seed: int, n0: int, n: int,
             alpha: float) -> SegmentationCertificate:
        seed = _check_seed(seed)
        generator = rank_generator(seed, self.rank)
        ctx = self.ctx
        if ctx is None:
            cert = self.certifier._run(x, n0, n, alpha, generator)
        else:
            with _guarded(ctx):
                x = S.check_input(x)
                config = f"{self.certifier!r}|n0={n0}|n={n}|alpha={alpha!r}"
                _agree(ctx, x, seed, config)
                shares = (split_counts(n0, ctx.world_size, ctx.rank),
                          split_counts(n, ctx.world_size, ctx.rank))
                cert = self.certifier._run(x, n0, n, alpha, generator, shares=shares,
                                           reduce=lambda counts: _sum_counts(ctx, counts))
        params = {**cert.params, "world_size": self.world_size, "seed": seed}
        return replace(cert, params=params)


# ---------------------------------------------------------------------------
# the collectives of sharded sampling
# ---------------------------------------------------------------------------
def _agree(ctx: DistContext, x: torch.Tensor, seed: int, config: str) -> None:
    """Check that every rank certifies the same input with the same seed and parameters."""
    signed_seed = seed - 2**64 if seed >= 2**63 else seed  # as an int64
    mine = torch.tensor([signed_seed, _digest(config.encode()), _tensor_digest(x)],
                        dtype=torch.int64, device=ctx.device)
    _exchange(ctx, None)
    rows = [torch.empty_like(mine) for _ in range(ctx.world_size)]
    _collective(ctx, "all_gather", lambda: dist.all_gather(rows, mine, group=ctx.group))
    table = torch.stack(rows).cpu()
    for j, what in enumerate(("the seed", "the parameters (n0, n, tau, alpha, "
                              "correction, sampler, batch size)", "the input `x`")):
        column = table[:, j]
        if bool((column != column[0]).any()):
            detail = (f": {dict(enumerate(column.tolist()))}" if j == 0 else
                      f" (ranks {_ranks_differing(column)} differ from rank 0)")
            raise ValueError(
                f"the ranks disagree on {what}{detail}; under sharded sampling every "
                "rank must certify the same input with the same seed and certifier."
            )


def _sum_counts(ctx: DistContext, counts: torch.Tensor) -> torch.Tensor:
    """The ``reduce`` hook: sum this rank's counts over all ranks (int32 or int64)."""
    _exchange(ctx, None)  # a rank that failed while sampling stops everyone here
    # local counts are uint8 or int16 (<= 32767) unless n is huge: int32 holds their sum
    wide = counts.dtype in (torch.int32, torch.int64)
    total = counts.to(ctx.device, torch.int64 if wide else torch.int32)
    _collective(ctx, "all_reduce", lambda: dist.all_reduce(total, group=ctx.group))
    return total.to(counts.device)


# ---------------------------------------------------------------------------
# the failure protocol
# ---------------------------------------------------------------------------
@contextmanager
def _guarded(ctx: DistContext) -> Iterator[None]:
    """Run a block that contains collectives; if it raises on any rank, all ranks raise.

    Every collective inside the block must be preceded by ``_exchange(ctx, None)``.
    A rank whose block raises sends its failure flag in the exchange the other
    ranks wait in (the next one), so the sequences of collectives stay matched.
    """
    try:
        yield
    except RankFailedError:
        raise
    except Exception as error:
        _exchange(ctx, error)  # tell the others, then raise our own exception
        raise
    _exchange(ctx, None)  # a rank that failed after the last collective


def _exchange(ctx: DistContext, error: BaseException | None) -> None:
    """One round of the failure protocol: all ranks say whether they failed.

    Returns if nobody failed, and on a failed rank (which re-raises its own
    exception); raises :class:`RankFailedError` on the others.
    """
    flags = torch.zeros(ctx.world_size, dtype=torch.int32, device=ctx.device)
    if error is not None:
        flags[ctx.rank] = 1
    _collective(ctx, "all_reduce", lambda: dist.all_reduce(flags, group=ctx.group))
    failed = [int(r) for r in torch.nonzero(flags.cpu()).flatten().tolist()]
    if not failed:
        return
    mine = None if error is None else _describe(error)
    messages: list[str | None] = [None] * ctx.world_size
    _collective(ctx, "all_gather_object",
                lambda: dist.all_gather_object(messages, mine, group=ctx.group))
    if error is None:
        reported = {r: str(messages[r]) for r in failed}
        lines = "; ".join(f"rank {r}: {m}" for r, m in reported.items())
        raise RankFailedError(
            f"rank {ctx.rank} stops because rank(s) {failed} failed -- {lines}",
            failed, reported,
        )


def _collective(ctx: DistContext, name: str, call: Callable[[], T]) -> T:
    """Run one collective; turn a lost peer or a timeout into a clear RankFailedError."""
    try:
        return call()
    except RankFailedError:
        raise
    except RuntimeError as error:  # gloo / nccl errors, timeouts, closed connections
        raise RankFailedError(
            f"rank {ctx.rank} lost contact with the other ranks in {name} (a rank died, "
            f"or did not get there within the timeout of {ctx.timeout_s:g} s): {error}"
        ) from error


def _describe(error: BaseException) -> str:
    where = traceback.extract_tb(error.__traceback__)
    at = f" (at {Path(where[-1].filename).name}:{where[-1].lineno})" if where else ""
    return f"{type(error).__name__}: {error}{at}"


def _digest(data: bytes) -> int:
    return struct.unpack("<q", hashlib.blake2b(data, digest_size=8).digest())[0]


def _tensor_digest(x: torch.Tensor) -> int:
    """A hash of ``x``'s dtype, shape and exact bytes (the same on every device)."""
    flat = x.detach().to("cpu").contiguous().reshape(-1)
    raw = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
    return _digest(f"{x.dtype}|{tuple(x.shape)}|".encode() + raw)


def _ranks_differing(column: torch.Tensor) -> list[int]:
    return [int(r) for r in torch.nonzero(column != column[0]).flatten().tolist()]


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------
def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"`seed` must be an int; got {type(seed).__name__}.")
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"`seed` must lie in [0, 2**64); got {seed!r}.")
    return int(seed)


def _check_rank(world_size: object, rank: object) -> tuple[int, int]:
    world_size = S.check_int(world_size, "world_size")
    rank = S.check_int(rank, "rank", low=0)
    if rank >= world_size:
        raise ValueError(f"`rank` must lie in [0, world_size={world_size}); got {rank}.")
    return world_size, rank


def _check_backend(backend: object) -> str:
    if backend is None:
        return "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in _BACKENDS:
        raise ValueError(f"`backend` must be one of 'gloo', 'nccl' or None; got {backend!r}.")
    if backend == "nccl" and not torch.cuda.is_available():
        raise ValueError("`backend` 'nccl' needs CUDA GPUs; use 'gloo' on CPUs.")
    return str(backend)


def _check_timeout(timeout_s: object) -> float:
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, numbers.Real):
        raise TypeError(f"`timeout_s` must be a number; got {type(timeout_s).__name__}.")
    if not float(timeout_s) > 0:
        raise ValueError(f"`timeout_s` must be > 0; got {timeout_s!r}.")
    return float(timeout_s)


def _env_int(name: str, default: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        if default is None:
            raise ValueError(
                f"`{name}` is not set; launch with torchrun (or set MASTER_ADDR, "
                "MASTER_PORT, RANK and WORLD_SIZE yourself)."
            )
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable `{name}` must be an int; got {value!r}.") \
            from None
