"""Quantization-aware training: the straight-through estimator, fp32 master weights, the fp32 control, cancel."""

import torch
from conftest import drain, state_checksum

from compression.quantization import QuantConfig
from compression.quantization.tensors import quantize_tensor
from compression.quantization.qat_training import FakeQuantSTE, QATConfig, fp32_control, qat, qat_with_control
from compression.training import TrainConfig


def test_straight_through_estimator_rounds_forward_and_passes_gradients():
    config = QuantConfig(bits=3)
    w = torch.randn(4, 6, requires_grad=True)
    out = FakeQuantSTE(config, 3)(w)
    assert torch.equal(out, quantize_tensor(w.detach(), 3, config).dequantize())
    upstream = torch.randn(4, 6)
    out.backward(upstream)
    assert torch.equal(w.grad, upstream)


def test_qat_recovers_2_bit_accuracy_and_keeps_fp32_master_weights(zoo):
    model = zoo("mlp")
    before = state_checksum(model.module)
    config = QATConfig(QuantConfig(bits=2), TrainConfig(epochs=3, lr=1e-3))
    steps, result = drain(qat(model, config))
    assert steps and steps[-1].test_accuracy is not None
    assert result.accuracy > result.ptq_accuracy + 0.05  # PTQ at 2 bits loses far more
    assert state_checksum(model.module) == before
    master = result.master.module.fc1.weight
    assert not hasattr(result.master.module.fc1, "parametrizations")  # plain module again
    assert len(torch.unique(master)) > 4  # fp32 master weights, not the 4-level grid
    on_grid = result.quantized.weights["fc1.weight"]
    assert all(len(torch.unique(row)) <= 4 for row in on_grid)  # per-channel 2-bit grid: at most 4 values per row


def test_control_and_comparison(zoo):
    model = zoo("mlp")
    config = QATConfig(QuantConfig(bits=3), TrainConfig(epochs=1))
    _, control = drain(fp32_control(model, config))
    assert 0 < control.accuracy <= 1 and 0 < control.ptq_accuracy <= 1
    steps, both = drain(qat_with_control(model, config))
    assert [s.run for s in steps][0] == "QAT" and [s.run for s in steps][-1] == "fp32 control"
    assert set(both.to_dict()) == {"qat", "control"}


def test_cancel_mid_run_leaves_the_model_alone(zoo):
    model = zoo("mlp")
    before = state_checksum(model.module)
    run = qat_with_control(model, QATConfig(QuantConfig(bits=2), TrainConfig(epochs=5)))
    next(run)
    run.close()  # what pages/jobs.Job does on Cancel
    assert state_checksum(model.module) == before
