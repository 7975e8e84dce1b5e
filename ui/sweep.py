"""The "Sweep" section of the Pruning, Quantization and Language-model pages: choose the axes, see the grid's size
and an estimate of its time (and what the estimate rests on), start it, watch each cell's progress and the chart fill
as cells finish, Cancel.

The sweep runs as a background job whose thread drives the cells and records each one in the history as it arrives
(so a closed tab loses nothing). Its cells run in this server's job pool, or on the Ray cluster
$COMPRESSION_LAB_RAY_ADDRESS names: then the server only waits, and every server of a class sees the cells in the
shared history. A sweep started again skips the cells the history holds (Cancel keeps the finished ones).
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import pandas as pd
import streamlit as st

from compression.core import InputError, Job, JobPool, default_pool, readable
from compression.core.backends import Backend, LocalBackend, RayBackend, describe_cluster, ray_address
from compression.history import HistoryError, RunStore
from compression.lm import CORPORA
from compression.models import LoadedModel
from compression.pipeline import (
    CLASSIFIER,
    LANGUAGE_MODEL,
    Sweep,
    SweepGrid,
    SweepSettings,
    SweepState,
    estimate_sweep,
    expand_sweep,
    run_sweep,
)
from compression.plots.sweep import sweep_chart
from ui import jobs
from ui.history import owner
from ui.lm_choices import lm_spec

# Which axes each page offers, and their choices.
PAGE_METHODS = {"prune": ("magnitude", "wanda", "sparsegpt"), "quantize": ("rtn", "gptq", "awq"),
                "lm": ("magnitude", "wanda", "sparsegpt", "rtn", "gptq", "awq")}
TITLE = "Sweep: a grid of settings, each one measured"
DEFAULT_METHODS = {"prune": ["magnitude", "sparsegpt"], "quantize": ["rtn", "gptq"], "lm": ["magnitude", "rtn"]}
SPARSITIES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
BITS = (2, 3, 4, 5, 6, 8)
GROUP_SIZES = {CLASSIFIER: (0, 8, 16, 32, 64), LANGUAGE_MODEL: (0, 32, 64, 128)}
IMAGES = (64, 128, 256, 512, 1024, 2048)
WINDOWS = (4, 8, 16, 32, 64)
# Ray sweeps leave the server idle while they wait, so they have a pool of their own; local ones train in the
# server's job pool like every other job.
_ray_pool = JobPool(8)


def classifier_section(model: LoadedModel, kind: str) -> None:
    """The section on the Pruning (`kind` prune) or Quantization (quantize) page, for the sidebar's model."""
    box = _box(kind)
    with box:
        if not box.open:
            return
        if model.source != "zoo":
            st.info("Sweeps run on the zoo models: each cell loads its model itself (on this server or a cluster "
                    "worker), which an uploaded file is not there for.")
            return
        _section(kind, model.name, CLASSIFIER)


def lm_section() -> None:
    """The section on the Language-model page, for the sidebar's language model."""
    choice = st.session_state.get("model")
    if not choice:
        return
    box = _box("lm")
    with box:
        if box.open:
            _section("lm", lm_spec(choice), LANGUAGE_MODEL)


def _box(kind: str):
    """The section's expander. Its key keeps it open while elements above it come and go (the history's runs
    arriving as cells finish), and a closed one costs the page nothing: its content is drawn only when open."""
    return st.expander(TITLE, key=_key(kind, "open"), on_change="rerun")


def _key(kind: str, name: str) -> str:
    return f"sweep_{kind}_{name}"


def _running(kind: str) -> bool:
    job = st.session_state.get(_key(kind, "job"))
    return job is not None and job.running


def _section(kind: str, spec: str, family: str) -> None:
    lm = family == LANGUAGE_MODEL
    try:
        grid, settings = _axes(kind, lm)
        sweep = expand_sweep(spec, family, grid, settings, owner())
    except InputError as exc:
        st.warning(str(exc))
        sweep = None
    if sweep is not None:
        _plan(kind, sweep)
    if st.session_state.get(_key(kind, "error")):
        st.error(st.session_state[_key(kind, "error")])
    st.fragment(lambda: _live(kind, lm), run_every=jobs.poll_every(st.session_state.get(_key(kind, "job"))))()


def _axes(kind: str, lm: bool) -> tuple[SweepGrid, SweepSettings]:
    """The widgets of each axis; the grid and the shared settings they choose."""
    key = lambda name: _key(kind, name)  # noqa: E731
    methods = PAGE_METHODS[kind]
    pruning = kind in ("prune", "lm")
    quantizing = kind in ("quantize", "lm")
    left, right = st.columns(2)
    chosen = left.multiselect("Methods", methods, default=DEFAULT_METHODS[kind], key=key("methods"))
    sparsities = right.multiselect("Sparsities", SPARSITIES, default=[0.5, 0.7, 0.9], key=key("sparsities"),
                                   format_func=readable.percent) if pruning else [0.5]
    patterns = right.multiselect("Patterns", ("unstructured", "2:4"), default=["unstructured"], key=key("patterns"),
                                 help="2:4 keeps two of every four inputs (sparsity 50%)") if lm else ["unstructured"]
    bits = left.multiselect("Weight bits", BITS, default=[2, 3, 4], key=key("bits")) if quantizing else [4]
    groups = GROUP_SIZES[LANGUAGE_MODEL if lm else CLASSIFIER]
    group_sizes = right.multiselect("Group sizes", groups, default=[64 if lm else 0], key=key("groups"),
                                    format_func=lambda g: "per channel" if g == 0 else f"groups of {g}",
                                    ) if quantizing else [0]
    sizes = WINDOWS if lm else IMAGES
    samples = left.multiselect("Calibration windows" if lm else "Calibration images", sizes,
                               default=[16 if lm else 512], key=key("samples"),
                               help="Only Wanda, SparseGPT, GPTQ and AWQ calibrate: magnitude and RTN run once "
                                    "whatever is chosen here.")
    texts = right.multiselect("Calibration texts", CORPORA, default=[CORPORA[0]], key=key("texts")) if lm \
        else ["kjv"]
    settings = SweepSettings()
    if lm:
        a, b, c = st.columns(3)
        settings = SweepSettings(evaluation=a.selectbox("Evaluation text", CORPORA, key=key("evaluation")),
                                 eval_samples=b.number_input("Evaluation windows", 1, 256, 16, key=key("eval")),
                                 seq_len=c.number_input("Tokens per window", 16, 1024, 128, key=key("seq")))
    grid = SweepGrid(methods=tuple(chosen), sparsities=tuple(sparsities), patterns=tuple(patterns), bits=tuple(bits),
                     group_sizes=tuple(group_sizes), calibration_texts=tuple(texts), calibration_samples=tuple(samples))
    return grid, settings


@st.cache_resource(ttl=60, show_spinner=False)
def _where(address: str | None) -> tuple[str, int]:
    """What runs the cells and how many at once (joins the Ray cluster once per server)."""
    if address is None:
        return f"this server, one cell at a time (as a job in its pool: {default_pool().limit} at once)", 1
    name, cpus, _ = describe_cluster(address)
    return name, max(1, int(cpus))


def _plan(kind: str, sweep: Sweep) -> None:
    """The grid's size, what the history holds of it, where it runs, the estimate; the Start button."""
    address = ray_address()
    try:
        where, slots = _where(address)
    except InputError as exc:
        st.error(str(exc))
        return
    try:
        store = RunStore()
        done = [r.id for r in store.runs(sweep=sweep.id) if r.status == "done"]
        history = store.runs(kind=sweep.cells[0].kind)
    except HistoryError as exc:
        st.warning(f"Run history unavailable: {exc}")
        done, history = [], []
    guess = estimate_sweep(sweep, history, slots, done)
    kept = f" ({len(done)} already in the history: skipped)" if done else ""
    st.markdown(f"**{len(sweep)} cells**{kept}, run on {where}.")
    if guess.cells:
        st.caption(f"Estimated time: {guess.duration} for the {guess.cells} cells left (an estimate, from "
                   f"{guess.basis}).")
    else:
        st.caption("Every cell of this grid is in the history: nothing left to run. Add values to an axis, or "
                   "delete cells on Compare to measure them again.")
    st.button("Start sweep", key=_key(kind, "start"), on_click=_start, args=(kind, sweep, address),
              disabled=_running(kind) or guess.cells == 0, type="primary",
              help="Each cell loads the model, compresses it and measures it; each finished cell is recorded in "
                   "the history (see Compare).")


def _start(kind: str, sweep: Sweep, address: str | None) -> None:
    if jobs.busy(_key(kind, "job"), _key(kind, "error"), "A sweep"):
        return
    st.session_state[_key(kind, "error")] = None
    st.session_state[_key(kind, "meta")] = {"status": "running"}
    st.session_state[_key(kind, "job")] = Job(lambda: _drive(sweep, lambda: _backend(address)),
                                              label=f"sweep-{kind}", pool=_ray_pool if address else None)


def _backend(address: str | None) -> Backend:
    return RayBackend(address) if address else LocalBackend(1)


def _drive(sweep: Sweep, make_backend: Callable[[], Backend]) -> Generator[SweepState, None, SweepState]:
    """The job: join the backend (in the job's thread: joining a cluster can take seconds), run, let go."""
    backend = make_backend()
    try:
        try:
            store = RunStore()
        except HistoryError:
            store = None  # the cells still reach the page; the page says they are not saved
        return (yield from run_sweep(sweep, backend, store))
    finally:
        backend.close()


def _live(kind: str, lm: bool) -> None:
    """While the sweep runs and after: overall progress with Cancel, each cell's progress, the chart."""
    job = st.session_state.get(_key(kind, "job"))
    if job is None:
        return
    steps = job.steps
    state: SweepState | None = steps[-1] if steps else None
    if state is None:
        jobs.progress_bar(job, 0.0, "Starting: joining the backend…", _key(kind, "cancel"))
    else:
        jobs.progress_bar(job, state.fraction, f"{state.finished} of {len(state.cells)} cells finished on "
                                                f"{state.backend}", _key(kind, "cancel"))
        if not job.running:
            st.markdown(f"**{state.finished} of {len(state.cells)} cells finished** ({state.backend}): "
                        f"{state.count('done')} measured now, {state.count('skipped')} from the history, "
                        f"{state.count('failed')} failed.")
        _cells(kind, state, lm)
        if state.history_error:
            st.warning(f"Cells not saved to the history: {state.history_error}")
    jobs.settle(job, st.session_state[_key(kind, "meta")])
    jobs.ended(job, "Cancelled: the cells that finished are in the history, and starting the same sweep again "
                    "runs only the rest.", "The sweep failed")


def _cells(kind: str, state: SweepState, lm: bool) -> None:
    metric = "perplexity" if lm else "accuracy"
    rows, points, dense = [], [], None
    for cell_state in state.cells:
        cell, values = cell_state.cell, cell_state.metrics
        rows.append({"cell": cell.label, "status": cell_state.status, "progress": cell_state.fraction,
                     "doing": cell_state.error or cell_state.text, metric: values.get(metric),
                     "seconds": ((cell_state.record or {}).get("timing") or {}).get("seconds"),
                     "worker": cell_state.worker or _worker(cell_state.record)})
        if values.get(metric) is not None:
            axis, x = cell.x_axis
            points.append({"series": cell.series, "x": x if cell.nm is None else 0.5, "y": values[metric],
                           "label": cell.label, "axis": axis})
            dense = values.get(f"baseline_{metric}", dense)
    number = st.column_config.NumberColumn
    st.dataframe(pd.DataFrame(rows), hide_index=True, key=_key(kind, "cells"), column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
        metric: number(format="%.2f" if lm else "percent"), "seconds": number(format="%.1f")})
    for axis in ("sparsity", "bits"):
        shown = [p for p in points if p["axis"] == axis]
        if shown:
            st.plotly_chart(sweep_chart(shown, metric, axis, dense, sum(c.cell.x_axis[0] == axis
                                                                         for c in state.cells)),
                            key=_key(kind, f"chart_{axis}"))


def _worker(record: dict | None) -> str:
    """host:pid of the process that ran a finished cell ("" for one the history already held)."""
    worker = (record or {}).get("worker") or {}
    return f"{worker['host']}:{worker['pid']}" if worker else ""
