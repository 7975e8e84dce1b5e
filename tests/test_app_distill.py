"""AppTest of the Distillation page (no browser): it renders, runs a short distillation and keeps the result."""

import json
import time

from conftest import ROOT, state_checksum
from streamlit.testing.v1 import AppTest

from compression.history.store import RunStore


def distill_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["model"] = "cnn"
    at.run()
    return at.switch_page("pages/distill.py").run()


def poll_until_done(at: AppTest, timeout_s: float = 60) -> None:
    """AppTest never fires st.fragment(run_every=...): rerun the script until the job has ended."""
    deadline = time.time() + timeout_s
    while at.session_state["kd_job"].running and time.time() < deadline:
        time.sleep(0.2)
        at.run()
    at.run()  # the run after the job ended draws the results


def test_page_renders_concept_and_soft_targets(zoo):
    zoo("cnn")
    at = distill_page()
    assert not at.exception
    assert at.title[0].value == "Distillation"
    assert at.slider(key="alpha").value == 0.5 and at.slider(key="temperature").value == 4.0
    assert any("T^2" in latex.value for latex in at.latex)
    bars = json.loads(at.get("plotly_chart")[-1].proto.spec)
    t1, t = (trace["y"] for trace in bars["data"])
    assert max(t) < max(t1)  # the chosen T=4 flattens the teacher's distribution


def test_short_run_shows_results_and_refuses_a_second_start(zoo):
    teacher = zoo("cnn")
    before = state_checksum(teacher.module)
    at = distill_page()
    at.slider(key="epochs").set_value(60).run()
    at.button(key="kd_start").click().run()
    assert not at.exception
    at.button(key="kd_start").click().run()  # a second start while the first runs is refused, clearly
    assert any("already running" in e.value for e in at.error)
    at.button(key="kd_cancel").click().run()  # Cancel, drawn by the live fragment while the run goes on
    poll_until_done(at)
    assert at.session_state["kd_job"].status == "cancelled"
    assert any("Cancelled" in w.value for w in at.warning)

    at.slider(key="epochs").set_value(2).run()
    at.button(key="kd_start").click().run()
    poll_until_done(at)
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Distilled student"].endswith("%") and metrics["Scratch student"].endswith("%")
    assert metrics["Student parameters"] == "2,410"
    assert "pts vs scratch" in at.metric[0].proto.delta
    run_id = at.session_state["kd_meta"]["run_id"]  # the finished run is in the history the Compare page reads
    saved = {r.id: r for r in RunStore().runs()}[run_id]
    assert saved.kind == "distill" and saved.metrics["accuracy"] == saved.metrics["student_accuracy"]
    assert saved.file_name == "student.safetensors" and set(saved.details["curves"]) == {"student", "scratch"}
    curves = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert len(curves["data"][0]["x"]) >= 2  # the loss curve has points from the finished run
    at.slider(key="alpha").set_value(0.7).run()  # moving a slider afterwards keeps the result on the page
    assert "Distilled student" in {m.label for m in at.metric}
    assert state_checksum(teacher.module) == before


def test_bad_settings_show_a_message_and_disable_start(zoo):
    zoo("cnn")
    at = distill_page()
    at.slider(key="student_width").set_value(256).run()
    at.radio(key="student_layers").set_value(2).run()
    assert not at.exception
    assert any("bigger than the teacher" in e.value for e in at.error)
    assert at.button(key="kd_start").disabled


def test_a_queued_run_shows_its_place_and_is_recorded_with_no_page_watching(zoo, monkeypatch, tmp_path):
    import threading

    from compression.core import Job, JobPool

    zoo("cnn")
    monkeypatch.setenv("COMPRESSION_LAB_DATA", str(tmp_path))
    pool, gate = JobPool(1), threading.Event()
    monkeypatch.setattr("compression.core.jobs._default_pool", pool)

    def blocker():
        while not gate.wait(0.01):
            yield None

    busy = Job(blocker, pool=pool)  # another student's job holds the only slot
    at = distill_page()
    at.slider(key="epochs").set_value(2).run()
    at.button(key="kd_start").click().run()
    assert not at.exception
    job = at.session_state["kd_job"]
    assert job.queued and job.position() == 1
    assert any("Queued: number 1 in line" in p.proto.text for p in at.get("progress"))
    gate.set()
    busy.join(10)
    job.join(60)  # the page is never run again: the job's own thread records the run
    saved = RunStore(tmp_path / "runs.sqlite").get(job.run_id)
    assert saved.status == "done" and saved.kind == "distill" and "student_accuracy" in saved.metrics
    assert saved.details["job"]["queued_s"] > 0


def test_the_live_curve_and_progress_follow_the_run_while_it_trains(zoo, monkeypatch, tmp_path):
    """The run is paced by the test, one step per release, so each poll of the page sees a known number of steps
    whatever the machine's speed (a browser can only sample a run it cannot pace: tests/test_e2e_distill.py)."""
    import threading

    import compression.distillation as distillation
    from compression.core import JobPool

    zoo("cnn")
    monkeypatch.setenv("COMPRESSION_LAB_DATA", str(tmp_path))
    monkeypatch.setattr("compression.core.jobs._default_pool", JobPool(1))  # a held run blocks no other test
    real, release = distillation.distill, threading.Semaphore(0)

    def paced(*args):
        steps = real(*args)
        while True:
            release.acquire()
            try:
                step = next(steps)
            except StopIteration as stop:
                return stop.value
            yield step

    monkeypatch.setattr(distillation, "distill", paced)
    at = distill_page()
    at.slider(key="epochs").set_value(2).run()
    at.button(key="kd_start").click().run()
    job = at.session_state["kd_job"]
    try:
        drawn, progress = [], []
        for count in (1, 2, 3):
            release.release()
            deadline = time.monotonic() + 60  # only a hang takes this long
            while len(job.steps) < count:
                assert job.running and time.monotonic() < deadline, job.error
                time.sleep(0.01)
            at.run()  # what the fragment's poll does
            assert not at.exception and job.running
            drawn.append(len(json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["x"]))
            progress.append(at.get("progress")[0].proto.value)
        assert drawn == [1, 2, 3]
        assert progress == sorted(progress) and progress[0] < progress[-1]
    finally:
        job.cancel()
        release.release(1000)
        job.join(60)
    assert job.status == "cancelled"
