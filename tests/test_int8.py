"""Real int8 deployment: a working, smaller model behind our own backend interface."""

import warnings

import pytest
import torch
from conftest import state_checksum

from compression.core.errors import InputError
from compression.models.loading import LoadedModel
from compression.quantization.int8 import (
    DEFAULT_BACKEND,
    Int8Config,
    TorchAOQuantization,
    convert_int8,
    deploy_int8,
)


@pytest.mark.parametrize("name, mode", [("mlp", "dynamic"), ("cnn", "static")])
def test_int8_model_works_and_its_file_is_smaller(zoo, name, mode):
    model = zoo(name)
    before = state_checksum(model.module)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # torch.ao's deprecation warnings stay inside
        result = deploy_int8(model, Int8Config(mode=mode, batch_size=64, repeats=3))
    assert state_checksum(model.module) == before
    assert result.accuracy >= result.baseline_accuracy - 0.02
    assert result.measure.size_bytes * 2 < result.measure.baseline_size_bytes
    assert result.measure.latency_ms > 0 and result.measure.baseline_latency_ms > 0
    kinds = {type(m).__module__ for m in result.model.modules()}
    assert any("quantized" in k for k in kinds)  # really int8 modules, not fake quantization
    assert set(result.to_dict()) >= {"accuracy", "baseline_accuracy", "size_bytes", "latency_ms", "speedup"}


def test_the_backend_can_be_replaced(zoo):
    calls = []

    class Recording(TorchAOQuantization):
        def __init__(self):
            super().__init__()
            self.name = "recording"

        def quantize_dynamic(self, module):
            calls.append("dynamic")
            return super().quantize_dynamic(module)

    result = deploy_int8(zoo("mlp"), Int8Config(batch_size=16, repeats=2), backend=Recording())
    assert calls == ["dynamic"] and result.measure.backend == "recording"


def test_refusals():
    with pytest.raises(InputError, match="mode"):
        Int8Config(mode="int4")
    with pytest.raises(InputError, match="calibration"):
        convert_int8(torch.nn.Linear(2, 2), "static", None, DEFAULT_BACKEND)


def test_onnx_models_are_refused_with_a_reason(zoo):
    onnx_like = LoadedModel("m.onnx", "onnx", zoo("mlp").dataset)
    with pytest.raises(InputError, match="PyTorch model"):
        deploy_int8(onnx_like, Int8Config())


def test_another_quantized_engine_runs_under_its_own_engine(zoo):
    model = zoo("mlp")
    default = torch.backends.quantized.engine
    backend = TorchAOQuantization("onednn")
    result = deploy_int8(model, Int8Config(batch_size=16, repeats=2), backend=backend)
    assert torch.backends.quantized.engine == default  # restored after converting and after running
    assert result.accuracy >= result.baseline_accuracy - 0.02 and "onednn" in result.measure.backend
    with pytest.raises(InputError, match="not available"):
        TorchAOQuantization("tpu")
