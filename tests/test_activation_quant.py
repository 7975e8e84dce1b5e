"""Static PTQ of weights and activations: observers, calibration, and a new fake-quantized model."""

import math

import pytest
import torch
from conftest import state_checksum

from compression.core.errors import InputError
from compression.models.loading import LoadedModel
from compression.quantization.activations import ActivationQuantConfig, Observer, quantize_activations
from compression.quantization.ptq import QuantConfig


def _observe(observer: str, batches) -> tuple[float, float]:
    obs = Observer(ActivationQuantConfig(observer=observer, percentile=90.0))
    for b in batches:
        obs.observe(b)
    qp = obs.qparams()
    return (qp.quant_min - int(qp.zero_point)) * float(qp.scale), (qp.quant_max - int(qp.zero_point)) * float(qp.scale)


def test_observers_see_ranges_differently():
    batches = [torch.linspace(0, 1, 100), torch.linspace(0, 1, 100) * 10]
    lo, hi = _observe("min-max", batches)
    assert lo == 0 and hi == pytest.approx(10, rel=1e-6)
    _, hi_avg = _observe("moving-average", batches)
    assert hi_avg == pytest.approx(1 + 0.01 * 9, rel=1e-5)  # PyTorch's averaging constant 0.01
    _, hi_pct = _observe("percentile", batches)
    assert 1 < hi_pct < 10


def test_calibration_with_one_sample_is_well_defined(zoo):
    model = zoo("mlp")
    before = state_checksum(model.module)
    result = quantize_activations(model, ActivationQuantConfig(calibration_batches=1, batch_size=1))
    assert result.calibration_samples == 1
    assert all(math.isfinite(r.scale) and r.scale > 0 for r in result.ranges)
    assert 0.0 <= result.accuracy <= 1.0
    assert state_checksum(model.module) == before
    assert result.model.module is not model.module


def test_more_activation_bits_lose_less(zoo):
    model = zoo("mlp")
    weights = QuantConfig(bits=8)
    high = quantize_activations(model, ActivationQuantConfig(weights, activation_bits=16))
    low = quantize_activations(model, ActivationQuantConfig(weights, activation_bits=2))
    assert abs(high.accuracy - high.weight_only_accuracy) <= 0.003
    assert low.accuracy < high.accuracy
    assert [r.layer for r in high.ranges] == ["fc1", "fc2"]
    x = model.dataset.x_test[:5]
    assert not torch.equal(low.model.module(x), high.model.module(x))  # the hooks are really in the new model


def test_bad_settings_and_onnx_are_refused(zoo):
    with pytest.raises(InputError, match="activation_bits"):
        ActivationQuantConfig(activation_bits=0)
    with pytest.raises(InputError, match="observer"):
        ActivationQuantConfig(observer="histogram")
    with pytest.raises(InputError, match="at least one"):
        ActivationQuantConfig(calibration_batches=0)
    with pytest.raises(InputError, match="PyTorch model"):
        quantize_activations(LoadedModel("m.onnx", "onnx", zoo("mlp").dataset), ActivationQuantConfig())
