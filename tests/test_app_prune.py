"""The Pruning page in AppTest: it runs for mlp and cnn, and moving the sliders changes figures and metrics."""

import json

import pytest
from conftest import onnx_upload
from streamlit.testing.v1 import AppTest


def _page(model: str) -> AppTest:
    at = AppTest.from_file("../app.py", default_timeout=120)
    at.session_state["model"] = model  # the sidebar picker vanishes from the tree after the first run
    at.run()
    at.switch_page("pages/prune.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metrics(at: AppTest) -> dict:
    return {m.label: m.value for m in at.metric}


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_sparsity_slider_changes_metrics_and_figures(model, zoo):
    zoo(model)  # train into the test cache first, outside the page's timeout
    at = _page(model)
    before_metrics, before_charts = _metrics(at), _charts(at)
    assert len(before_charts) >= 4
    at.slider(key="sparsity").set_value(0.95).run()
    assert not at.exception
    after_metrics, after_charts = _metrics(at), _charts(at)
    assert after_metrics["Non-zero parameters"] != before_metrics["Non-zero parameters"]
    assert after_metrics["Accuracy (held-out)"] != before_metrics["Accuracy (held-out)"]
    histogram = lambda charts: next(c for c in charts if "Weights before" in c["layout"]["title"]["text"])  # noqa: E731
    assert histogram(after_charts)["data"][1]["y"] != histogram(before_charts)["data"][1]["y"]
    curve = next(c for c in after_charts if "Accuracy vs" in c["layout"]["title"]["text"])
    assert len(curve["data"][0]["x"]) >= 20 and curve["data"][1]["x"] == [pytest.approx(0.95, abs=0.01)]


def test_threshold_methods_and_bad_input_show_messages(zoo):
    zoo("mlp")
    at = _page("mlp")
    at.radio(key="prune_by").set_value("threshold").run()
    at.slider(key="threshold").set_value(at.slider(key="threshold").max).run()
    assert not at.exception
    assert any("above every weight" in w.value for w in at.warning)
    assert _metrics(at)["Accuracy (held-out)"] == "10.00%"  # chance, not NaN
    at.radio(key="prune_by").set_value("sparsity").run()
    for method in ("structured", "Wanda", "SparseGPT", "magnitude"):
        at.selectbox(key="prune_method").set_value(method).run()
        assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="prune_pattern").set_value("2:4").run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="prune_pattern").set_value("unstructured").run()
    at.selectbox(key="prune_method").set_value("structured").run()
    at.slider(key="sparsity").set_value(0.5).run()
    metrics = _metrics(at)
    assert metrics["Physically shrunk model"] != metrics["Dense file (torch.save)"]
    at.multiselect(key="prune_exclude").set_value(["fc1", "fc2"]).run()
    assert any("every layer is excluded" in e.value for e in at.error)
    assert not at.exception


def test_onnx_model_prunes_by_magnitude_and_nm_with_clear_infos(zoo):
    onnx_file, npz_file = onnx_upload(zoo("mlp"))
    at = AppTest.from_file("../app.py", default_timeout=120)
    at.session_state["model"] = "Upload ONNX…"
    at.run()
    at.sidebar.file_uploader(key="upload_onnx_file").upload("mlp.onnx", onnx_file)
    at.sidebar.file_uploader(key="upload_npz_file").upload("eval.npz", npz_file)
    at.run()
    at.switch_page("pages/prune.py").run()
    assert not at.exception and not at.error
    assert any("need a PyTorch model" in i.value for i in at.info)  # fine-tuning
    first = _metrics(at)["Accuracy (held-out)"]
    at.slider(key="sparsity").set_value(0.95).run()
    assert not at.exception and _metrics(at)["Accuracy (held-out)"] != first
    at.selectbox(key="prune_pattern").set_value("2:4").run()
    assert not at.exception and not at.error
    for method in ("structured", "SparseGPT"):
        at.selectbox(key="prune_method").set_value(method).run()
        assert any("pruning needs a PyTorch model" in i.value for i in at.info)


def test_finetune_runs_as_a_job_and_keeps_results_to_compare(zoo):
    zoo("mlp")
    at = _page("mlp")
    at.slider(key="sparsity").set_value(0.9).run()
    at.number_input(key="prune_ft_epochs").set_value(2).run()
    at.button(key="prune_ft_start").click().run()
    job = at.session_state["prune_job"]
    job.join(timeout=120)
    at.run()  # the polling fragment sees the end, keeps the result and redraws
    at.run()
    assert not at.exception and job.status == "done"
    runs = at.session_state["prune_runs"]
    assert len(runs) == 1 and runs[0]["accuracy"] > runs[0]["oneshot"]
    assert runs[0]["record"]["config"]["prune"]["amount"] == 0.9
    assert any("Fine-tuning: test accuracy" in c["layout"]["title"]["text"] for c in _charts(at))
    at.number_input(key="prune_ft_epochs").set_value(300).run()
    at.button(key="prune_gradual_start").click().run()
    at.button(key="prune_ft_cancel").click().run()
    cancelled = at.session_state["prune_job"]
    cancelled.join(timeout=60)
    at.run()
    assert cancelled.status == "cancelled" and len(at.session_state["prune_runs"]) == 1


def test_sparsegpt_and_wanda_answer_the_slider_with_one_curve_per_method(zoo):
    zoo("mlp")
    at = _page("mlp")
    at.slider(key="sparsity").set_value(0.8).run()
    magnitude = float(_metrics(at)["Accuracy (held-out)"].rstrip("%"))
    at.selectbox(key="prune_method").set_value("SparseGPT").run()
    assert not at.exception, [e.value for e in at.exception]
    sparsegpt = float(_metrics(at)["Accuracy (held-out)"].rstrip("%"))
    assert sparsegpt >= magnitude + 5  # the surviving weights absorb the error (bench: +20 points at 80%)
    curve = next(c for c in _charts(at) if "Accuracy vs" in c["layout"]["title"]["text"])
    names = [d["name"] for d in curve["data"]]
    assert names[:2] == ["magnitude (layer)", "SparseGPT"] and "SparseGPT (current)" in names
    at.selectbox(key="prune_method").set_value("Wanda").run()
    curve = next(c for c in _charts(at) if "Accuracy vs" in c["layout"]["title"]["text"])
    assert {"Wanda", "SparseGPT"} <= {d["name"] for d in curve["data"]}  # earlier methods stay on the chart
    assert any("loudest input channel" in c.value for c in at.caption)  # the measured reason Wanda does not help
    at.selectbox(key="prune_calib").set_value(64).run()
    assert not at.exception
    assert any("calibrated on 64 training images" in c.value for c in at.caption)
    at.selectbox(key="prune_pattern").set_value("2:4").run()
    assert not at.exception
    card = next(m for m in at.metric if m.label == "Non-zero parameters")
    assert "50.0% of weights pruned" in card.delta  # 2:4 on layers whose inputs are multiples of 4
