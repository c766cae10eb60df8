"""Model adapters and output layouts, alone and inside SegCertify."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from samplers import GaussianL2
from smoothing import (
    Averaged,
    Denoised,
    ImageSegmenter,
    MultiScale,
    PointCloudSegmenter,
    SegCertify,
)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def certify(model, x, *, num_classes, sampler=None, layout="auto", gen=None, **kw):
    sampler = sampler or GaussianL2(0.1)
    args = dict(num_classes=num_classes, n0=5, n=100, tau=0.75, alpha=0.01, batch_size=32)
    args.update(kw)
    return SegCertify(model, sampler, layout=layout, **args).certify(x, generator=gen)


class TinyPointNet(nn.Module):
    """(B, N, 3) -> (B, N, C): a per-point linear map plus a max-pooled global feature."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.local = nn.Linear(3, 8)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        h = torch.relu(self.local(x))
        g = h.amax(dim=1, keepdim=True).expand_as(h)
        return self.head(torch.cat([h, g], dim=-1))


def test_image_segmenter_normalises_permutes_and_resizes():
    conv = nn.Conv2d(3, 4, 1)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.5]
    seg = ImageSegmenter(conv, mean=mean, std=std)
    x = torch.rand(2, 3, 6, 7)
    ref = conv((x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None])
    torch.testing.assert_close(seg(x), ref)
    assert seg.layout == "BCHW"

    class ChannelsLast(nn.Module):
        def forward(self, x):
            return conv(x).permute(0, 2, 3, 1)

    torch.testing.assert_close(ImageSegmenter(ChannelsLast(), layout="BHWC")(x), conv(x))
    strided = ImageSegmenter(nn.Conv2d(3, 4, 2, stride=2), resize=True)
    assert strided(torch.rand(1, 3, 9, 10)).shape == (1, 4, 9, 10)


def test_point_cloud_segmenter_layouts():
    net = TinyPointNet()
    x = torch.randn(2, 30, 3)
    seg = PointCloudSegmenter(net)
    torch.testing.assert_close(seg(x), net(x))

    class ChannelsFirst(nn.Module):  # (B, 3, N) -> (B, C, N), as the PointNet++ code
        def forward(self, x):
            return net(x.transpose(1, 2)).transpose(1, 2)

    wrapped = PointCloudSegmenter(ChannelsFirst(), layout="BCN", channels_first=True)
    torch.testing.assert_close(wrapped(x), net(x))
    assert wrapped.layout == "BNC"


def test_averaged_means_probabilities_of_every_run():
    class Counter(nn.Module):
        layout = "BNC"

        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return torch.randn(x.shape[0], x.shape[1], 5, generator=torch.Generator()
                               .manual_seed(self.calls))

    model = Counter()
    out = Averaged(model, runs=3)(torch.zeros(2, 4, 3))
    ref = sum(torch.randn(2, 4, 5, generator=torch.Generator().manual_seed(s)).softmax(-1)
              for s in (1, 2, 3)) / 3
    assert model.calls == 3
    torch.testing.assert_close(out, ref)
    model.calls = 0
    logits = Averaged(model, runs=2, average="logits")(torch.zeros(2, 4, 3))
    ref = sum(torch.randn(2, 4, 5, generator=torch.Generator().manual_seed(s))
              for s in (1, 2)) / 2
    torch.testing.assert_close(logits, ref)


def test_multiscale_averages_resized_probabilities():
    conv = nn.Conv2d(3, 4, 1)  # 1x1: commutes with flips
    x = torch.rand(1, 3, 12, 16)
    torch.testing.assert_close(MultiScale(conv, scales=(1.0,))(x), conv(x).softmax(1))
    torch.testing.assert_close(MultiScale(conv, scales=(1.0,), flip=True)(x),
                               conv(x).softmax(1))
    half = F.interpolate(x, size=(6, 8), mode="bilinear", align_corners=False)
    up = F.interpolate(conv(half).softmax(1), size=(12, 16), mode="bilinear",
                       align_corners=False)
    torch.testing.assert_close(MultiScale(conv, scales=(0.5, 1.0))(x),
                               (up + conv(x).softmax(1)) / 2)
    assert MultiScale(conv, scales=(0.75, 1.25))(torch.rand(2, 3, 9, 11)).shape == (2, 4, 9, 11)


def test_denoised_composes_in_order():
    calls = []

    class Tag(nn.Module):
        def __init__(self, name, fn):
            super().__init__()
            self.name, self.fn = name, fn

        def forward(self, x):
            calls.append(self.name)
            return self.fn(x)

    den = Denoised(Tag("denoiser", lambda x: x * 0), ImageSegmenter(Tag("model", lambda x: x)))
    out = den(torch.ones(1, 3, 2, 2))
    assert calls == ["denoiser", "model"] and (out == 0).all() and den.layout == "BCHW"


@pytest.mark.parametrize("bad,match", [
    (lambda: ImageSegmenter(lambda x: x), "`model` must be a torch.nn.Module"),
    (lambda: ImageSegmenter(nn.Identity(), layout="BNC"), "`layout` must be 'BCHW' or 'BHWC'"),
    (lambda: ImageSegmenter(nn.Identity(), mean=[0.5]), "both `mean` and `std`"),
    (lambda: ImageSegmenter(nn.Identity(), mean=[0.5], std=[0.0]), "std > 0"),
    (lambda: PointCloudSegmenter(nn.Identity(), layout="BCHW"), "'BNC' or 'BCN'"),
    (lambda: Averaged(nn.Identity()), "needs the layout"),
    (lambda: Averaged(nn.Identity(), runs=0, layout="BNC"), "`runs`"),
    (lambda: Averaged(nn.Identity(), layout="BNC", average="median"), "`average`"),
    (lambda: MultiScale(nn.Identity(), scales=()), "`scales`"),
    (lambda: MultiScale(nn.Identity(), scales=(0.5, -1.0)), "`scales`"),
    (lambda: MultiScale(PointCloudSegmenter(nn.Identity()), scales=(1.0,)), "MultiScale needs"),
])
def test_adapter_errors(bad, match):
    with pytest.raises((TypeError, ValueError), match=match):
        bad()


# ---------------------------------------------------------------------------
# inside SegCertify
# ---------------------------------------------------------------------------
def test_point_cloud_models_in_both_layouts_give_the_same_certificate():
    net = TinyPointNet().eval()
    pts = torch.randn(40, 3)
    sampler = GaussianL2(0.05, point_cloud=True)

    def run(model, layout):
        return certify(model, pts, num_classes=4, sampler=sampler, layout=layout,
                       gen=torch.Generator().manual_seed(4))

    class ChannelsFirst(nn.Module):
        def forward(self, x):
            return net(x).transpose(1, 2)

    ref = run(net, "BNC")
    assert ref.labels.shape == (40,)
    for model, layout in [(net, "auto"), (PointCloudSegmenter(net), "auto"),
                          (ChannelsFirst(), "BCN"), (ChannelsFirst(), "auto"),
                          (PointCloudSegmenter(ChannelsFirst(), layout="BCN"), "auto")]:
        cert = run(model, layout)
        assert torch.equal(cert.labels, ref.labels) and torch.equal(cert.counts, ref.counts)
    assert run(ChannelsFirst(), "auto").params["layout"] == "BCN"


def test_ambiguous_point_cloud_layout_raises():
    pts = torch.zeros(4, 3)

    def square(x):  # (B, 4, 4): N == C, cannot tell
        return torch.zeros(x.shape[0], 4, 4)

    with pytest.raises(ValueError, match="cannot tell whether"):
        certify(square, pts, num_classes=4, sampler=GaussianL2(0.1, point_cloud=True))
    cert = certify(square, pts, num_classes=4, sampler=GaussianL2(0.1, point_cloud=True),
                   layout="BNC")
    assert (cert.labels == 0).all()


def test_channels_last_image_models(gen):
    conv = nn.Conv2d(3, 2, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.copy_(torch.tensor([0.0, 3.0]))

    def bhwc(x):
        return conv(x).permute(0, 2, 3, 1)

    x = torch.zeros(3, 5, 6)
    a = certify(bhwc, x, num_classes=2, layout="BHWC", gen=gen)
    b = certify(ImageSegmenter(conv), x, num_classes=2, gen=gen)
    assert a.labels.shape == b.labels.shape == (5, 6)
    assert (a.labels == 1).all() and (b.labels == 1).all()
    with pytest.raises(ValueError, match="classes in dimension 1"):
        certify(bhwc, x, num_classes=2)  # undeclared: read as BCHW, which it is not


def test_adapters_certify_end_to_end(gen):
    conv = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[2, 0] = 10.0  # class 2 where the red channel is large
        conv.bias.copy_(torch.tensor([0.0, 1.0, -5.0]))
    x = torch.zeros(3, 8, 8)
    x[0, :, :4] = 1.0
    for model in [MultiScale(conv, scales=(0.5, 1.0), flip=True),
                  Averaged(ImageSegmenter(conv), runs=2),
                  Denoised(nn.Identity(), conv)]:
        cert = certify(model, x, num_classes=3, gen=gen)
        assert (cert.labels[:, :3] == 2).all() and (cert.labels[:, 5:] == 1).all()
