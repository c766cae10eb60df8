"""smoothing.train: losses against brute force, the loop's noise, seeds, resume and files."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from samplers import GaussianL2, LaplaceL1
from smoothing.adapters import OutputSelector
from smoothing.models import SmallUNet, load_checkpoint
from smoothing.models.user import load_weights
from smoothing.train import (
    STATE_FORMAT,
    TrainRecipe,
    checkpoint_metadata,
    consistency_loss,
    noise_loss,
    read_state,
    train_for_smoothing,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread here and in the subprocess: the same reductions everywhere."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- losses
def _consistency_reference(logits, target, m, lam, eta, ignore=255):
    """Jeong & Shin's loss written out per pixel, in float64."""
    logits = logits.double()
    b = target.shape[0]
    probs = logits.softmax(1).reshape(m, b, *logits.shape[1:])
    ce_sum, ce_n, kl_sum, ent_sum, n_comp = 0.0, 0, 0.0, 0.0, 0
    for i in range(b):
        for pix in np.ndindex(*target.shape[1:]):
            ps = [probs[j, i][(slice(None), *pix)] for j in range(m)]
            mean = sum(ps) / m
            for j in range(m):
                kl_sum += float((mean * (mean.log() - ps[j].log())).sum()) / m
                if int(target[i][pix]) != ignore:
                    ce_sum += -math.log(float(ps[j][int(target[i][pix])]))
                    ce_n += 1
            ent_sum += -float((mean * mean.log()).sum())
            n_comp += 1
    return ce_sum / ce_n + lam * kl_sum / n_comp + eta * ent_sum / n_comp


@pytest.mark.parametrize("m", [2, 3])
def test_consistency_loss_matches_brute_force(m):
    g = torch.Generator().manual_seed(m)
    logits = 3 * torch.randn(m * 2, 4, 3, 2, generator=g)
    target = torch.randint(0, 4, (2, 3, 2), generator=g)
    target[0, 0, 0] = 255
    got = float(consistency_loss(logits, target, m, lam=10.0, eta=0.5))
    assert got == pytest.approx(_consistency_reference(logits, target, m, 10.0, 0.5), rel=1e-5)


def test_consistency_without_regularizer_is_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(4, 3, 5, generator=g), torch.randint(0, 3, (2, 5), generator=g)
    plain = F.cross_entropy(logits, target.repeat(2, 1))
    assert torch.allclose(consistency_loss(logits, target, 2, lam=0.0, eta=0.0), plain)
    with pytest.raises(ValueError, match="not m = 3 copies"):
        consistency_loss(logits, target, 3, lam=1.0, eta=0.5)


def test_noise_loss_ignores_unlabelled_and_survives_all_ignored():
    logits = torch.randn(1, 3, 4, requires_grad=True)
    target = torch.tensor([[0, 255, 2, 255]])
    expect = F.cross_entropy(logits[..., [0, 2]], target[..., [0, 2]])
    assert torch.allclose(noise_loss(logits, target), expect)
    loss = noise_loss(logits, torch.full((1, 4), 255))
    loss.backward()
    assert float(loss.detach()) == 0.0 and bool((logits.grad == 0).all())


# ------------------------------------------------------------------------ the loop
class Tiny(nn.Module):
    """A 2-layer conv net with batch norm; ``delay`` slows every training forward."""

    def __init__(self, classes: int = 3, delay: float = 0.0) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                                  nn.Dropout(0.1), nn.Conv2d(6, classes, 1))
        self.delay = delay

    def forward(self, x):
        if self.training and self.delay:
            time.sleep(self.delay)
        return self.body(x)


def _data(n=12, size=(8, 8)):
    g = torch.Generator().manual_seed(123)
    out = []
    for _ in range(n):
        x = torch.rand(3, *size, generator=g)
        y = (x[0] > 0.5).long() + (x[1] > 0.7).long()
        y[0, 0] = 255
        out.append((x, y))
    return out


def _model(delay=0.0):
    torch.manual_seed(7)
    return Tiny(delay=delay)


def _train(out, *, delay=0.0, resume=True, **kw):
    opts = dict(epochs=3, batch_size=4, method="consistency", lr=0.01, seed=5,
                val_fraction=0.25, device="cpu", progress=False, checkpoint_every=1)
    opts.update(kw)
    return train_for_smoothing(_model(delay), _data(), GaussianL2(0.25), out=out,
                               resume=resume, **opts)


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    a = _weights(_train(None).model)
    assert _same(a, _weights(_train(None).model))
    assert not _same(a, _weights(_train(None, seed=6).model))


def test_noise_comes_from_the_sampler():
    class Spy(GaussianL2):
        def perturb(self, x, *, generator=None):
            calls.append((tuple(x.shape), generator is not None))
            return super().perturb(x, generator=generator)

    calls = []
    train_for_smoothing(_model(), _data(8), Spy(0.5), epochs=1, batch_size=4, m=3,
                        method="consistency", val_fraction=0.0, device="cpu", progress=False)
    assert calls == [((12, 3, 8, 8), True)] * 2  # 2 steps of 4 inputs x m = 3 copies
    calls.clear()
    train_for_smoothing(_model(), _data(8), Spy(0.5), epochs=1, batch_size=4, method="noise",
                        val_fraction=0.25, device="cpu", progress=False)
    # 6 training items: steps of 4 and 2 inputs, then 2 validation items (one noisy copy each)
    assert calls == [((4, 3, 8, 8), True), ((2, 3, 8, 8), True),
                     ((1, 3, 8, 8), True), ((1, 3, 8, 8), True)]


def test_training_under_noise_beats_the_start_under_noise():
    """A sanity check of the whole loop: noisy validation accuracy goes up."""
    res = train_for_smoothing(_model(), _data(24), LaplaceL1(0.3), epochs=6, batch_size=4,
                              lr=0.03, val_fraction=0.25, device="cpu", progress=False)
    first, last = res.history[0], res.history[-1]
    assert len(res.history) == 6 and [h["epoch"] for h in res.history] == list(range(1, 7))
    # the most frequent class covers about half the pixels: the model learnt more than that
    assert last["val_accuracy_noisy"] > 0.55 and last["train_loss"] < first["train_loss"]


def test_files_load_with_weights_only_and_record_the_recipe(tmp_path):
    res = _train(tmp_path / "run")
    assert res.weights_path == tmp_path / "run" / "model.pt"
    blob = torch.load(res.weights_path, weights_only=True)
    meta = blob["metadata"]
    assert meta["sigma"] == 0.25 and meta["sampler"] == repr(GaussianL2(0.25))
    train = meta["train"]
    assert (train["method"], train["epochs"], train["seed"]) == ("consistency", 3, 5)
    assert train["recipe"] == TrainRecipe(method="consistency", epochs=3, batch_size=4, lr=0.01,
                                          seed=5, val_fraction=0.25).to_dict()
    assert len(train["data_fingerprint"]) == 64 and train["num_train"] == 9
    assert train["num_val"] == 3 and train["steps"] == 9 and len(train["history"]) == 3
    loaded = load_weights(_model(), res.weights_path)  # what --model-factory reads
    assert _same(_weights(loaded), _weights(res.model))
    state = read_state(res.state_path)
    assert state["format"] == STATE_FORMAT and state["step"] == 9
    assert checkpoint_metadata(res.weights_path) == meta


def test_builtin_architecture_is_saved_for_certify_checkpoint(tmp_path):
    from smoothing.cli import main
    from smoothing.datasets import SyntheticStreets

    torch.manual_seed(0)
    model = SmallUNet(num_classes=8, width=4, depth=1)
    data = SyntheticStreets(4, split="train", height=16, width=32)
    res = train_for_smoothing(model, data, GaussianL2(0.25), epochs=1, batch_size=2,
                              val_fraction=0.25, out=tmp_path / "t", device="cpu",
                              progress=False)
    again = load_checkpoint(res.weights_path)  # no arch needed
    assert _same(_weights(again), _weights(res.model)) and again.metadata["sigma"] == 0.25
    assert checkpoint_metadata(res.weights_path)["train"]["method"] == "noise"
    args = ["certify", "--dataset", "streets", "--checkpoint", str(res.weights_path),
            "--image-size", "16", "32", "--num-inputs", "1", "--n0", "4", "--n", "64",
            "--alpha", "0.01", "--device", "cpu", "--no-progress", "--out",
            str(tmp_path / "cert")]  # sigma comes from the checkpoint's metadata
    assert main(args) == 0
    records = (tmp_path / "cert" / "results.jsonl").read_text()
    assert records.count("\n") == 2 and '"grid":"sigma0.25-tau0.75-n64"' in records


def test_refusals(tmp_path):
    class DictOut(Tiny):
        def forward(self, x):
            return {"out": super().forward(x)}

    torch.manual_seed(0)
    kw = dict(epochs=1, batch_size=4, val_fraction=0.0, device="cpu", progress=False)
    with pytest.raises(TypeError, match="OutputSelector"):
        train_for_smoothing(DictOut(), _data(4), GaussianL2(0.25), **kw)
    inner = DictOut()
    train_for_smoothing(OutputSelector(inner, key="out"), _data(4), GaussianL2(0.25),
                        out=tmp_path / "selected", **kw)
    saved = torch.load(tmp_path / "selected" / "model.pt", weights_only=True)["state_dict"]
    assert _same(saved, _weights(inner))  # unwrapped: what the factory builds loads it
    bad = [(x, torch.full_like(y, 7)) for x, y in _data(4)]
    with pytest.raises(ValueError, match="holds label 7"):
        train_for_smoothing(Tiny(), bad, GaussianL2(0.25), **kw)
    mixed = _data(2) + _data(2, size=(8, 10))
    with pytest.raises(ValueError, match="different shapes.*`crop="):
        train_for_smoothing(Tiny(), mixed, GaussianL2(0.25), **kw)
    train_for_smoothing(Tiny(), mixed, GaussianL2(0.25), crop=(6, 6), **kw)
    with pytest.raises(ValueError, match="`method` must be one of"):
        train_for_smoothing(Tiny(), _data(4), GaussianL2(0.25), method="adv", **kw)
    with pytest.raises(ValueError, match="`m` must be an integer >= 2"):
        train_for_smoothing(Tiny(), _data(4), GaussianL2(0.25), method="consistency", m=1,
                            **kw)
    with pytest.raises(ValueError, match="not finite at step 0"):
        train_for_smoothing(Tiny(), [(x * math.nan, y) for x, y in _data(4)], GaussianL2(0.25),
                            **kw)


def test_resume_refuses_another_recipe(tmp_path):
    _train(tmp_path / "r", epochs=1)
    with pytest.raises(ValueError, match="comes from another run.*'lr'"):
        _train(tmp_path / "r", epochs=1, lr=0.02)
    _train(tmp_path / "r", epochs=1, lr=0.02, resume=False)  # starts afresh


def kill_after_step(proc: subprocess.Popen, state: Path, step: int) -> int:
    """SIGKILL the training process ``proc`` once its state file ``state`` records at
    least ``step`` optimiser steps; the step it recorded when killed."""
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if state.is_file() and read_state(state)["step"] >= step:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return read_state(state)["step"]

@pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")
def test_resume_after_sigkill_gives_identical_weights(tmp_path):
    """A run killed (SIGKILL) mid-training and resumed ends with the weights of a run
    that was never interrupted: same seed, bit for bit."""
    out = tmp_path / "killed"
    code = ("import sys, torch; torch.set_num_threads(1); sys.path.insert(0, sys.argv[2]); "
            "from test_train import _train; _train(sys.argv[1], delay=0.4)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out), str(HERE)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed_at = kill_after_step(proc, out / "train_state.pt", 2)
    assert 2 <= killed_at < 9 and not (out / "model.pt").exists()
    resumed = _train(out)  # resume=True
    assert resumed.resumed_from == killed_at
    fresh = _train(tmp_path / "fresh")
    assert _same(_weights(resumed.model), _weights(fresh.model))
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in fresh.history]
    on_disk = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    assert _same(on_disk, _weights(fresh.model))
