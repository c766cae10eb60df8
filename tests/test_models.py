"""Base models, the registry of built-in models, and checkpoint I/O."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from smoothing.datasets import STREET_CLASSES, SyntheticParts, SyntheticStreets, part_mask
from smoothing.models import (
    ARCHITECTURES,
    BUILTIN_MODELS,
    CategoryMasked,
    PointNetSeg,
    SmallUNet,
    build_model,
    checkpoint_path,
    get_model_spec,
    list_models,
    load_checkpoint,
    load_model,
    save_checkpoint,
)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture(autouse=True)
def _seeded_init():
    # model initialisation draws from torch's global generator; pin it per test
    torch.manual_seed(0)


# ------------------------------------------------------------------- architectures


@pytest.mark.parametrize(("h", "w"), [(64, 128), (31, 45), (16, 16)])
def test_unet_output_shape(h, w, gen):
    model = SmallUNet(num_classes=5, width=4).eval()
    out = model(torch.rand(2, 3, h, w, generator=gen))
    assert out.shape == (2, 5, h, w) and out.dtype == torch.float32


def test_unet_depth_and_validation():
    assert SmallUNet(num_classes=3, width=4, depth=3)(torch.rand(1, 3, 20, 20)).shape == (
        1, 3, 20, 20,
    )  # fmt: skip
    with pytest.raises(ValueError, match="`num_classes`"):
        SmallUNet(num_classes=0)
    with pytest.raises(ValueError, match="`depth`"):
        SmallUNet(num_classes=2, depth=0)


@pytest.mark.parametrize("in_channels", [3, 6])
def test_pointnet_output_shape_and_permutation_equivariance(in_channels, gen):
    model = PointNetSeg(num_classes=50, in_channels=in_channels, width=8).eval()
    x = torch.randn(3, 257, in_channels, generator=gen)
    out = model(x)
    assert out.shape == (3, 257, 50)
    perm = torch.randperm(257, generator=gen)
    torch.testing.assert_close(model(x[:, perm]), out[:, perm], atol=1e-5, rtol=1e-5)


def test_pointnet_validation():
    with pytest.raises(ValueError, match="`in_channels`"):
        PointNetSeg(in_channels=4)
    with pytest.raises(ValueError, match=r"`x` must have shape \(B, N, 3\)"):
        PointNetSeg(in_channels=3).eval()(torch.zeros(1, 10, 6))


def test_category_masked_restricts_predictions(gen):
    model = PointNetSeg(in_channels=3, width=4).eval()
    masked = CategoryMasked(model, parts=(47, 48, 49))
    logits = masked(torch.randn(2, 100, 3, generator=gen))
    assert set(logits.argmax(-1).unique().tolist()) <= {47, 48, 49}
    assert torch.isinf(logits[..., :47]).all() and torch.isfinite(logits[..., 47:]).all()
    with pytest.raises(ValueError, match="`parts`"):
        CategoryMasked(model, parts=[])


# ------------------------------------------------------------------- checkpoint I/O


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_checkpoint_round_trip(arch, tmp_path, gen):
    model = build_model(arch, num_classes=7, width=4).eval()
    x = torch.rand(2, 3, 12, 12, generator=gen) if arch == "unet" else torch.randn(2, 40, 3)
    path = save_checkpoint(model, tmp_path / "m.pt", metadata={"sigma": 0.5}, half=False)
    loaded = load_checkpoint(path, arch=arch, num_classes=7)
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.metadata == {"sigma": 0.5, "num_classes": 7}
    torch.testing.assert_close(loaded(x), model(x), atol=0, rtol=0)
    # float16 storage: close, not equal
    half = load_checkpoint(save_checkpoint(model, tmp_path / "h.pt"))
    torch.testing.assert_close(half(x), model(x), atol=5e-2, rtol=5e-2)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_plain_state_dict_infers_the_layer_sizes(arch, tmp_path):
    kwargs = {"num_classes": 9, "in_channels": 6, "width": 5}
    if arch == "unet":
        kwargs["depth"] = 3
    model = build_model(arch, **kwargs)
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    loaded = load_checkpoint(tmp_path / "plain.pt", arch=arch)
    assert loaded.arch_kwargs() == model.arch_kwargs()
    torch.save({"state_dict": model.state_dict()}, tmp_path / "wrapped.pt")
    assert load_checkpoint(tmp_path / "wrapped.pt", arch=arch).arch_kwargs() == kwargs


def test_checkpoint_errors(tmp_path):
    model = build_model("unet", num_classes=8, width=4)
    path = save_checkpoint(model, tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"`num_classes` is 19 .* 8 output classes"):
        load_checkpoint(path, num_classes=19)
    with pytest.raises(ValueError, match="`arch` is 'pointnet'"):
        load_checkpoint(path, arch="pointnet")
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="`arch` is required"):
        load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="`num_classes` is 50"):
        load_checkpoint(tmp_path / "plain.pt", arch="unet", num_classes=50)
    with pytest.raises(ValueError, match="does not look like a 'pointnet'"):
        load_checkpoint(tmp_path / "plain.pt", arch="pointnet")
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt", arch="unet")
    with pytest.raises(TypeError, match="`metadata`"):
        save_checkpoint(model, tmp_path / "x.pt", metadata={"bad": object()})
    with pytest.raises(TypeError, match="`model`"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "x.pt")


# ------------------------------------------------------------------------ registry


def test_registry_lookup():
    assert set(list_models()) == set(BUILTIN_MODELS)
    sigmas = {get_model_spec(n).sigma for n in list_models() if n.startswith("streets")}
    assert sigmas == {0.0, 0.25, 0.5}
    with pytest.raises(ValueError, match="`name` must be one of"):
        get_model_spec("resnet")
    with pytest.raises(ValueError, match="`name`"):
        load_model("resnet")


@pytest.mark.parametrize("name", sorted(BUILTIN_MODELS))
def test_builtin_checkpoints_ship_and_load(name):
    spec = get_model_spec(name)
    path = checkpoint_path(name)
    assert path.is_file(), f"{path} missing: run simulations/train_base_models.py"
    assert path.stat().st_size < 1_000_000
    model = load_model(name)
    assert model.metadata["sigma"] == spec.sigma
    assert model.metadata["input_layout"] == spec.input_layout
    assert model.metadata["num_classes"] == spec.num_classes
    shape = {"image": (1, 3, 32, 64), "points": (1, 64, 3), "points+normals": (1, 64, 6)}
    out = model(torch.rand(shape[spec.input_layout]))
    assert out.shape[1 if spec.input_layout == "image" else -1] == spec.num_classes


@torch.no_grad()
def test_shipped_image_model_beats_chance(gen):
    model = load_model("streets-unet-sigma0.25")
    images, labels = zip(*SyntheticStreets(4, split="test", seed=99), strict=True)
    x, y = torch.stack(images), torch.stack(labels)
    majority = float((y == y.flatten().mode().values).float().mean())
    clean = float((model(x).argmax(1) == y).float().mean())
    noisy = float(
        (model(x + 0.25 * torch.randn(x.shape, generator=gen)).argmax(1) == y).float().mean()
    )
    assert 1 / len(STREET_CLASSES) < majority < 0.5
    assert clean > 0.8 and noisy > 0.8


@torch.no_grad()
def test_shipped_point_model_beats_chance(gen):
    model = load_model("parts-pointnet-normals-sigma0.25")
    items = [SyntheticParts(12, split="test", seed=99)[i] for i in range(12)]
    x = torch.stack([p for p, _, _ in items])
    y = torch.stack([lab for _, lab, _ in items])
    masks = torch.from_numpy(np.stack([part_mask(c) for _, _, c in items]))
    noise = 0.25 * torch.randn(x.shape, generator=gen)
    noise[..., 3:] = 0
    logits = model(x + noise).masked_fill(~masks[:, None, :], float("-inf"))
    accuracy = float((logits.argmax(-1) == y).float().mean())
    # always predicting the category's largest part would score about 0.65 here
    majority = np.mean([np.bincount(lab.numpy()).max() / len(lab) for _, lab, _ in items])
    assert accuracy > 0.85 and accuracy > majority + 0.15
