"""The Sweep section in AppTest, on the Pruning, Quantization and Language-model pages: the grid's size and a
labelled estimate before starting, each cell's progress and the chart while it runs, every cell in the history
(this visitor's) afterwards, Cancel keeping the finished cells, and a second start skipping them."""

import json
import time

from streamlit.testing.v1 import AppTest

from compression.history import RunStore


def _page(model: str, page: str, tmp_path, monkeypatch) -> AppTest:
    monkeypatch.setenv("COMPRESSION_LAB_DATA", str(tmp_path))
    monkeypatch.delenv("COMPRESSION_LAB_RAY_ADDRESS", raising=False)
    monkeypatch.delenv("COMPRESSION_LAB_DB_URL", raising=False)
    at = AppTest.from_file("../app.py", default_timeout=180)
    at.session_state["model"] = model
    for kind in ("prune", "quantize", "lm"):
        at.session_state[f"sweep_{kind}_open"] = True  # the section's expander, opened
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _wait(at: AppTest, kind: str, until=lambda job: not job.running, timeout_s: float = 300) -> None:
    """Rerun the page (what the fragment's timer does in a browser) until `until(job)`."""
    deadline = time.time() + timeout_s
    while not until(at.session_state[f"sweep_{kind}_job"]):
        assert time.time() < deadline, "the sweep did not get there in time"
        time.sleep(0.2)
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def _text(at: AppTest) -> str:
    return " ".join(e.value for e in [*at.markdown, *at.caption, *at.info, *at.warning])


def _cells(at: AppTest):
    """The sweep's table of cells (AppTest finds a dataframe by its columns, not its key)."""
    [table] = [d.value for d in at.dataframe if "progress" in d.value.columns]
    return table


def _sweep_charts(at: AppTest) -> list[dict]:
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return [c for c in charts if "cells)" in c["layout"]["title"]["text"]]


def test_a_pruning_sweep_shows_its_size_and_estimate_fills_its_chart_and_records_every_cell(zoo, tmp_path,
                                                                                            monkeypatch):
    zoo("mlp")
    at = _page("mlp", "pages/prune.py", tmp_path, monkeypatch)
    at.multiselect(key="sweep_prune_methods").set_value(["magnitude", "sparsegpt"]).run()
    at.multiselect(key="sweep_prune_sparsities").set_value([0.5, 0.9]).run()
    at.multiselect(key="sweep_prune_samples").set_value([64, 128]).run()
    text = _text(at)
    assert "6 cells" in text  # magnitude × 2 sparsities, SparseGPT × 2 sparsities × 2 calibration sizes
    assert "Estimated time" in text and "an estimate, from a guess for magnitude" in text
    at.button(key="sweep_prune_start").click().run()
    _wait(at, "prune")
    cells = _cells(at)
    assert list(cells["status"]) == ["done"] * 6 and all(cells["accuracy"] > 0)
    [chart] = _sweep_charts(at)
    assert chart["layout"]["title"]["text"] == "Accuracy vs sparsity (6 of 6 cells)"
    assert {trace["name"] for trace in chart["data"]} == {"magnitude", "sparsegpt, 64 images", "sparsegpt, 128 images"}
    runs = RunStore(tmp_path / "runs.sqlite").runs()
    assert len(runs) == 6 and {r.kind for r in runs} == {"prune"} and {r.sweep for r in runs} != {""}
    assert {r.owner for r in runs} == {at.session_state["visitor"]}
    assert "6 already in the history: skipped" in _text(at)  # and the estimate now rests on them
    assert at.button(key="sweep_prune_start").disabled


def test_a_quantization_sweep_draws_accuracy_against_bits(zoo, tmp_path, monkeypatch):
    zoo("cnn")
    at = _page("cnn", "pages/quantize.py", tmp_path, monkeypatch)
    at.multiselect(key="sweep_quantize_methods").set_value(["rtn"]).run()
    at.multiselect(key="sweep_quantize_bits").set_value([2, 4, 8]).run()
    at.multiselect(key="sweep_quantize_groups").set_value([0, 16]).run()
    assert "6 cells" in _text(at)
    at.button(key="sweep_quantize_start").click().run()
    _wait(at, "quantize")
    [chart] = _sweep_charts(at)
    assert chart["layout"]["title"]["text"] == "Accuracy vs bits (6 of 6 cells)"
    assert {t["name"]: sorted(t["x"]) for t in chart["data"]} == {"rtn per channel": [2, 4, 8], "rtn g16": [2, 4, 8]}
    assert len(RunStore(tmp_path / "runs.sqlite").runs(kind="quantize")) == 6


def test_an_uploaded_model_cannot_be_swept_and_says_why(zoo, tmp_path, monkeypatch):
    from conftest import onnx_upload

    onnx_file, npz_file = onnx_upload(zoo("mlp"))
    monkeypatch.setenv("COMPRESSION_LAB_DATA", str(tmp_path))
    at = AppTest.from_file("../app.py", default_timeout=180)
    at.session_state["model"] = "Upload ONNX…"
    at.session_state["sweep_prune_open"] = True
    at.run()
    at.sidebar.file_uploader(key="upload_onnx_file").upload("mlp.onnx", onnx_file)
    at.sidebar.file_uploader(key="upload_npz_file").upload("eval.npz", npz_file)
    at.run()
    at.switch_page("pages/prune.py").run()
    assert not at.exception
    assert any("Sweeps run on the zoo models" in i.value for i in at.info)
    assert not any(b.key == "sweep_prune_start" for b in at.button)


def test_a_language_model_sweep_cancelled_keeps_its_cells_and_a_second_start_runs_only_the_rest(tiny_gpt, tmp_path,
                                                                                                 monkeypatch):
    at = _page("tiny-gpt", "pages/language_model.py", tmp_path, monkeypatch)
    at.multiselect(key="sweep_lm_methods").set_value(["sparsegpt", "rtn"]).run()
    at.multiselect(key="sweep_lm_sparsities").set_value([0.3, 0.5, 0.7, 0.9]).run()
    at.multiselect(key="sweep_lm_bits").set_value([3, 4]).run()
    at.multiselect(key="sweep_lm_samples").set_value([32]).run()
    at.number_input(key="sweep_lm_eval").set_value(2).run()
    at.number_input(key="sweep_lm_seq").set_value(64).run()
    assert "6 cells" in _text(at)
    at.button(key="sweep_lm_start").click().run()
    _wait(at, "lm", until=lambda job: job.steps and job.steps[-1].count("done") >= 1)
    assert _cells(at)["progress"].max() > 0
    at.button(key="sweep_lm_cancel").click().run()
    _wait(at, "lm")
    assert at.session_state["sweep_lm_job"].status == "cancelled"
    assert any("Cancelled" in w.value for w in at.warning)
    kept = len(RunStore(tmp_path / "runs.sqlite").runs())
    assert 1 <= kept < 6
    assert f"{kept} already in the history: skipped" in _text(at)
    at.button(key="sweep_lm_start").click().run()
    _wait(at, "lm")
    cells = _cells(at)
    assert sorted(cells["status"]) == sorted(["skipped"] * kept + ["done"] * (6 - kept))
    runs = RunStore(tmp_path / "runs.sqlite").runs()
    assert len(runs) == 6 and {r.kind for r in runs} == {"lm"}
    charts = _sweep_charts(at)
    assert {c["layout"]["title"]["text"] for c in charts} == {"Perplexity vs sparsity (4 of 4 cells)",
                                                             "Perplexity vs bits (2 of 2 cells)"}
    assert charts[0]["layout"]["yaxis"]["type"] == "log"


def test_a_closed_section_draws_nothing_but_its_title(zoo, tmp_path, monkeypatch):
    zoo("mlp")
    monkeypatch.setenv("COMPRESSION_LAB_DATA", str(tmp_path))
    at = AppTest.from_file("../app.py", default_timeout=180)
    at.session_state["model"] = "mlp"
    at.run()
    at.switch_page("pages/prune.py").run()
    assert not at.exception
    assert not any(b.key == "sweep_prune_start" for b in at.button)
    assert not any(m.key == "sweep_prune_methods" for m in at.multiselect)


def test_an_empty_axis_is_explained_and_nothing_starts(zoo, tmp_path, monkeypatch):
    zoo("mlp")
    at = _page("mlp", "pages/prune.py", tmp_path, monkeypatch)
    at.multiselect(key="sweep_prune_methods").set_value([]).run()
    assert any("choose methods" in w.value for w in at.warning)
    assert not any(b.key == "sweep_prune_start" for b in at.button)
