"""Reduced precision, torch.compile and channels_last in SegCertify; dict/tuple outputs."""

from __future__ import annotations

import warnings
from collections import OrderedDict

import pytest
import torch
from torch import nn

import smoothing._precision as P
from samplers import GaussianL2
from smoothing import SegCertify
from smoothing.adapters import OutputSelector, select_output


class Margin(nn.Module):
    """Two classes from the red channel through a 1x1 convolution with logits +-8 at
    red = 0 or 1: on inputs of 0s and 1s with sigma = 0.1 noise no sample comes near the
    decision boundary, so every precision must give the same argmax."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        self.seen: list[torch.dtype] = []
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.zero_()
            self.conv.weight[1, 0] = 16.0
            self.conv.bias[1] = -8.0

    def forward(self, x):
        self.seen.append(x.dtype)
        return self.conv(x)


def _image():
    x = torch.zeros(3, 8, 8)
    x[0, :, 4:] = 1.0
    x[0, 2:4, :2] = 1.0
    return x


def _certify(model, **kw):
    seg = SegCertify(model, GaussianL2(0.1), num_classes=2, n0=10, n=100, tau=0.85,
                     alpha=0.001, batch_size=30, **kw)
    return seg, seg.certify(_image(), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("kw", [
    {"precision": "bfloat16"}, {"precision": "float16"}, {"compile": "eager"},
    {"compile": "aot_eager", "precision": "bfloat16"}, {"channels_last": True},
])
def test_same_labels_and_counts_as_float32(kw):
    _, ref = _certify(Margin())
    model = Margin()
    seg, cert = _certify(model, **kw)
    assert torch.equal(cert.labels, ref.labels) and torch.equal(cert.counts, ref.counts)
    assert cert.certified_fraction == 1.0
    assert set(model.seen) == {torch.float32}  # the noise is added in float32, before autocast
    assert cert.params["precision"] == kw.get("precision", "float32")
    assert cert.params["compile"] == kw.get("compile", False)
    assert isinstance(seg.base_classifier, P.FastForward)
    assert _certify(model)[0].base_classifier is model  # float32 eager: the model itself


def test_reduced_precision_really_runs_reduced():
    out = {}

    class Probe(Margin):
        def forward(self, x):
            out["dtype"] = self.conv(x).dtype
            return super().forward(x)

    _certify(Probe(), precision="bfloat16")
    assert out["dtype"] == torch.bfloat16


@pytest.mark.slow
def test_inductor_compile_same_labels():
    _, ref = _certify(Margin())
    seg, cert = _certify(Margin(), compile=True)
    assert torch.equal(cert.labels, ref.labels) and seg.compiled is True


def test_unsupported_precision_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(P, "_SUPPORTED", {})
    monkeypatch.setattr(torch.amp, "is_autocast_available", lambda device_type: False)
    with pytest.raises(ValueError, match="`precision` 'float16' is not supported on device "
                                         "cpu .*use 'float32' or 'bfloat16'"):
        _certify(Margin(), precision="float16")
    with pytest.raises(ValueError, match="`precision` must be one of"):
        _certify(Margin(), precision="int8")


def test_unsupported_precision_of_a_callable_is_found_at_the_first_batch(monkeypatch):
    monkeypatch.setattr(P, "_SUPPORTED", {})
    monkeypatch.setattr(P, "_probe", lambda device, dtype: "no half kernels here")
    model = Margin()
    seg = SegCertify(lambda x: model(x), GaussianL2(0.1), num_classes=2, n0=4, n=8, tau=0.75,
                     alpha=0.01, batch_size=4, precision="float16")  # no weights: no device
    with pytest.raises(ValueError, match="no half kernels here"):
        seg.certify(_image())


def test_compile_failure_falls_back_with_one_warning(monkeypatch):
    def broken_compile(model, **kw):
        def run(x):
            raise RuntimeError("no C++ compiler found")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    _, ref = _certify(Margin())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seg, cert = _certify(Margin(), compile=True)
    fallbacks = [w for w in caught if issubclass(w.category, P.CompileFallbackWarning)]
    assert len(fallbacks) == 1 and "no C++ compiler found" in str(fallbacks[0].message)
    assert torch.equal(cert.labels, ref.labels)
    assert seg.compiled is False and cert.params["compile"] is False


def test_compile_error_at_construction_falls_back(monkeypatch):
    def refuse(model, **kw):
        raise RuntimeError("backend 'nope' is not registered")

    monkeypatch.setattr(torch, "compile", refuse)
    with pytest.warns(P.CompileFallbackWarning, match="not registered"):
        seg, _ = _certify(Margin(), compile="nope")
    assert seg.compiled is False


def test_the_models_own_error_is_raised_not_a_compile_warning(monkeypatch):
    class Broken(Margin):
        def forward(self, x):
            raise RuntimeError("the model's own bug")

    monkeypatch.setattr(torch, "compile", lambda model, **kw: model)
    with warnings.catch_warnings():
        warnings.simplefilter("error", P.CompileFallbackWarning)
        with pytest.raises(RuntimeError, match="the model's own bug"):
            _certify(Broken(), compile=True)


def test_argument_types():
    with pytest.raises(TypeError, match="`compile` must be a bool"):
        _certify(Margin(), compile=1)
    with pytest.raises(TypeError, match="`channels_last` must be a bool"):
        P.FastForward(Margin(), channels_last="yes")


# ------------------------------------------------------------ dict and tuple outputs
class DictModel(Margin):
    def forward(self, x):
        return OrderedDict(out=super().forward(x), aux=torch.zeros(1))


class TupleModel(Margin):
    def forward(self, x):
        return super().forward(x), None


def test_dict_and_tuple_outputs_are_refused_with_the_key_to_pass():
    with pytest.raises(TypeError, match=r"returns a OrderedDict with keys \['out', 'aux'\].*"
                                        r"OutputSelector\(model, key='out'\).*--output-key out"):
        _certify(DictModel())
    with pytest.raises(TypeError, match=r"returns a tuple of 2 items.*key=0"):
        _certify(TupleModel())


@pytest.mark.parametrize("model, key", [(DictModel(), "out"), (TupleModel(), 0),
                                        (TupleModel(), "0")])
def test_output_selector_certifies_like_the_plain_model(model, key):
    _, ref = _certify(Margin())
    _, cert = _certify(OutputSelector(model, key=key), precision="bfloat16")
    assert torch.equal(cert.labels, ref.labels)


def test_select_output_errors():
    with pytest.raises(ValueError, match=r"output key 'logits' is not in .* \['out'\]"):
        select_output({"out": torch.zeros(1)}, "logits")
    with pytest.raises(ValueError, match="does not index the model's tuple of 2 items"):
        select_output((1, 2), 5)
    with pytest.raises(ValueError, match="drop the output key"):
        select_output(torch.zeros(1), "out")
    with pytest.raises(TypeError, match="`key` must be a string"):
        OutputSelector(nn.Identity(), key=1.5)
