import io
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from compression.core.errors import InputError
from compression.metrics import evaluate
from compression.models.loading import load_onnx_with_data
from compression.models.onnx import load_onnx


def _export(module, example, dynamo: bool) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:  # today's default exporter (torch.export based), recent opset
            program = torch.onnx.export(module, (example,), dynamo=True, verbose=False,
                                        dynamic_shapes=({0: torch.export.Dim("batch")},))
            program.save(buffer)
        else:
            torch.onnx.export(module, (example,), buffer, dynamo=False, input_names=["x"],
                              dynamic_axes={"x": {0: "batch"}})
    return buffer.getvalue()


def _npz(x, y) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=y)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def cnn_onnx(zoo):
    model = zoo("cnn")
    return model, _export(model.module, model.dataset.x_test[:2], dynamo=True)


def test_onnx_from_todays_exporter_matches_torch_accuracy(cnn_onnx):
    model, raw = cnn_onnx
    assert onnx.load_from_string(raw).opset_import[0].version >= 18
    data = model.dataset
    loaded = load_onnx_with_data(raw, "cnn.onnx", _npz(data.x_test.numpy(), data.y_test.numpy()), "eval.npz")
    assert loaded.evaluate().accuracy == pytest.approx(evaluate(model.module, data.x_test, data.y_test).accuracy)
    weights = loaded.weights()
    assert len(weights) == 4 and all(w.ndim >= 2 for w in weights.values())


def test_onnx_weights_can_be_swapped_in_without_reexport(cnn_onnx):
    model, raw = cnn_onnx
    onnx_model = load_onnx(raw, "cnn.onnx")
    zeroed = {k: torch.zeros_like(v) for k, v in onnx_model.weights().items()}
    logits = onnx_model.logits(model.dataset.x_test[:5], zeroed)
    assert torch.allclose(logits, logits[0].expand_as(logits))  # no weights: every input gives the same output


def test_legacy_exporter_mlp_works(zoo):
    model = zoo("mlp")
    raw = _export(model.module, model.dataset.x_test[:2], dynamo=False)
    data = model.dataset
    loaded = load_onnx_with_data(raw, "mlp.onnx", _npz(data.x_test.numpy(), data.y_test.numpy()), "eval.npz")
    assert loaded.evaluate().accuracy == pytest.approx(evaluate(model.module, data.x_test, data.y_test).accuracy)


def _graph_with(op_type: str, domain: str = "") -> bytes:
    node = helper.make_node(op_type, ["x"], ["y"], domain=domain)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 10])])
    opsets = [helper.make_opsetid("", 18)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def test_unsupported_ops_are_named():
    with pytest.raises(InputError, match="com.example::Mystery"):
        load_onnx(_graph_with("Mystery", "com.example"), "custom.onnx")
    with pytest.raises(InputError, match="HardSwish"):
        load_onnx(_graph_with("HardSwish"), "hs.onnx")


def test_corrupt_and_truncated_onnx_are_refused(cnn_onnx):
    _, raw = cnn_onnx
    for data in (b"not an onnx file at all", raw[: len(raw) // 3], b""):
        with pytest.raises(InputError):
            load_onnx(data, "bad.onnx")


def test_evaluation_data_must_fit_the_model(cnn_onnx):
    _, raw = cnn_onnx
    with pytest.raises(InputError, match="shape"):
        load_onnx_with_data(raw, "cnn.onnx", _npz(np.zeros((4, 64), np.float32), np.arange(4)), "flat.npz")
    with pytest.raises(InputError, match="labels"):
        load_onnx_with_data(raw, "cnn.onnx", _npz(np.zeros((2, 1, 8, 8), np.float32), np.array([0, 12])), "y.npz")
