"""smoothing.distributed: sharded sampling and sharded datasets over torch.distributed (gloo).

The multi-process tests launch 2 CPU ranks on 127.0.0.1 -- with ``torchrun`` and,
for the failure cases, as two plain processes with torchrun's environment
variables, so that each rank's own behaviour is observed (torchrun would stop the
survivors itself). This file is also the workers' script: ``python
tests/test_distributed.py SCENARIO OUT_DIR`` runs one rank, which writes what it
saw to ``OUT_DIR/rank{r}.json``. Every launch has a hard subprocess timeout, so a
hang fails the test instead of CI.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from scipy import stats
from torch import nn

import multitest
from samplers import GaussianL2
from smoothing import SegCertify
from smoothing import _sampling as S
from smoothing.distributed import (
    DistContext,
    DistributedSegCertify,
    RankFailedError,
    init_from_env,
    rank_generator,
    rank_seed,
    split_counts,
)
from smoothing.runs.shards import (
    completed_keys,
    merge_results,
    pending_indices,
    rank_results_path,
    shard_indices,
)

ROOT = Path(__file__).resolve().parents[1]
SIGMA = 0.25
SEED = 7
N0, N = 11, 301  # odd totals: rank 0 draws one sample more than rank 1
TAU, ALPHA = 0.75, 0.001
#: P(class 1) per component: 300 components at 0.8, 100 at 0.1 (class 0 at 0.9)
P = np.r_[np.full(300, 0.8), np.full(100, 0.1)]
LAUNCH_TIMEOUT_S = 90  # hard limit of one 2-rank job (start-up is ~3 s a process)


class Oracle(nn.Module):
    """'Image' (1, 1, N) -> logits (B, 2, 1, N); P(class 1 at component i) = p[i] at x = 0."""

    def __init__(self, p, sigma: float = SIGMA) -> None:
        super().__init__()
        z = stats.norm.ppf(np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12))
        self.register_buffer("z", torch.tensor(z, dtype=torch.float32))
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x[:, 0, 0, :] / self.sigma + self.z
        return torch.stack([torch.zeros_like(s), s], dim=1).unsqueeze(2)


class Faulty(Oracle):
    """An Oracle that raises (or kills its process, or hangs) on its ``after``-th call."""

    def __init__(self, p, *, after: int, how: str) -> None:
        super().__init__(p)
        self.calls, self.after, self.how = 0, after, how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.after:
            if self.how == "raise":
                raise RuntimeError("boom: the model failed on this rank")
            if self.how == "die":
                os._exit(3)
            if self.how == "hang":
                time.sleep(60)
        return super().forward(x)


def make_certifier(model: nn.Module, *, n0: int = N0, n: int = N) -> SegCertify:
    return SegCertify(model, GaussianL2(SIGMA), num_classes=2, n0=n0, n=n, tau=TAU,
                      alpha=ALPHA, batch_size=64)


def oracle_input(num: int = len(P)) -> torch.Tensor:
    return torch.zeros(1, 1, num)


# ---------------------------------------------------------------------------
# launching 2 ranks
# ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    pythonpath = [str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    env.update(PYTHONPATH=os.pathsep.join(pythonpath), OMP_NUM_THREADS="1", **extra)
    return env


def run_torchrun(scenario: str, out: Path) -> list[dict]:
    """Run ``scenario`` on 2 ranks under torchrun; the ranks' reports."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
           "--master-addr=127.0.0.1", f"--master-port={free_port()}", "--max-restarts=0",
           str(Path(__file__).resolve()), scenario, str(out)]
    proc = subprocess.run(cmd, env=worker_env(), capture_output=True, text=True,
                          timeout=LAUNCH_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def run_ranks(scenario: str, out: Path, *, limit_s: float = LAUNCH_TIMEOUT_S,
              wait_for: tuple[int, ...] = (0, 1)):
    """Run ``scenario`` as 2 plain processes with torchrun's variables: (returncodes, reports).

    No agent stops the survivors when a rank dies, so each rank's own handling of
    the failure shows. The ranks in ``wait_for`` get ``limit_s`` seconds in all;
    the others are killed once those have exited.
    """
    port = str(free_port())
    procs = [subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), scenario, str(out)],
        env=worker_env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2",
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=port),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(2)]
    deadline = time.monotonic() + limit_s
    logs = [""] * len(procs)
    try:
        for r in wait_for:
            try:
                logs[r], _ = procs[r].communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
    reports = []
    for r in range(2):
        path = out / f"rank{r}.json"
        reports.append(json.loads(path.read_text()) if path.exists() else {"log": logs[r]})
    return [p.returncode for p in procs], reports


# ---------------------------------------------------------------------------
# the workers (run as a script, one process per rank)
# ---------------------------------------------------------------------------
def cert_record(cert) -> dict:
    return {
        "labels": cert.labels.tolist(), "guesses": cert.guesses.tolist(),
        "counts": cert.counts.tolist(), "counts0": cert.counts0.tolist(),
        "threshold": cert.threshold, "params": dict(cert.params),
    }


def error_record(error: BaseException) -> dict:
    return {"type": type(error).__name__, "message": str(error),
            "failed_ranks": list(getattr(error, "failed_ranks", []))}


def attempt(fn) -> dict:
    t0 = time.perf_counter()
    try:
        result = {"ok": cert_record(fn())}
    except Exception as error:
        result = {"error": error_record(error)}
    result["seconds"] = time.perf_counter() - t0
    return result


def scenario_sample(ctx: DistContext, out: Path) -> dict:
    """Sharded sampling twice with one seed, then a sharded 'dataset' of 5 inputs."""
    dist_cert = DistributedSegCertify(make_certifier(Oracle(P)), ctx)
    first = dist_cert.certify(oracle_input(), seed=SEED)
    again = dist_cert.certify(oracle_input(), seed=SEED)
    report = {"first": cert_record(first), "again": cert_record(again),
              "broadcast": ctx.broadcast_object({"rank": ctx.rank, "todo": [3, 1]})}
    # sharded dataset: input i is the oracle with its first i components flipped
    plain = make_certifier(Oracle(P), n0=5, n=50)
    results = rank_results_path(out, ctx.rank, ctx.world_size)
    for i in pending_indices(range(5), out, ctx.rank, ctx.world_size):
        cert = plain.certify(-oracle_input() * (torch.arange(len(P)) < i),
                             generator=torch.Generator().manual_seed(100 + i))
        with results.open("a") as f:
            f.write(json.dumps({"index": i, "rank": ctx.rank,
                                "labels": cert.labels.tolist()}) + "\n")
    report["pending_after"] = pending_indices(range(5), out, ctx.rank, ctx.world_size)
    ctx.barrier()
    if ctx.is_main:
        report["merged"] = [r["index"] for r in merge_results(out)]
    return report


def scenario_fail(ctx: DistContext, out: Path) -> dict:
    """Failures that are reported through the protocol; the group survives them all."""
    x = oracle_input()
    healthy = DistributedSegCertify(make_certifier(Oracle(P)), ctx)
    # rank 1 raises in the n phase (after the n0 table was summed)
    model = Faulty(P, after=2, how="raise") if ctx.rank == 1 else Oracle(P)
    faulty = DistributedSegCertify(make_certifier(model), ctx)
    bad_x = torch.full_like(x, float("nan")) if ctx.rank == 1 else x
    return {
        "in_sampling": attempt(lambda: faulty.certify(x, seed=SEED)),
        "bad_input": attempt(lambda: healthy.certify(bad_x, seed=SEED)),
        "seed_mismatch": attempt(lambda: healthy.certify(x, seed=SEED + ctx.rank)),
        "after_failures": attempt(lambda: healthy.certify(x, seed=SEED)),
    }


def scenario_die(ctx: DistContext, out: Path) -> dict:
    """Rank 1 dies (os._exit) in its n phase; rank 0 must raise, not hang."""
    model = Faulty(P, after=2, how="die") if ctx.rank == 1 else Oracle(P)
    return {"result": attempt(lambda: DistributedSegCertify(make_certifier(model), ctx)
                              .certify(oracle_input(), seed=SEED))}


def scenario_hang(ctx: DistContext, out: Path) -> dict:
    """Rank 1 hangs in its n phase; rank 0 must time out (timeout_s = 3)."""
    model = Faulty(P, after=2, how="hang") if ctx.rank == 1 else Oracle(P)
    return {"result": attempt(lambda: DistributedSegCertify(make_certifier(model), ctx)
                              .certify(oracle_input(), seed=SEED))}


SCENARIOS = {"sample": scenario_sample, "fail": scenario_fail, "die": scenario_die,
             "hang": scenario_hang}


def worker_main(scenario: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    ctx = init_from_env("gloo", timeout_s=30.0)
    assert ctx is not None and ctx.world_size == 2
    if scenario == "hang":  # a 3 s group for the collectives; the rendezvous keeps 30 s
        group = dist.new_group(backend="gloo", timeout=timedelta(seconds=3))
        ctx = dataclasses.replace(ctx, group=group, timeout_s=3.0)
    out = Path(out_dir)
    report = SCENARIOS[scenario](ctx, out)
    report.update(rank=ctx.rank, world_size=ctx.world_size, backend=ctx.backend)
    (out / f"rank{ctx.rank}.json").write_text(json.dumps(report))
    ctx.destroy()


# ---------------------------------------------------------------------------
# a single-process reference that uses the same per-rank streams
# ---------------------------------------------------------------------------
def reference_counts(seed: int, world_size: int):
    """(counts0, guesses, counts) of ``world_size`` ranks, computed in one process."""
    model, sampler, x = Oracle(P), GaussianL2(SIGMA), oracle_input()
    reader = S.OutputReader("BCHW", 2, (1, len(P)), torch.device("cpu"))
    streams = [S.split_generator(rank_generator(seed, r), torch.device("cpu"), 2)
               for r in range(world_size)]
    with torch.inference_mode():
        table = sum(S.count_classes(model, sampler, x, reader, batch_size=64, generator=g0,
                                    num=split_counts(N0, world_size, r)).long()
                    for r, (g0, _) in enumerate(streams))
        guesses = table.argmax(dim=1)
        counts = sum(S.count_matches(model, sampler, x, reader, guesses, batch_size=64,
                                     generator=g1, num=split_counts(N, world_size, r)).long()
                     for r, (_, g1) in enumerate(streams))
    return table.gather(1, guesses[:, None])[:, 0], guesses, counts


# ---------------------------------------------------------------------------
# 2 ranks
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    return run_torchrun("sample", out), out


def test_summed_counts_equal_one_process_with_the_same_rank_streams(sample_run):
    (rank0, rank1), _ = sample_run
    counts0, guesses, counts = reference_counts(SEED, 2)
    for rep in (rank0, rank1):
        cert = rep["first"]
        assert cert["counts0"] == [counts0.tolist()]  # labels have shape (1, N)
        assert cert["guesses"] == [guesses.tolist()]
        assert cert["counts"] == [counts.tolist()]


def test_certificate_matches_and_is_reproducible(sample_run):
    (rank0, rank1), _ = sample_run
    _, guesses, counts = reference_counts(SEED, 2)
    test = multitest.certify_counts(counts.numpy(), N, TAU, ALPHA, method="holm")
    expected = torch.where(torch.tensor(test.reject), guesses, -1)
    assert rank0["first"] == rank1["first"] == rank0["again"] == rank1["again"]
    assert rank0["broadcast"] == rank1["broadcast"] == {"rank": 0, "todo": [3, 1]}
    assert rank0["first"]["labels"] == [expected.tolist()]
    assert rank0["first"]["threshold"] == int(test.threshold)
    params = rank0["first"]["params"]
    assert (params["world_size"], params["seed"], params["n0"], params["n"]) == (2, SEED, N0, N)
    assert 0 < np.mean(expected.numpy() != -1) < 1  # a certificate with something in it


def test_summed_counts_have_the_single_process_distribution(sample_run):
    """Counts of p = 0.8 components are Binomial(n, 0.8): ranks draw independent noise.

    Were the ranks' streams identical, the variance would be about twice n p (1 - p).
    """
    (rank0, _), _ = sample_run
    guessed_1 = np.asarray(rank0["first"]["guesses"][0][:300]) == 1  # nearly all of them
    assert guessed_1.mean() > 0.9
    counts = np.asarray(rank0["first"]["counts"][0][:300], dtype=float)[guessed_1]
    assert abs(counts.mean() - 0.8 * N) < 4 * np.sqrt(0.16 * N / len(counts))
    assert 0.7 < counts.var(ddof=1) / (0.16 * N) < 1.35


def test_sharded_dataset_covers_every_input_once_and_merges(sample_run):
    (rank0, rank1), out = sample_run
    assert rank0["pending_after"] == rank1["pending_after"] == []
    assert rank0["merged"] == [0, 1, 2, 3, 4]
    by_rank = {r: [json.loads(line)["index"]
                   for line in (out / f"results.rank{r}.jsonl").read_text().splitlines()]
               for r in range(2)}
    assert by_rank == {0: [0, 2, 4], 1: [1, 3]}
    merged = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    plain = make_certifier(Oracle(P), n0=5, n=50)
    for record in merged:  # each input certified exactly as one process would
        i = record["index"]
        cert = plain.certify(-oracle_input() * (torch.arange(len(P)) < i),
                             generator=torch.Generator().manual_seed(100 + i))
        assert record["labels"] == cert.labels.tolist()


def test_a_failing_rank_makes_every_rank_raise(tmp_path):
    codes, (rank0, rank1) = run_ranks("fail", tmp_path)
    assert codes == [0, 0], (rank0, rank1)
    # an exception in rank 1's n phase: rank 1 raises it, rank 0 names rank 1
    assert rank1["in_sampling"]["error"]["type"] == "RuntimeError"
    assert "boom" in rank1["in_sampling"]["error"]["message"]
    err = rank0["in_sampling"]["error"]
    assert err["type"] == "RankFailedError" and err["failed_ranks"] == [1]
    assert "rank(s) [1] failed" in err["message"] and "boom" in err["message"]
    # an invalid input on rank 1 only (before any collective)
    assert rank1["bad_input"]["error"]["type"] == "ValueError"
    err = rank0["bad_input"]["error"]
    assert err["type"] == "RankFailedError" and "NaN" in err["message"]
    # ranks that disagree on the seed: the same clear ValueError everywhere
    for rep in (rank0, rank1):
        assert rep["seed_mismatch"]["error"]["type"] == "ValueError"
        assert "disagree on the seed" in rep["seed_mismatch"]["error"]["message"]
    # the process group survives, and the ranks agree again
    assert rank0["after_failures"]["ok"] == rank1["after_failures"]["ok"]


def test_a_rank_that_dies_makes_the_others_raise_not_hang(tmp_path):
    codes, (rank0, rank1) = run_ranks("die", tmp_path)
    assert codes == [0, 3]
    err = rank0["result"]["error"]
    assert err["type"] == "RankFailedError" and "lost contact" in err["message"]
    assert rank0["result"]["seconds"] < 30  # the group's timeout


def test_a_rank_that_hangs_makes_the_others_time_out(tmp_path):
    codes, (rank0, rank1) = run_ranks("hang", tmp_path, limit_s=40, wait_for=(0,))
    assert codes[0] == 0, rank0
    err = rank0["result"]["error"]
    assert err["type"] == "RankFailedError" and "timeout of 3 s" in err["message"]
    assert rank0["result"]["seconds"] < 20
    assert codes[1] != 0  # still hanging: killed by the launcher


# ---------------------------------------------------------------------------
# one process
# ---------------------------------------------------------------------------
def test_world_size_one_is_plain_segcertify_seeded_with_the_seed():
    certifier = make_certifier(Oracle(P))
    a = DistributedSegCertify(certifier).certify(oracle_input(), seed=SEED)
    b = certifier.certify(oracle_input(), generator=torch.Generator().manual_seed(SEED))
    for name in ("labels", "guesses", "counts", "counts0"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert a.threshold == b.threshold and a.radius == b.radius
    assert a.params == {**b.params, "world_size": 1, "seed": SEED}
    counts0, guesses, counts = reference_counts(SEED, 1)
    assert torch.equal(a.counts[0], counts) and torch.equal(a.guesses[0], guesses)
    p = DistributedSegCertify(certifier).predict(oracle_input(), seed=SEED, n=50)
    assert p.params["n"] == 50


@pytest.mark.parametrize("world_size", [None, "", "1"])
def test_init_from_env_is_none_in_one_process(monkeypatch, world_size):
    if world_size is None:
        monkeypatch.delenv("WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("WORLD_SIZE", world_size)
    assert init_from_env() is None


def test_init_from_env_errors(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ValueError, match="`RANK` is not set"):
        init_from_env()
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="`backend` must be one of"):
        init_from_env("mpi")
    with pytest.raises(ValueError, match="`timeout_s` must be > 0"):
        init_from_env("gloo", timeout_s=0)
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ValueError, match="`MASTER_ADDR` is not set"):
        init_from_env("gloo")


# ---------------------------------------------------------------------------
# streams, shares, shards and results files
# ---------------------------------------------------------------------------
def test_rank_seeds_are_the_seed_then_seedsequence_children():
    children = np.random.SeedSequence(SEED).spawn(4)
    assert rank_seed(SEED, 0) == SEED
    for r, child in enumerate(children[1:], start=1):
        assert rank_seed(SEED, r) == int(child.generate_state(1, np.uint64)[0])
    assert len({rank_seed(s, r) for s in range(20) for r in range(1, 9)}) == 160
    assert all(0 <= rank_seed(s, 3) < 2**64 for s in (0, 2**64 - 1))


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (2**64, ValueError),
                                        (1.5, TypeError), (True, TypeError)])
def test_seed_validation(bad, error):
    with pytest.raises(error, match="`seed`"):
        rank_seed(bad, 0)
    with pytest.raises(error, match="`seed`"):
        DistributedSegCertify(make_certifier(Oracle(P))).certify(oracle_input(), seed=bad)


@pytest.mark.parametrize("total", [0, 1, 7, 10, 301])
@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_split_counts_adds_up_and_is_balanced(total, world_size):
    shares = [split_counts(total, world_size, r) for r in range(world_size)]
    assert sum(shares) == total
    assert shares == sorted(shares, reverse=True) and shares[0] - shares[-1] <= 1


def test_shards_are_disjoint_and_cover(rng):
    indices = rng.permutation(23).tolist()
    shards = [shard_indices(indices, r, 4) for r in range(4)]
    assert sorted(i for s in shards for i in s) == sorted(indices)
    with pytest.raises(ValueError, match="`rank` must lie in"):
        shard_indices(indices, 4, 4)
    with pytest.raises(ValueError, match="`world_size`"):
        split_counts(3, 0, 0)


def test_results_paths():
    assert rank_results_path("o", 0, 1) == Path("o/results.jsonl")
    assert rank_results_path("o", 2, 3) == Path("o/results.rank2.jsonl")


def test_resume_and_merge_tolerate_a_cut_short_line(tmp_path):
    (tmp_path / "results.jsonl").write_text('{"index": 5}\n')  # an earlier 1-process run
    (tmp_path / "results.rank0.jsonl").write_text('{"index": 0}\n{"index": 2}\n')
    (tmp_path / "results.rank1.jsonl").write_text('{"index": 1}\n{"index": 3, "lab')
    (tmp_path / "results.rank10.jsonl").write_text('{"index": 2}\n')  # duplicate: dropped
    assert completed_keys(tmp_path) == {0, 1, 2, 5}
    assert pending_indices(range(8), tmp_path, 1, 2) == [3, 7]
    assert pending_indices(np.arange(8), tmp_path, 0, 2) == [4, 6]
    merged = merge_results(tmp_path)
    assert [r["index"] for r in merged] == [0, 1, 2, 5]
    assert merge_results(tmp_path) == merged  # idempotent


def test_merge_by_several_fields_as_the_runner_records(tmp_path):
    lines = ['{"input": 1, "grid": "base"}', '{"input": 0, "grid": "s0.25"}',
             '{"input": 0, "grid": "base"}']
    (tmp_path / "results.rank1.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "results.rank0.jsonl").write_text(lines[0] + "\n")  # duplicate
    merged = merge_results(tmp_path, key=("input", "grid"))
    assert [(r["input"], r["grid"]) for r in merged] == [(0, "base"), (0, "s0.25"), (1, "base")]
    assert completed_keys(tmp_path, key=("input", "grid")) == {(0, "base"), (0, "s0.25"),
                                                               (1, "base")}


def test_a_corrupt_line_in_the_middle_is_skipped_with_a_warning(tmp_path):
    from smoothing.runs import RunFolderWarning

    (tmp_path / "results.rank0.jsonl").write_text('{"index": 0}\nnot json\n{"index": 2}\n')
    with pytest.warns(RunFolderWarning, match=r"results.rank0.jsonl': line 2 skipped: not "
                                              r"valid JSON"):
        assert [r["index"] for r in merge_results(tmp_path)] == [0, 2]


def test_rank_failed_error_is_a_runtime_error():
    err = RankFailedError("x", [1], {1: "ValueError: y"})
    assert isinstance(err, RuntimeError) and err.failed_ranks == (1,)
    with pytest.raises(TypeError, match="`certifier`"):
        DistributedSegCertify(object())


if __name__ == "__main__":
    worker_main(*sys.argv[1:])
