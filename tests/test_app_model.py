"""AppTest of the Model page and the shared sidebar (no browser)."""

import io
import json

import numpy as np
import pytest
import torch
from conftest import ROOT, onnx_upload, state_checksum
from safetensors.torch import save as st_save
from streamlit.testing.v1 import AppTest

from compression.metrics import layer_table
from compression.models.architectures import MLP
from compression.models.zoo import ZOO


def app(model: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["model"] = model
    return at.run()


def histogram_title(at: AppTest) -> str:
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return spec["layout"]["title"]["text"]


@pytest.mark.parametrize("name", ZOO)
def test_every_zoo_model_shows_its_facts(name, zoo, request):
    if name == "lenet-300-100":
        request.getfixturevalue("fashion_available")
    zoo(name)
    at = app(name)
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Accuracy (held-out)"].endswith("%")
    assert int(metrics["Parameters"].replace(",", "")) == sum(p.numel() for p in zoo(name).module.parameters())
    assert list(at.dataframe[0].value["layer"]) == [r.layer for r in layer_table(zoo(name).module)]


def test_layer_selector_changes_the_histogram(zoo):
    zoo("cnn")
    at = app("cnn")
    assert histogram_title(at).startswith(at.selectbox(key="layer").value)
    at.selectbox(key="layer").set_value("conv1.weight").run()
    assert not at.exception
    assert histogram_title(at).startswith("conv1.weight: 144 weights")
    assert len(json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["y"]) == 100  # bins, not raw weights


def test_browsing_pages_never_mutates_the_cached_model(zoo):
    zoo("mlp")
    at = app("mlp")
    from ui.common import zoo_model  # the very object st.cache_resource shares with every session

    before = state_checksum(zoo_model("mlp").module)
    at.selectbox(key="layer").set_value("fc2.weight").run()
    at.toggle(key="hist_log").set_value(True).run()
    assert state_checksum(zoo_model("mlp").module) == before


def _upload(at: AppTest, key: str, name: str, data: bytes) -> AppTest:
    at.sidebar.file_uploader(key=key).upload(name, data)  # the uploader lives in the sidebar
    return at.run()


def test_uploaded_weights_for_a_zoo_architecture_are_shown():
    at = app("Upload weights…")
    torch.manual_seed(0)
    at = _upload(at, "upload_weights_file", "small.safetensors", st_save(MLP(64, (40,), 10).state_dict()))
    assert not at.exception and not at.error
    assert {m.label: m.value for m in at.metric}["Parameters"] == f"{64 * 40 + 40 + 40 * 10 + 10:,}"


@pytest.mark.parametrize("name, data, message", [
    ("evil.pt", None, "refused"),
    ("trunc.safetensors", st_save(MLP(64, (100,), 10).state_dict())[:500], "corrupt or truncated"),
    ("cnn-weights.safetensors", st_save(MLP(64, (100,), 12).state_dict()), "shape"),
    ("model.pt2", b"PK\x03\x04", "torch.export"),
])
def test_bad_uploads_show_a_reason_and_the_app_keeps_working(name, data, message, tmp_path):
    if data is None:
        class Evil:
            def __reduce__(self):
                return (print, ("hacked",))

        buffer = io.BytesIO()
        torch.save({"fc1.weight": Evil()}, buffer)
        data = buffer.getvalue()
    at = app("Upload weights…")
    at = _upload(at, "upload_weights_file", name, data)
    assert not at.exception
    assert any(message in e.value for e in at.error)
    at.session_state["model"] = "mlp"
    at.run()
    assert not at.exception and not at.error and at.metric  # switching back to the zoo still works


def test_onnx_upload_with_its_data(zoo):
    model = zoo("mlp")
    onnx_file, npz_file = onnx_upload(model)
    at = app("Upload ONNX…")
    at.sidebar.file_uploader(key="upload_onnx_file").upload("mlp.onnx", onnx_file)
    at.sidebar.file_uploader(key="upload_npz_file").upload("eval.npz", npz_file)
    at.run()
    assert not at.exception and not at.error
    assert {m.label: m.value for m in at.metric}["Accuracy (held-out)"] == f"{model.evaluate().accuracy:.2%}"
    assert any("onnxruntime" in i.value for i in at.info)


def test_missing_fashion_mnist_is_explained_on_the_page(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPRESSION_LAB_FASHION_MNIST", str(tmp_path))
    monkeypatch.setattr("compression.core.settings.DEBIAN_FASHION_MNIST", tmp_path / "none")
    monkeypatch.setenv("COMPRESSION_LAB_CACHE", str(tmp_path / "cache"))
    from compression.data import _fashion_mnist

    _fashion_mnist.cache_clear()
    try:
        at = app("lenet-300-100")
        assert not at.exception
        assert any("dataset-fashion-mnist" in e.value for e in at.error)
    finally:
        _fashion_mnist.cache_clear()


def test_the_sidebar_choice_switches_the_model(zoo):
    zoo("mlp"), zoo("cnn")
    at = app("mlp")
    at.sidebar.selectbox(key="model").set_value("cnn").run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Parameters"] == "38,282"
    assert at.query_params.get("model") == "cnn"  # shareable through the URL


def test_a_compressed_clab_file_uploads_and_a_damaged_one_is_refused(zoo):
    from compression.core.progress import run_to_end
    from compression.pipeline.run import PipelineConfig, run_pipeline

    result = run_to_end(run_pipeline(zoo("mlp"), PipelineConfig(finetune_epochs=3, quant_epochs=1)))
    at = app("Upload weights…")
    at = _upload(at, "upload_weights_file", "mlp.clab", result.file)
    assert not at.exception and not at.error
    assert {m.label: m.value for m in at.metric}["Accuracy (held-out)"] == f"{result.accuracy:.2%}"
    at = app("Upload weights…")
    at = _upload(at, "upload_weights_file", "broken.clab", result.file[: len(result.file) // 2])
    assert not at.exception and any("corrupted or truncated" in e.value for e in at.error)


@pytest.mark.parametrize("onnx_kind, npz_kind, message", [
    ("mystery-op", "good", "ops this app does not support"),
    ("good", "wrong-shape", "the model expects"),
    ("good", "labels-out-of-range", "labels"),
    ("garbage", "good", "not a valid ONNX file"),
])
def test_bad_onnx_uploads_are_explained_on_the_page(onnx_kind, npz_kind, message, zoo):
    from onnx import TensorProto, helper

    model = zoo("mlp")
    if onnx_kind == "good":
        onnx_bytes, _ = onnx_upload(model)
    elif onnx_kind == "mystery-op":
        node = helper.make_node("Mystery", ["x"], ["y"], domain="com.example")
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 10])])
        onnx_bytes = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18),
                                                             helper.make_opsetid("com.example", 1)]).SerializeToString()
    else:
        onnx_bytes = b"\x08\x07garbage that is not protobuf"
    x, y = model.dataset.x_test.numpy(), model.dataset.y_test.numpy()
    if npz_kind == "wrong-shape":
        x = x.reshape(len(x), -1)[:, :50]
    elif npz_kind == "labels-out-of-range":
        y = y + 10
    npz = io.BytesIO()
    np.savez(npz, x=x, y=y)
    at = app("Upload ONNX…")
    at.sidebar.file_uploader(key="upload_onnx_file").upload("m.onnx", onnx_bytes)
    at.sidebar.file_uploader(key="upload_npz_file").upload("eval.npz", npz.getvalue())
    at.run()
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]


def test_the_servers_own_architecture_is_offered_and_measured(zoo, tmp_path, monkeypatch):
    import sys

    (tmp_path / "server_nets.py").write_text(
        "from compression.models.architectures import MLP\n"
        "def build():\n    return MLP(64, (100,), 10)\n")
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(st_save(zoo("mlp").module.state_dict()))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("COMPRESSION_LAB_ARCH", "server_nets:build")
    monkeypatch.setenv("COMPRESSION_LAB_ARCH_WEIGHTS", str(weights))
    monkeypatch.setenv("COMPRESSION_LAB_ARCH_DATA", "digits")
    at = app("Custom (server)")
    assert not at.exception and not at.error
    assert {m.label: m.value for m in at.metric}["Accuracy (held-out)"] == f"{zoo('mlp').evaluate().accuracy:.2%}"
    assert "server_nets" in sys.modules


def test_a_refused_upload_names_the_model_still_in_use_and_a_valid_pair_ends_the_error(zoo):
    """After a valid ONNX pair, a refused .npz leaves that model's numbers on the page: the error says whose they
    are, in words (no Python tuple), on every page while the refused file is in the sidebar; a valid pair ends it."""
    model = zoo("mlp")
    onnx_bytes, good = onnx_upload(model)
    bad = io.BytesIO()
    np.savez(bad, x=model.dataset.x_test.numpy().reshape(len(model.dataset.y_test), -1)[:, :50],
             y=model.dataset.y_test.numpy())
    at = app("Upload ONNX…")
    at.sidebar.file_uploader(key="upload_onnx_file").upload("m.onnx", onnx_bytes)
    at.sidebar.file_uploader(key="upload_npz_file").upload("first.npz", good)
    at.run()
    assert not at.error
    at.sidebar.file_uploader(key="upload_npz_file").upload("bad.npz", bad.getvalue())
    at.run()
    [error] = [e.value for e in at.error]
    assert "bad.npz: each sample of 'x' has shape 50, but the model expects 1 × 8 × 8" in error
    assert "Still in use: **m.onnx** with its data **first.npz**" in error and "(" not in error
    at.switch_page("pages/prune.py").run()
    assert [e.value for e in at.error] == [error]  # the numbers on this page are the old model's too: say so
    at.sidebar.file_uploader(key="upload_npz_file").upload("second.npz", good)
    at.run()
    assert not at.exception and not at.error
    at.switch_page("pages/quantize.py").run()
    assert not at.exception and not at.error
