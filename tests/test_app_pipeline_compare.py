"""AppTest of the Pipeline and Compare pages."""

import json
import time

import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from compression.history.store import Run, RunStore


@pytest.fixture
def history_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESSION_LAB_DATA", str(tmp_path))
    return tmp_path


def page(name: str, model: str = "mlp") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["model"] = model
    at.run()
    return at.switch_page(f"pages/{name}.py").run()


def wait_for(at: AppTest, key: str, seconds: float = 120) -> AppTest:
    deadline = time.time() + seconds
    while st_job(at, key).running and time.time() < deadline:
        time.sleep(0.3)
    return at.run()


def st_job(at: AppTest, key: str):
    return at.session_state[key]


def test_pipeline_runs_shows_steps_and_records_the_run(zoo, history_dir):
    zoo("mlp")
    at = page("pipeline")
    assert not at.exception
    at.number_input(key="pipe_ft_epochs").set_value(5)
    at.number_input(key="pipe_q_epochs").set_value(1)
    at.button(key="pipe_run").click().run()
    at = wait_for(at, "pipeline_job")
    assert not at.exception and st_job(at, "pipeline_job").status == "done"
    at.run()
    labels = {m.label: m.value for m in at.metric}
    assert "File size" in labels and labels["Accuracy (decoded file)"].endswith("%")
    [run] = RunStore(history_dir / "runs.sqlite").runs()
    assert run.kind == "pipeline" and RunStore(history_dir / "runs.sqlite").get(run.id).file


def test_pipeline_refuses_a_bad_step_order(zoo, history_dir):
    zoo("mlp")
    at = page("pipeline")
    at.multiselect(key="pipe_steps").set_value(["prune", "encode"]).run()
    assert not at.exception and any("quantize step before" in e.value for e in at.error)


def test_compare_shows_runs_pareto_and_deletes(zoo, history_dir):
    zoo("mlp")
    store = RunStore(history_dir / "runs.sqlite")
    for i, (acc, size) in enumerate([(0.95, 2000), (0.97, 3000), (0.93, 4000)]):
        store.record(Run(kind="pipeline", model="mlp", config={}, metrics={"accuracy": acc, "size_bytes": size},
                         label=f"r{i}"))
    at = page("compare")
    assert not at.exception
    assert len(at.dataframe[0].value) == 3
    # the size of one test image, from the shown runs' own test set (360 digits), not a figure written in the page
    assert any("on digits one test image is 0.28 points (360 held-out images)" in c.value for c in at.caption)
    import json

    pareto = json.loads(at.get("plotly_chart")[0].proto.spec)
    frontier = next(t for t in pareto["data"] if t["name"] == "Pareto frontier")
    assert frontier["x"] == [2000, 3000]  # the 4000-byte run is dominated
    victim = store.runs()[0].id
    at.multiselect(key="cmp_delete").set_value([victim]).run()
    at.button(key="cmp_delete_go").click().run()
    assert not at.exception and len(store.runs()) == 2


def test_shared_mode_lets_a_visitor_delete_only_its_own_runs(zoo, history_dir, monkeypatch):
    zoo("mlp")
    monkeypatch.setenv("COMPRESSION_LAB_SHARED", "1")
    store = RunStore(history_dir / "runs.sqlite")
    run = dict(kind="pipeline", model="mlp", config={}, metrics={"accuracy": 0.9, "size_bytes": 1000})
    mine, theirs = store.record(Run(**run, owner="visitor:me")), store.record(Run(**run, owner="user:bob"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["model"], at.session_state["visitor"] = "mlp", "visitor:me"
    at.run()
    at.switch_page("pages/compare.py").run()
    assert at.multiselect(key="cmp_delete").options == [mine]
    at.multiselect(key="cmp_delete").set_value([mine]).run()
    at.button(key="cmp_delete_go").click().run()
    assert not at.exception and [r.id for r in store.runs()] == [theirs]


def test_compare_plots_latency_only_between_runs_timed_the_same_way(zoo, history_dir):
    zoo("mlp")
    store = RunStore(history_dir / "runs.sqlite")
    timed = [("median", 1), ("median", 1), ("best", 32)]
    for i, (stat, batch) in enumerate(timed):
        store.record(Run(kind="pipeline", model="mlp", config={}, label=f"r{i}", metrics={
            "accuracy": 0.9 + i / 100, "size_bytes": 1000 + i, "latency_ms": 0.1 * (i + 1), "latency_stat": stat,
            "latency_batch": batch, "latency_threads": 1}))
    at = page("compare")
    assert not at.exception
    assert at.selectbox(key="cmp_latency_method").options == ["median at batch 1, 1 thread",
                                                               "best at batch 32, 1 thread"]
    latency = json.loads(at.get("plotly_chart")[1].proto.spec)
    points = [x for trace in latency["data"] if trace.get("mode") == "markers" for x in trace["x"]]
    assert sorted(points) == [0.1, 0.2]
    assert any("measured the same way: median at batch 1, 1 thread. 1 run(s)" in c.value for c in at.caption)


def test_compare_with_no_runs_explains_itself(history_dir, zoo):
    zoo("mlp")
    at = page("compare")
    assert not at.exception and any("No runs recorded yet" in i.value for i in at.info)


def test_budget_search_marks_the_best_run_under_budget(zoo, history_dir):
    zoo("mlp")
    at = page("compare")
    at.number_input(key="budget_value").set_value(3000.0)
    at.button(key="budget_go").click().run()  # the value typed and the click in one run: the search uses 3,000
    at = wait_for(at, "budget_job", 300)
    at.run()
    assert not at.exception
    assert any("Best under budget" in s.value for s in at.success)
    search = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert "budget 3,000 B" in [t.get("name") for t in search["data"]]  # as typed, not "2.9 KiB"
    assert any(r.kind == "budget" for r in RunStore(history_dir / "runs.sqlite").runs())


def test_a_pruning_setting_recorded_on_its_page_appears_on_compare(zoo, history_dir):
    zoo("mlp")
    at = page("prune")
    at.slider(key="sparsity").set_value(0.7).run()
    at.button(key="prune_record").click().run()
    assert not at.exception
    [run] = RunStore(history_dir / "runs.sqlite").runs()
    assert run.kind == "prune" and run.metrics["sparsity"] == pytest.approx(0.7, abs=0.01)
    assert run.metrics["size_bytes"] > 0 and run.details["layer_sparsity"]
    at.switch_page("pages/compare.py").run()
    assert not at.exception and list(at.dataframe[0].value["id"]) == [run.id]


def test_quantize_cli_and_page_runs_are_recorded(zoo, history_dir):
    import json
    import os
    import subprocess
    import sys

    zoo("mlp")
    out = subprocess.run([sys.executable, "-m", "compression", "quantize", "--model", "mlp", "--bits", "4", "--json"],
                         capture_output=True, text=True, cwd=ROOT, env=os.environ.copy(), timeout=300)
    assert out.returncode == 0, out.stderr
    run_id = json.loads(out.stdout)["run_id"]
    at = page("quantize")
    at.button(key="quantize_record").click().run()
    assert not at.exception
    runs = RunStore(history_dir / "runs.sqlite").runs(kind="quantize")
    assert len(runs) == 2 and run_id in {r.id for r in runs}
    assert all(r.metrics["size_bytes"] > 0 and 0 < r.metrics["accuracy"] <= 1 for r in runs)


def test_compare_decodes_both_a_distilled_student_and_a_clab_file(zoo, history_dir):
    from compression.core.progress import Drive, run_to_end
    from compression.distillation import DistillConfig, distill, history_run
    from compression.history.store import run_from_result
    from compression.pipeline.run import PipelineConfig, run_pipeline

    store = RunStore(history_dir / "runs.sqlite")
    kd = Drive(distill(zoo("cnn"), DistillConfig(epochs=2)))
    rows = [step.to_row() for step in kd]
    student_id = store.record(history_run(kd.result, rows))
    piped = run_to_end(run_pipeline(zoo("mlp"), PipelineConfig(finetune_epochs=2, quant_epochs=1)))
    clab_id = store.record(run_from_result("pipeline", "mlp", piped.to_dict(), file_name="m.clab", file=piped.file))
    at = page("compare")
    at.selectbox(key="cmp_a").set_value(student_id).run()
    at.selectbox(key="cmp_b").set_value(clab_id).run()
    assert not at.exception
    assert not [w.value for w in at.warning if "cannot be decoded" in w.value]
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert any(t.startswith("Run A") for t in titles) and any(t.startswith("Run B") for t in titles)


def test_compare_keeps_classifiers_and_language_models_apart(zoo, history_dir):
    """A language-model run is never ranked by accuracy ("accuracy nan%"): each family has its summary line, its
    table and its chart; a quantized LM run reads as its bits, never as the sparsity its rounding left."""
    zoo("mlp")
    store = RunStore(history_dir / "runs.sqlite")
    store.record(Run(kind="pipeline", model="mlp", config={}, metrics={"accuracy": 0.95, "size_bytes": 2000},
                     label="p"))
    lm = store.record(Run(kind="lm", model="tiny-gpt", label="rtn 4-bit g64", details={"calibration": "kjv",
                          "evaluation": "kjv"},
                          config={"kind": "quantize", "bits": 4, "granularity": "per-group", "group_size": 64},
                          metrics={"perplexity": 5.5, "baseline_perplexity": 5.47, "tokens": 2032, "bits": 4,
                                   "sparsity": 0.13, "size_bytes": 503_808, "baseline_size_bytes": 1_638_400}))
    at = page("compare")
    assert not at.exception
    summary = next(m.value for m in at.markdown if "most accurate classifier run" in m.value)
    assert "mlp · p (pipeline): accuracy 95.00%" in summary and "nan" not in summary.lower()
    assert "lowest perplexity, tiny-gpt · kjv, 2,032 tokens**: rtn 4-bit g64: 5.50 (dense model 5.47)" in summary
    classifiers, lms = (d.value for d in at.dataframe[:2])
    assert list(classifiers["run"]) == ["p"] and "perplexity (lower is better)" not in classifiers.columns
    assert list(lms["what it did"]) == ["4-bit weights, groups of 64"] and "sparsity" not in lms.columns
    assert list(lms["evaluation tokens"]) == ["2,032"] and list(lms["calibration text"]) == ["kjv"]
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert titles[:2] == ["Accuracy vs size", "Language models: perplexity vs size"]
    at.selectbox(key="cmp_a").set_value(lm).run()
    side = next(d.value for d in at.dataframe if "metric" in d.value.columns)
    assert "sparsity" not in list(side["metric"]) and "what it did" in list(side["metric"])
