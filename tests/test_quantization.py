"""Weight quantization: PyTorch's fake-quant functions as oracles, edge cases, and the `quantize` verb."""

import math

import pytest
import torch
from conftest import state_checksum

from compression.core.errors import InputError
from compression.models.workbench import Workbench
from compression.quantization import QuantConfig, load_packed, quantize, sensitivity
from compression.quantization.primitives import EPS, choose_qparams, clipped_mask, fake_quantize, quant_range
from compression.quantization.tensors import binarize, grid_levels, quantize_tensor, sqnr_db, ternarize


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8, 12, 16])
@pytest.mark.parametrize("symmetric", [True, False])
def test_per_tensor_equals_torch_fake_quantize(bits, symmetric):
    x = torch.randn(20_000, generator=torch.Generator().manual_seed(bits)) * 3
    qp = choose_qparams(x, bits, symmetric)
    expected = torch.fake_quantize_per_tensor_affine(x, float(qp.scale), int(qp.zero_point), qp.quant_min,
                                                     qp.quant_max)
    assert torch.equal(fake_quantize(x, qp), expected)


@pytest.mark.parametrize("bits", [2, 4, 8, 16])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("axis", [0, 1])
def test_per_channel_equals_torch_fake_quantize(bits, symmetric, axis):
    spread = torch.linspace(0.1, 4, 8)[:, None, None]  # channels of axis 1 with different ranges
    x = torch.randn(16, 8, 3, 3, generator=torch.Generator().manual_seed(axis)) * spread
    qp = choose_qparams(x, bits, symmetric, axis=axis)
    expected = torch.fake_quantize_per_channel_affine(x, qp.scale, qp.zero_point, axis, qp.quant_min, qp.quant_max)
    assert torch.equal(fake_quantize(x, qp), expected)


def test_multiplies_by_inverse_scale_like_pytorch_on_a_million_values():
    # x / scale and x * (1 / scale) round differently in a handful of cases; we must side with PyTorch.
    x = torch.randn(1_000_000, generator=torch.Generator().manual_seed(1))
    qp = choose_qparams(x, 8, True)
    assert torch.equal(fake_quantize(x, qp),
                       torch.fake_quantize_per_tensor_affine(x, float(qp.scale), 0, qp.quant_min, qp.quant_max))


@pytest.mark.parametrize("bits", [0, 17, -1, 2.5, True])
def test_bits_outside_1_to_16_are_refused(bits):
    with pytest.raises(InputError, match="bits"):
        QuantConfig(bits=bits)


def test_bad_config_values_are_refused():
    with pytest.raises(InputError, match="scheme"):
        QuantConfig(scheme="log")
    with pytest.raises(InputError, match="percentile"):
        QuantConfig(range_method="percentile", percentile=20)
    with pytest.raises(InputError, match="fc9"):
        QuantConfig(layer_bits={"fc9.weight": 0})


@pytest.mark.parametrize("value", [0.0, 0.37, -2.0])
@pytest.mark.parametrize("symmetric", [True, False])
def test_constant_and_all_zero_tensors_give_finite_exact_results(value, symmetric):
    x = torch.full((4, 5), value)
    for axis in (None, 0):
        qp = choose_qparams(x, 4, symmetric, axis=axis)
        out = fake_quantize(x, qp)
        assert torch.isfinite(out).all() and torch.all(qp.scale > 0)
        assert torch.allclose(out, x, atol=abs(value) / 7 + 1e-6)
    binary = binarize(torch.zeros(3, 3), 0).dequantize()
    assert torch.isfinite(binary).all() and binary.abs().max() <= EPS  # ±eps: binary has no zero level
    assert torch.equal(ternarize(torch.zeros(3, 3), 0).dequantize(), torch.zeros(3, 3))


def test_nan_or_inf_weights_are_refused_with_a_clear_message():
    for bad in (math.nan, math.inf):
        x = torch.ones(3, 3)
        x[1, 1] = bad
        with pytest.raises(InputError, match="NaN or Inf"):
            choose_qparams(x, 4)


def test_grid_has_2_to_the_bits_levels_and_holds_zero():
    x = torch.randn(50, 20)
    for bits in (2, 3, 5):
        qt = quantize_tensor(x, bits, QuantConfig(bits=bits, scheme="asymmetric"))
        levels = grid_levels(qt)
        assert len(levels) == 2 ** bits and 0.0 in levels
        assert set(qt.dequantize()[int(torch.argmax(qt.qparams.scale))].tolist()) <= set(levels)


def test_percentile_clips_outliers_and_mse_beats_min_max():
    x = torch.randn(4000, generator=torch.Generator().manual_seed(0))
    x[0] = 40.0  # one outlier stretches the min-max grid
    minmax = choose_qparams(x, 4, True)
    pct = choose_qparams(x, 4, True, range_method="percentile", percentile=99.0)
    mse = choose_qparams(x, 4, True, range_method="mse")
    assert clipped_mask(x, pct).sum() > 0 and clipped_mask(x, minmax).sum() == 0
    err = lambda qp: (fake_quantize(x, qp) - x).pow(2).sum()  # noqa: E731
    assert err(mse) < err(minmax)


def test_binary_is_sign_times_mean_abs_per_channel():
    w = torch.tensor([[1.0, -3.0, 2.0], [-0.5, 0.5, 0.0]])
    out = binarize(w, axis=0).dequantize()
    assert torch.equal(out, torch.tensor([[2.0, -2.0, 2.0], [-1 / 3, 1 / 3, 1 / 3]]))


def test_ternary_has_three_levels_and_zeroes_small_weights():
    w = torch.tensor([[1.0, -1.0, 0.05, 0.9]])
    out = ternarize(w, axis=0).dequantize()
    assert out[0, 2] == 0 and out[0, 0] == -out[0, 1] > 0 and len(set(out.flatten().tolist())) == 3


def test_quant_range_and_sqnr():
    assert quant_range(8, True) == (-128, 127) and quant_range(8, False) == (0, 255)
    x = torch.randn(1000)
    assert sqnr_db(x, x) == math.inf
    assert sqnr_db(x, fake_quantize(x, choose_qparams(x, 8))) > sqnr_db(x, fake_quantize(x, choose_qparams(x, 4)))


def test_quantize_returns_new_weights_and_never_mutates_the_model(zoo):
    model = zoo("mlp")
    before = state_checksum(model.module)
    result = quantize(model, QuantConfig(bits=4))
    assert state_checksum(model.module) == before
    assert abs(result.accuracy - result.baseline_accuracy) <= 0.01  # PTQ 4-bit per-channel: within 1 point
    new = result.to_model()
    assert new.module is not model.module
    assert torch.equal(new.module.fc1.weight, result.weights["fc1.weight"])
    assert result.size_bytes * 5 <= result.baseline_size_bytes  # 4-bit codes plus a safetensors header of ~1 KiB
    assert set(result.to_dict()) >= {"config", "accuracy", "baseline_accuracy", "bits", "size_bytes",
                                     "baseline_size_bytes"}


def test_packed_file_decodes_to_identical_outputs(zoo):
    model = zoo("mlp")
    result = quantize(model, QuantConfig(bits=3, scheme="asymmetric"))
    decoded = load_packed(result.packed)
    rebuilt = result.to_model().module
    for name, tensor in rebuilt.state_dict().items():
        assert torch.equal(decoded[name], tensor)
    x = model.dataset.x_test
    clone = result.to_model().module
    clone.load_state_dict(decoded)
    assert torch.equal(clone(x), rebuilt(x))


def test_mixed_precision_and_sensitivity(zoo):
    model = zoo("mlp")
    bench = Workbench(model)
    config = QuantConfig(bits=8, layer_bits={"fc2.weight": 2})
    result = quantize(model, config, bench)
    assert [layer.bits for layer in result.layers] == [8, 2]
    rows = sensitivity(model, config, bench)
    assert [r.layer for r in rows] == ["fc1.weight", "fc2.weight"]
    assert rows[0].sqnr_db > rows[1].sqnr_db
    with pytest.raises(InputError, match="fc9"):
        quantize(model, QuantConfig(layer_bits={"fc9.weight": 4}), bench)


def test_quantize_refuses_nan_weights(zoo):
    from compression.models.workbench import with_weights

    model = zoo("mlp")
    bad = model.weights()["fc1.weight"].clone()
    bad[0, 0] = math.nan
    with pytest.raises(InputError, match="fc1.weight"):
        quantize(with_weights(model, {"fc1.weight": bad}), QuantConfig(bits=4))


def test_the_first_mixed_precision_proposal_trades_bits_between_layers():
    from compression.quantization.ptq import LayerSensitivity, propose_bits

    rows = [LayerSensitivity("a", 4, 20.0, 0.90, 0.05), LayerSensitivity("b", 4, 30.0, 0.95, 0.00),
            LayerSensitivity("c", 4, 25.0, 0.95, 0.00)]
    assert propose_bits(rows, 4) == {"a": 5, "c": 5, "b": 3}  # a tie on accuracy: the lower SQNR is more sensitive
    assert propose_bits(rows[:1], 4) == {"a": 4}  # one layer: nothing to trade
    assert propose_bits(rows[:2], 16) == {"a": 16, "b": 15} and propose_bits(rows[:2], 1) == {"a": 2, "b": 1}
