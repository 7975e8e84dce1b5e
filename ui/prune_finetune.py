"""The Pruning page's training part: one-shot + fine-tune and gradual runs as Jobs, live curves, kept results."""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd
import streamlit as st

from compression.core import InputError, readable
from compression.history import Run, run_from_result
from compression.plots import pruning as plots
from compression.pruning import FinetuneConfig, GradualConfig, PruneConfig, finetune, prune_gradually
from compression.training import TrainConfig
from ui import jobs

JOB, META, RUNS, REFUSED = "prune_job", "prune_job_meta", "prune_runs", "prune_refused"


def _start(kind: str, model, config: PruneConfig, sparsity: float, epochs: int, lr: float, calibration=None) -> None:
    """Start a run unless one is already running in this session."""
    if jobs.busy(JOB, REFUSED, "A pruning run"):
        return
    train = TrainConfig(epochs=epochs, lr=lr)
    try:
        if kind == "gradual":
            target = PruneConfig(amount=sparsity, scope=config.scope, exclude=config.exclude)
            run_config = GradualConfig(target, train)
            start = lambda: prune_gradually(model, run_config)  # noqa: E731
            label = f"gradual → {sparsity:.0%}, {epochs} epochs"
        else:
            run_config = FinetuneConfig(config, train)
            start = lambda: finetune(model, run_config, calibration)  # noqa: E731
            amount = f"{config.amount:.0%} of units" if config.method == "structured" else f"{sparsity:.0%}"
            label = f"one-shot {config.method} {amount} + fine-tune {epochs} epochs"
    except InputError as exc:
        st.session_state[REFUSED] = str(exc)
        return
    st.session_state[REFUSED] = None

    def finish(result, steps) -> Run:
        rows = [_row(s) for s in steps]
        return run_from_result("prune", model.name, {**result.to_dict(), "curves": {"finetune": rows}}, label)

    st.session_state[JOB] = jobs.start(start, "prune", model.name, label, run_config.to_dict(), finish)
    st.session_state[META] = {"label": label, "status": "running", "model": model.name}


def finetune_section(model, config: PruneConfig, sparsity: float, baseline: float, calibration=None) -> None:
    """Controls, the live run and the kept results; a no-op message for ONNX models."""
    st.subheader("Fine-tune: win the accuracy back")
    if model.onnx is not None or model.module is None or not model.dataset.has_train:
        st.info("Fine-tuning and gradual pruning need a PyTorch model with training data (a zoo model, weights "
                "for a zoo architecture, or your own module:function). ONNX graphs have no gradients here.")
        return
    st.caption("One-shot + fine-tune trains with the current mask held at zero after every step; gradual pruning "
               "trains while the sparsity rises on the cubic schedule to the same target. Runs continue while "
               "you move the sliders; results are kept below to compare.")
    cols = st.columns([1, 1, 2, 2])
    epochs = cols[0].number_input("Epochs", 1, 300, 30, key="prune_ft_epochs", bind="query-params")
    lr = cols[1].select_slider("Learning rate", [1e-4, 3e-4, 1e-3, 3e-3], 1e-3, key="prune_ft_lr",
                               bind="query-params")
    args = (model, config, round(sparsity, 4), int(epochs), float(lr), calibration)
    cols[2].button("One-shot + fine-tune", key="prune_ft_start", type="primary", on_click=_start,
                   args=("finetune", *args))
    gradual_ok = config.method == "magnitude" and config.nm is None
    cols[3].button("Gradual pruning (cubic)", key="prune_gradual_start", on_click=_start, args=("gradual", *args),
                   disabled=not gradual_ok, help=None if gradual_ok else "gradual pruning raises an unstructured magnitude sparsity")
    job = st.session_state.get(JOB)
    running = job is not None and job.running
    if st.session_state.get(REFUSED) and (running or "already running" not in st.session_state[REFUSED]):
        st.error(st.session_state[REFUSED])

    @st.fragment(run_every=jobs.poll_every(st.session_state.get(JOB)))
    def live() -> None:
        job, meta = st.session_state.get(JOB), st.session_state.get(META)
        if job is None:
            return
        steps = [_row(s) for s in job.steps]
        fraction = job.steps[-1].fraction if steps else 0.0
        jobs.progress_bar(job, fraction, f"{meta['label']}: {fraction:.0%}", "prune_ft_cancel")
        st.plotly_chart(plots.run_progress(steps, meta["label"]))
        jobs.settle(job, meta, lambda result: _keep(result, meta, steps))
        jobs.ended(job, f"Cancelled at {fraction:.0%}; nothing was kept. Start again any time.")

    live()
    runs = [r for r in st.session_state.get(RUNS, []) if r["model"] == model.name]
    if runs:
        oneshots = [r["oneshot"] for r in runs if r["oneshot"] is not None]
        st.plotly_chart(plots.finetune_curves({r["label"]: r["steps"] for r in runs}, baseline,
                                              oneshots[-1] if oneshots else None))
        # Gradual pruning has no one-shot step: its cell stays empty rather than borrowing the slider's number.
        table = pd.DataFrame([{"run": r["label"], "sparsity": readable.percent(r["sparsity"]),
                               "accuracy": readable.percent(r["accuracy"], 2),
                               "one-shot, untrained": "" if r["oneshot"] is None else readable.percent(r["oneshot"], 2),
                               "dense": readable.percent(r["baseline"], 2),
                               "kept of dense": readable.percent(r["retention"])} for r in runs])
        st.dataframe(table, hide_index=True)


def _keep(result, meta: dict, steps: list[dict]) -> None:
    runs = st.session_state.setdefault(RUNS, [])
    runs.append({"label": meta["label"], "model": meta["model"], "steps": steps,
                 "sparsity": result.sparsity, "accuracy": result.accuracy,
                 "oneshot": result.oneshot_accuracy,
                 "baseline": result.baseline_accuracy, "retention": result.retention, "record": result.to_dict()})
    del runs[:-6]  # keep the last few runs of this session (the job itself recorded it in the history)


def _row(step) -> dict:
    return {**asdict(step), "parts": dict(step.parts)}

