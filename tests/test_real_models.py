"""smoothing.real: the LiteRT wrapper (on a fake interpreter), the loaders, the assets,
the experiment script; one slow end-to-end test on the real files when they are cached.
"""

from __future__ import annotations

import hashlib
import zipfile

import numpy as np
import pytest
import torch

from samplers import GaussianL2
from smoothing import ABSTAIN, SegCertify
from smoothing.real import (
    ASSETS,
    FETCH_COMMAND,
    Asset,
    AssetMissingError,
    NucleiImage,
    OtsuSegmenter,
    SelfieSegmenter,
    TrainConfig,
    asset_path,
    cache_dir,
    fetch,
    load_astronaut,
    load_nuclei,
    missing_assets,
    normalize_percentile,
    otsu_segmentation,
    predict_clean,
    read_array,
    segmentation_scores,
    split_columns,
    train_nuclei_model,
)
from smoothing.real import __main__ as real_cli
from smoothing.real import assets as assets_mod

tifffile = pytest.importorskip("tifffile")


# ---------------------------------------------------------------------------
# a fake TFLite interpreter: P(person) = the red channel
# ---------------------------------------------------------------------------
class FakeInterpreter:
    """The TFLite Interpreter API on numpy; records what it was given."""

    def __init__(self, model_path, num_threads, *, size=(8, 8), in_dtype=np.float32,
                 out_channels=1, bad_output=False):
        self.model_path, self.num_threads = model_path, num_threads
        self.shape = [1, *size, 3]
        self.in_dtype, self.out_channels, self.bad_output = in_dtype, out_channels, bad_output
        self.inputs: list[np.ndarray] = []
        self.resizes: list[list[int]] = []
        self.allocations = 0

    def get_input_details(self):
        return [{"index": 0, "shape": np.array(self.shape), "dtype": self.in_dtype}]

    def get_output_details(self):
        return [{"index": 7, "shape": np.array(self.shape[:3] + [self.out_channels])}]

    def resize_tensor_input(self, index, shape):
        assert index == 0
        self.resizes.append(list(shape))
        self.shape = list(shape)

    def allocate_tensors(self):
        self.allocations += 1

    def set_tensor(self, index, value):
        assert index == 0
        assert list(value.shape) == self.shape, "set_tensor before resize/allocate"
        self.inputs.append(value)

    def invoke(self):
        x = self.inputs[-1]
        self.y = x[..., :1].copy()
        if self.bad_output:
            self.y = self.y[:, :-1]

    def get_tensor(self, index):
        assert index == 7
        return self.y


def fake_factory(**kwargs):
    made = []

    def factory(path, threads):
        made.append(FakeInterpreter(path, threads, **kwargs))
        return made[-1]

    factory.made = made
    return factory


def red_halves(batch=1, h=8, w=8):
    x = torch.zeros(batch, 3, h, w)
    x[:, 0, :, w // 2:] = 1.0
    return x


class TestSelfieSegmenter:
    def test_shapes_dtype_and_scores(self):
        factory = fake_factory()
        seg = SelfieSegmenter("net.tflite", interpreter_factory=factory, num_threads=3)
        scores = seg(red_halves(4))
        assert scores.shape == (4, 2, 8, 8) and scores.dtype == torch.float32
        torch.testing.assert_close(scores.sum(1), torch.ones(4, 8, 8))
        assert scores.argmax(1)[0, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
        assert seg.layout == "BCHW" and seg.num_classes == 2 and seg.input_size == (8, 8)
        interp = factory.made[0]
        assert interp.model_path == "net.tflite" and interp.num_threads == 3
        (fed,) = interp.inputs
        assert fed.dtype == np.float32 and fed.shape == (4, 8, 8, 3)
        assert fed.flags.c_contiguous
        assert "net.tflite" in repr(seg)

    def test_keeps_dtype_and_clips_input(self):
        factory = fake_factory()
        seg = SelfieSegmenter("m", interpreter_factory=factory)
        x = red_halves(2).double() * 3.0 - 1.0  # values -1 and 2
        scores = seg(x)
        assert scores.dtype == torch.float64
        fed = factory.made[0].inputs[-1]
        assert fed.dtype == np.float32 and fed.min() == 0.0 and fed.max() == 1.0

    @pytest.mark.parametrize("max_batch", [1, 3, 32])
    def test_batching_in_chunks(self, max_batch):
        factory = fake_factory()
        seg = SelfieSegmenter("m", interpreter_factory=factory, max_batch=max_batch)
        x = torch.rand(7, 3, 8, 8)
        scores = seg(x)
        interp = factory.made[0]
        sizes = [a.shape[0] for a in interp.inputs]
        assert sum(sizes) == 7 and max(sizes) <= max_batch
        # one resize + allocation per change of the chunk size only
        changes = sum(a != b for a, b in zip([1, *sizes], sizes, strict=False))
        assert len(interp.resizes) == changes
        torch.testing.assert_close(scores[:, 1], x[:, 0])

    def test_resizes_to_network_and_back(self):
        factory = fake_factory()
        seg = SelfieSegmenter("m", interpreter_factory=factory)
        x = red_halves(2, h=16, w=24)
        scores = seg(x)
        assert scores.shape == (2, 2, 16, 24)
        assert factory.made[0].inputs[-1].shape == (2, 8, 8, 3)
        assert scores.argmax(1)[0, 5].tolist() == [0] * 12 + [1] * 12

    def test_is_a_segcertify_base_model(self):
        """The non-torch callable goes through SEGCERTIFY's sampling and counting."""
        factory = fake_factory()
        seg = SelfieSegmenter("m", interpreter_factory=factory, max_batch=16)
        cert = SegCertify(seg, GaussianL2(0.1), num_classes=2, n0=8, n=40, tau=0.75,
                          alpha=0.01, batch_size=16).certify(
            red_halves()[0], generator=torch.Generator().manual_seed(0))
        assert cert.labels.shape == (8, 8)
        assert cert.labels[:, :4].eq(0).all() and cert.labels[:, 4:].eq(1).all()
        inputs = factory.made[0].inputs
        assert sum(a.shape[0] for a in inputs) == 48  # n0 + n noisy copies
        assert all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in inputs)

    def test_certify_abstains_on_ambiguous_pixels(self):
        seg = SelfieSegmenter("m", interpreter_factory=fake_factory())
        x = torch.full((3, 4, 4), 0.5)  # P(person) hovers at 1/2 under noise
        cert = SegCertify(seg, GaussianL2(0.2), num_classes=2, n0=4, n=30, tau=0.9,
                          alpha=0.01, batch_size=17).certify(
            x, generator=torch.Generator().manual_seed(1))
        assert (cert.labels == ABSTAIN).all()

    @pytest.mark.parametrize("x, exc, match", [
        (np.zeros((1, 3, 8, 8), np.float32), TypeError, "torch.Tensor"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.int64), TypeError, "floating-point"),
        (torch.zeros(1, 1, 8, 8), ValueError, r"\(B, 3, H, W\)"),
        (torch.zeros(3, 8, 8), ValueError, r"\(B, 3, H, W\)"),
    ])
    def test_bad_input(self, x, exc, match):
        seg = SelfieSegmenter("m", interpreter_factory=fake_factory())
        with pytest.raises(exc, match=match):
            seg(x)

    @pytest.mark.parametrize("kwargs, match", [
        ({"num_threads": 0}, "`num_threads`"),
        ({"max_batch": 0}, "`max_batch`"),
        ({"max_batch": True}, "`max_batch`"),
        ({"num_threads": 1.5}, "`num_threads`"),
    ])
    def test_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            SelfieSegmenter("m", interpreter_factory=fake_factory(), **kwargs)

    def test_factory_must_be_callable(self):
        with pytest.raises(TypeError, match="`interpreter_factory`"):
            SelfieSegmenter("m", interpreter_factory="litert")

    @pytest.mark.parametrize("kwargs", [{"in_dtype": np.uint8}, {"out_channels": 2}])
    def test_wrong_network_io(self, kwargs):
        with pytest.raises(ValueError, match="float32 input"):
            SelfieSegmenter("m", interpreter_factory=fake_factory(**kwargs))

    def test_wrong_interpreter_output(self):
        seg = SelfieSegmenter("m", interpreter_factory=fake_factory(bad_output=True))
        with pytest.raises(ValueError, match="the interpreter returned shape"):
            seg(red_halves())

    def test_missing_model_file(self, tmp_path):
        with pytest.raises(AssetMissingError, match="python -m smoothing.real fetch"):
            SelfieSegmenter(tmp_path / "nope.tflite")

    def test_missing_asset(self, tmp_path, monkeypatch):
        monkeypatch.setenv("SEGCERTIFY_CACHE", str(tmp_path))
        with pytest.raises(AssetMissingError, match="python -m smoothing.real fetch"):
            SelfieSegmenter(interpreter_factory=fake_factory())


def test_load_astronaut():
    x = load_astronaut(32)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert load_astronaut(None).shape == (3, 512, 512)
    for bad in (4, 0, 32.0, True):
        with pytest.raises(ValueError, match="`size`"):
            load_astronaut(bad)


# ---------------------------------------------------------------------------
# assets
# ---------------------------------------------------------------------------
def _toy_asset(monkeypatch, data: bytes, *, sha: str | None = None) -> Asset:
    asset = Asset("toy", "toypkg", "1.0", "toypkg/data/file.bin",
                  sha or hashlib.sha256(data).hexdigest(), "toy.bin", "a toy file")
    monkeypatch.setitem(assets_mod.ASSETS, "toy", asset)
    return asset


def _toy_wheel(folder, data: bytes, member="toypkg/data/file.bin"):
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / "toypkg-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr(member, data)
        zf.writestr("toypkg/__init__.py", "")


class TestAssets:
    def test_pinned_assets(self):
        assert set(ASSETS) == {"selfie_segmentation", "nuclei_image", "nuclei_mask"}
        assert ASSETS["selfie_segmentation"].requirement == "mediapipe==0.10.21"
        assert all(len(a.sha256) == 64 for a in ASSETS.values())
        assert FETCH_COMMAND == "python -m smoothing.real fetch"

    def test_cache_dir(self, tmp_path, monkeypatch):
        monkeypatch.setenv("SEGCERTIFY_CACHE", str(tmp_path))
        assert cache_dir() == tmp_path / "real"
        assert cache_dir(tmp_path / "x") == tmp_path / "x"
        monkeypatch.delenv("SEGCERTIFY_CACHE")
        assert cache_dir().parts[-3:] == (".cache", "segcertify", "real")

    def test_missing_names_the_fetch_command(self, tmp_path):
        with pytest.raises(AssetMissingError, match=f"{FETCH_COMMAND}` --cache") as err:
            asset_path("nuclei_image", cache=tmp_path)
        assert "stardist==0.9.2" in str(err.value)
        assert isinstance(err.value, FileNotFoundError)
        assert missing_assets(cache=tmp_path) == list(ASSETS)

    def test_checksum_mismatch(self, tmp_path):
        (tmp_path / ASSETS["nuclei_mask"].filename).write_bytes(b"not a tif")
        with pytest.raises(AssetMissingError, match="SHA-256"):
            asset_path("nuclei_mask", cache=tmp_path)
        assert asset_path("nuclei_mask", cache=tmp_path, verify=False).is_file()
        assert "nuclei_mask" in missing_assets(cache=tmp_path)

    def test_unknown_name(self, tmp_path):
        with pytest.raises(ValueError, match="`name` must be one of"):
            asset_path("resnet", cache=tmp_path)
        with pytest.raises(ValueError, match="`name`"):
            fetch(["resnet"], cache=tmp_path)

    def test_fetch_from_a_local_wheel(self, tmp_path, monkeypatch):
        data = b"\x00model bytes\x01"
        _toy_asset(monkeypatch, data)
        _toy_wheel(tmp_path / "wheels", data)
        paths = fetch(["toy"], cache=tmp_path / "cache", wheel_dir=tmp_path / "wheels")
        assert paths["toy"].read_bytes() == data
        assert asset_path("toy", cache=tmp_path / "cache") == paths["toy"]
        assert not list((tmp_path / "cache").glob("*.part"))

    def test_fetch_rejects_a_wrong_checksum(self, tmp_path, monkeypatch):
        _toy_asset(monkeypatch, b"x", sha="0" * 64)
        _toy_wheel(tmp_path / "wheels", b"x")
        with pytest.raises(RuntimeError, match="SHA-256"):
            fetch(["toy"], cache=tmp_path / "cache", wheel_dir=tmp_path / "wheels")
        assert not (tmp_path / "cache" / "toy.bin").exists()

    def test_fetch_missing_member(self, tmp_path, monkeypatch):
        _toy_asset(monkeypatch, b"x")
        _toy_wheel(tmp_path / "wheels", b"x", member="toypkg/other.bin")
        with pytest.raises(RuntimeError, match="has no member"):
            fetch(["toy"], cache=tmp_path / "cache", wheel_dir=tmp_path / "wheels")

    def test_status_command(self, tmp_path, capsys):
        assert real_cli.main(["status", "--cache", str(tmp_path)]) == 1
        out = capsys.readouterr().out
        assert "MISSING" in out and "mediapipe==0.10.21" in out


# ---------------------------------------------------------------------------
# nuclei: loaders, baseline, training
# ---------------------------------------------------------------------------
@pytest.fixture
def one_thread():
    """Tiny torch models run faster on one thread (no spinning on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def small_nuclei(tmp_path, rng):
    labels = np.zeros((24, 32), np.uint16)
    labels[2:8, 3:9] = 1
    labels[12:20, 20:28] = 2
    image = (rng.normal(20, 5, labels.shape) + 150 * (labels > 0)).clip(0, 255)
    tifffile.imwrite(tmp_path / "img.tif", image.astype(np.uint8))
    tifffile.imwrite(tmp_path / "mask.tif", labels)
    return tmp_path / "img.tif", tmp_path / "mask.tif", image.astype(np.uint8), labels


class TestLoaders:
    def test_read_array(self, tmp_path, small_nuclei):
        img_path, _, image, _ = small_nuclei
        np.testing.assert_array_equal(read_array(img_path), image)
        np.save(tmp_path / "a.npy", image)
        np.testing.assert_array_equal(read_array(tmp_path / "a.npy"), image)

    def test_read_array_errors(self, tmp_path):
        with pytest.raises(ValueError, match="`path` must end in"):
            read_array(tmp_path / "a.png")
        tifffile.imwrite(tmp_path / "stack.tif", np.zeros((2, 4, 4), np.uint8))
        with pytest.raises(ValueError, match="2-d array"):
            read_array(tmp_path / "stack.tif")

    def test_load_nuclei(self, small_nuclei):
        img_path, mask_path, image, labels = small_nuclei
        data = load_nuclei(img_path, mask_path)
        assert isinstance(data, NucleiImage)
        assert data.image.dtype == np.float32 and data.instances.dtype == np.int32
        assert data.num_instances == 2
        assert data.foreground.dtype == np.int64
        np.testing.assert_array_equal(data.foreground, labels > 0)

    def test_load_nuclei_errors(self, tmp_path, small_nuclei):
        img_path, mask_path, _, labels = small_nuclei
        tifffile.imwrite(tmp_path / "small.tif", labels[:10])
        with pytest.raises(ValueError, match="shapes differ"):
            load_nuclei(img_path, tmp_path / "small.tif")
        np.save(tmp_path / "neg.npy", -labels.astype(np.int32))
        with pytest.raises(ValueError, match="non-negative integer"):
            load_nuclei(img_path, tmp_path / "neg.npy")
        np.save(tmp_path / "float.npy", labels.astype(np.float32))
        with pytest.raises(ValueError, match="non-negative integer"):
            load_nuclei(img_path, tmp_path / "float.npy")
        with pytest.raises(AssetMissingError, match=FETCH_COMMAND):
            load_nuclei(cache=tmp_path / "empty")

    def test_normalize_percentile(self, rng):
        a = rng.normal(size=(20, 20))
        out = normalize_percentile(a, 1, 99)
        assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
        ref = normalize_percentile(a, 0, 100, reference=a[:, :10])
        lo, hi = a[:, :10].min(), a[:, :10].max()
        np.testing.assert_allclose(ref, np.clip((a - lo) / (hi - lo), 0, 1), rtol=1e-5)
        with pytest.raises(ValueError, match="`low` < `high`"):
            normalize_percentile(a, 50, 10)
        with pytest.raises(ValueError, match="constant"):
            normalize_percentile(np.ones((3, 3)))

    def test_split_columns(self):
        a, b = split_columns(np.arange(20).reshape(2, 10), 0.3)
        assert a.shape == (2, 3) and b.shape == (2, 7)
        with pytest.raises(ValueError, match="`fraction`"):
            split_columns(np.zeros((2, 4)), 1.0)

    def test_otsu(self, small_nuclei):
        _, _, image, labels = small_nuclei
        pred = otsu_segmentation(image.astype(np.float32))
        assert pred.dtype == np.int64
        s = segmentation_scores(pred, labels > 0)
        assert s["iou"] > 0.95 and s["abstain"] == 0.0

    def test_otsu_segmenter(self):
        seg = OtsuSegmenter()
        x = torch.zeros(3, 1, 4, 6)
        x[:2, :, :, 3:] = 1.0  # the third image is constant: all background
        scores = seg(x)
        assert scores.shape == (3, 2, 4, 6) and scores.dtype == torch.float32
        assert scores.argmax(1)[0, 0].tolist() == [0, 0, 0, 1, 1, 1]
        assert scores.argmax(1)[2].eq(0).all()
        with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
            seg(torch.zeros(1, 3, 4, 4))
        with pytest.raises(TypeError, match="floating-point"):
            seg(torch.zeros(1, 1, 4, 4, dtype=torch.int64))

    def test_segmentation_scores_with_abstentions(self):
        s = segmentation_scores(torch.tensor([1, 1, ABSTAIN, 0]), np.array([1, 0, 1, 0]))
        assert s == pytest.approx({"accuracy": 0.5, "iou": 1 / 3, "abstain": 0.25})

    @pytest.mark.parametrize("kwargs, match", [
        ({"sigma": -0.1}, "`sigma`"), ({"sigma": float("nan")}, "`sigma`"),
        ({"sigma": 0.1, "steps": 0}, "`steps`"), ({"sigma": 0.1, "crop": 2.0}, "`crop`"),
        ({"sigma": 0.1, "lr": 0.0}, "`lr`"),
    ])
    def test_train_config_errors(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            TrainConfig(**kwargs)

    def test_train_tiny_model(self, rng, one_thread):
        image = rng.random((32, 32)).astype(np.float32)
        target = (image > 0.5).astype(np.int64)
        cfg = TrainConfig(sigma=0.1, steps=2, batch_size=2, crop=16, width=2, depth=1, seed=5)
        state = torch.random.get_rng_state()
        m1 = train_nuclei_model(image, target, cfg)
        assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched
        m2 = train_nuclei_model(image, target, cfg)
        assert not m1.training
        for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b)
        assert m1.metadata["recipe"]["sigma"] == 0.1
        assert np.isfinite(m1.metadata["final_loss"])
        pred = predict_clean(m1, image)
        assert pred.shape == (32, 32) and set(np.unique(pred)) <= {0, 1}
        with pytest.raises(ValueError, match="at least 16 pixels"):
            train_nuclei_model(image[:8], target[:8], cfg)


# ---------------------------------------------------------------------------
# the script
# ---------------------------------------------------------------------------
class TestScript:
    def test_missing_assets_exit_2(self, tmp_path, capsys):
        from simulations import real_models

        code = real_models.main(["--out", str(tmp_path / "out"), "--cache",
                                 str(tmp_path / "empty"), "--no-progress"])
        assert code == 2
        err = capsys.readouterr().err
        assert FETCH_COMMAND in err and "selfie_segmentation" in err
        assert not (tmp_path / "out").exists()

    def test_plot_only_without_results(self, tmp_path, capsys):
        from simulations import real_models

        assert real_models.main(["--out", str(tmp_path), "--plot-only"]) == 2
        assert "run without --plot-only" in capsys.readouterr().err

    def test_certify_taus_equals_segcertify_with_the_same_seed(self):
        from simulations import real_models

        seg = SelfieSegmenter("m", interpreter_factory=fake_factory())
        x = torch.rand(3, 6, 6)
        kw = {"n0": 5, "n": 30, "alpha": 0.01, "correction": "holm", "batch_size": 12}
        results = real_models.certify_taus(seg, 0.2, x, (0.6, 0.9), seed=7, **kw)
        assert [r.tau for r in results] == [0.6, 0.9]
        for r in results:
            direct = SegCertify(seg, GaussianL2(0.2), num_classes=2, tau=r.tau,
                                **kw).certify(
                x, generator=torch.Generator().manual_seed(7))
            assert torch.equal(r.labels, direct.labels)
            assert r.radius == pytest.approx(direct.radius)
        assert (results[1].labels != ABSTAIN).sum() <= (results[0].labels != ABSTAIN).sum()

    def test_noise_keep_and_tables(self, tmp_path):
        from simulations import real_models

        guesses = torch.tensor([0, 1, 1])
        counts = torch.tensor([10, 8, 2])
        # reference [0, 0, 1]: keep 10/10, 1 - 8/10, 2/10
        assert real_models.noise_keep(guesses, counts, 10, torch.tensor([0, 0, 1])) == \
            pytest.approx((1.0 + 0.2 + 0.2) / 3)
        rows = [{"a": 0.5, "b": "x"}, {"a": float("nan"), "b": 3}]
        real_models.write_table(rows, ("a", "b"), tmp_path / "t", title="T")
        assert (tmp_path / "t.csv").read_text().splitlines() == ["a,b", "0.5000,x", ",3"]
        md = (tmp_path / "t.md").read_text()
        assert md.startswith("### T") and "| 0.5000 | x |" in md


# ---------------------------------------------------------------------------
# end to end on the real files (slow; skipped when they are not cached)
# ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(bool(missing_assets()), reason=f"assets not cached: run `{FETCH_COMMAND}`")
def test_real_end_to_end(tmp_path, capsys):
    pytest.importorskip("ai_edge_litert")
    # the real network on the real photo: nearly all pixels certified at sigma = 0.05
    seg = SelfieSegmenter(max_batch=8)
    x = load_astronaut(256)
    with torch.inference_mode():
        clean = seg(x[None]).argmax(1)[0]
    assert 0.2 < float(clean.double().mean()) < 0.8  # a person fills a good part
    # n = 64 is about the least that certifies anything of 256 x 256 pixels at tau = 0.75
    cert = SegCertify(seg, GaussianL2(0.05), num_classes=2, n0=4, n=64, tau=0.75,
                      alpha=0.01, batch_size=8).certify(
        x, generator=torch.Generator().manual_seed(0))
    assert cert.certified_fraction > 0.8
    assert float((cert.labels[cert.certified] == clean[cert.certified]).double().mean()) > 0.99

    # the real microscopy: labels load, a tiny noisy U-Net beats chance on held-out pixels
    data = load_nuclei()
    assert data.image.shape == (512, 512) and data.num_instances == 125
    image = normalize_percentile(data.image)
    train_x, test_x = split_columns(image)
    train_y, test_y = split_columns(data.foreground)
    model = train_nuclei_model(train_x, train_y,
                               TrainConfig(sigma=0.25, steps=25, crop=64, width=4, depth=2))
    crop = np.ascontiguousarray(test_x[:64, :64])
    cert = SegCertify(model, GaussianL2(0.25), num_classes=2, n0=4, n=60, tau=0.75,
                      alpha=0.01, batch_size=20).certify(
        torch.from_numpy(crop)[None], generator=torch.Generator().manual_seed(0))
    scores = segmentation_scores(cert.labels, test_y[:64, :64])
    assert cert.labels.shape == (64, 64) and scores["accuracy"] > 0.5
    assert segmentation_scores(otsu_segmentation(test_x), test_y)["iou"] > 0.6

    # the script's quick mode writes every table and panel
    from simulations import real_models

    assert real_models.main(["--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    for name in ("selfie_table.csv", "selfie_table.md", "nuclei_table.csv",
                 "nuclei_table.md", "selfie_panel.png", "nuclei_panel.png"):
        assert (tmp_path / name).stat().st_size > 0
    # a rerun keeps the finished experiments (resume); a lost marker reruns only that one
    before = (tmp_path / "nuclei_table.csv").read_bytes()
    (tmp_path / "selfie_done.json").unlink()
    assert real_models.main(["--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "nuclei: finished" in out and "selfie: finished" not in out
    assert (tmp_path / "nuclei_table.csv").read_bytes() == before
