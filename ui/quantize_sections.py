"""The Quantization page's heavier sections: mixed precision, activations, QAT (a background Job) and real int8."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st
import torch

from compression.core import InputError, Job, readable
from compression.history import run_from_result
from compression.models import LoadedModel, Workbench
from compression.plots import quantization as plots_quant
from compression.quantization import (
    MODES,
    OBSERVERS,
    ActivationQuantConfig,
    Int8Config,
    Int8Measure,
    QATConfig,
    QuantConfig,
    compare_speed,
    deploy_int8,
    large_mlp_int8,
    propose_bits,
    qat_with_control,
    quantize_activations,
    sensitivity,
)
from compression.training import TrainConfig
from ui import jobs
from ui.caching import config_key, model_token, remembered, session_lock
from ui.text import int8_verdict

NEEDS_TORCH = ("{} needs a PyTorch model: ONNX models run in onnxruntime here, without gradients or int8 "
               "kernels. Weight fake-quantization above works for ONNX models too.")
RUNS = ("QAT", "fp32 control")


def mixed_precision(model: LoadedModel, config: QuantConfig, bench: Workbench) -> dict[str, int]:
    """Per-layer sensitivity at the global bits, with an editable bits column; returns the per-layer bits."""
    with session_lock("q"):
        rows = remembered("q_sensitivity", (model_token(model, "q"), config_key(config)),
                          lambda: sensitivity(model, config, bench))
    proposed = propose_bits(rows, config.bits)
    table = pd.DataFrame([{"layer": r.layer, "SQNR (dB)": r.sqnr_db, "accuracy drop (points)": r.accuracy_drop * 100,
                           "bits": proposed[r.layer]} for r in rows])
    trade = "" if len(rows) < 2 else (
        f" Proposed: the more sensitive half of the layers at {min(config.bits + 1, 16)} bits, the others at "
        f"{max(config.bits - 1, 1)}.")
    st.caption(f"Each layer quantized **alone** to {config.bits} bits: the layers that cost the most accuracy "
               f"deserve more bits.{trade} Edit the bits column to set a bit-width per layer.")
    edited = st.data_editor(table, key="q_layer_bits", hide_index=True, disabled=["layer", "SQNR (dB)",
                                                                                  "accuracy drop (points)"],
                            column_config={"bits": st.column_config.NumberColumn(min_value=1, max_value=16, step=1),
                                           "SQNR (dB)": st.column_config.NumberColumn(format="%.1f"),
                                           "accuracy drop (points)": st.column_config.NumberColumn(format="%.1f")})
    return {row["layer"]: int(row["bits"]) for _, row in edited.iterrows()
            if pd.notna(row["bits"]) and int(row["bits"]) != config.bits}


def activation_card_labels(model: LoadedModel, config: QuantConfig, act_bits: int) -> tuple[str, str]:
    """The two cards' labels for the weights in force: 'W4A8 accuracy' and 'Weights-only 4-bit', or with mixed
    precision on 'W3–5A8 accuracy (mixed precision)' and 'Weights-only, mixed 3–5-bit'."""
    bits = sorted({config.bits_for(layer) for layer in model.weights()})
    if len(bits) == 1:
        return f"W{bits[0]}A{act_bits} accuracy", f"Weights-only {bits[0]}-bit"
    span = f"{bits[0]}–{bits[-1]}"
    return f"W{span}A{act_bits} accuracy (mixed precision)", f"Weights-only, mixed {span}-bit"


def activations_section(model: LoadedModel, config: QuantConfig) -> None:
    """Weights as `config` says (the model in force: mixed precision included) and every layer's input rounded."""
    st.subheader("Weights + activations (static PTQ)")
    if model.module is None:
        st.info(NEEDS_TORCH.format("Activation quantization"))
        return
    if not st.toggle("Quantize activations too", key="q_activations", bind="query-params",
                     help="Round the input of every Linear/Conv layer to a grid fixed by a calibration pass"):
        st.caption("Off: only weights are rounded. Turn on to also round every layer's input, with ranges "
                   "observed on a few training batches.")
        return
    cols = st.columns(3)
    act_bits = cols[0].slider("Activation bits", 2, 16, 8, key="q_act_bits", bind="query-params")
    observer = cols[1].selectbox("Observer", OBSERVERS, key="q_observer", bind="query-params",
                                 help="min-max: widest range seen; percentile: clip the rarest values; "
                                      "moving-average: smoothed per-batch min and max")
    batches = cols[2].number_input("Calibration batches (64 images each)", 1, 32, 4, key="q_calib",
                                   bind="query-params")
    try:
        result = quantize_activations(model, ActivationQuantConfig(config, act_bits, observer,
                                                                   calibration_batches=int(batches)))
    except InputError as exc:
        st.error(str(exc))
        return
    m = st.columns(3)
    both, weights_only = activation_card_labels(model, config, act_bits)
    m[0].metric(both, f"{result.accuracy:.2%}")
    m[1].metric(weights_only, f"{result.weight_only_accuracy:.2%}")
    m[2].metric("fp32", f"{result.baseline_accuracy:.2%}")
    st.dataframe(pd.DataFrame([{"layer input": r.layer, "grid from": r.lo, "grid to": r.hi, "scale": r.scale,
                                "zero point": r.zero_point} for r in result.ranges]), hide_index=True)
    st.caption(f"Calibrated on {result.calibration_samples} training images; evaluated on held-out images.")


def curve_key(model: LoadedModel, config: QuantConfig) -> tuple:
    """Identifies an accuracy-vs-bits curve: the model and every setting except the bits."""
    return (model_token(model, "q"), config.method, config.scheme, config.granularity, config.group_size,
            config.range_method, config.percentile, config.binary, config.ternary)


def qat_curve_points(model: LoadedModel, config: QuantConfig) -> dict:
    """QAT accuracies already measured for this model and these settings, as a curve for the bits chart."""
    _record_finished_qat()
    points = st.session_state.get("qat_points", {}).get(curve_key(model, config), {})
    if not points:
        return {}
    bits = sorted(points)
    return {"QAT": (bits, [points[b] for b in bits])}


def _record_finished_qat() -> None:
    """Put a finished QAT run's accuracy on the bits chart (before the chart is drawn)."""
    job = st.session_state.get("qat_job")
    if job is None or job.running or job.status != "done":
        return
    meta = st.session_state["qat_meta"]
    points = st.session_state.setdefault("qat_points", {}).setdefault(meta["key"], {})
    points[meta["bits"]] = job.result.qat.accuracy


def _qat_run(result, steps, model_name: str, label: str):
    """The history record of a finished QAT run (built in the job's thread), under the model the user picked."""
    q = result.qat
    return run_from_result("quantize", model_name, {
        **q.to_dict(), "control_accuracy": result.control.accuracy, "control_ptq_accuracy": result.control.ptq_accuracy,
        "curves": _runs(steps)}, label)


def _start_qat(model: LoadedModel, config: QuantConfig, epochs: int, lr: float) -> None:
    qat_config = QATConfig(config, TrainConfig(epochs=epochs, lr=lr))
    # The model the user picked, not the QAT master copy's name: one model in Compare's filter.
    label = f"QAT {config.bits}-bit, {epochs} epochs, lr {lr:g}"
    st.session_state["qat_job"] = jobs.start(lambda: qat_with_control(model, qat_config), "quantize", model.name,
                                             label, {"quant": config.to_dict(), "epochs": epochs, "lr": lr},
                                             lambda result, steps: _qat_run(result, steps, model.name, label))
    st.session_state["qat_meta"] = {"key": curve_key(model, config), "bits": config.bits, "model": model.name,
                                    "epochs": epochs, "lr": lr,
                                    "baseline": model.evaluate().accuracy}


def qat_section(model: LoadedModel, config: QuantConfig) -> None:
    st.subheader("Quantization-aware training")
    if model.module is None:
        st.info(NEEDS_TORCH.format("Quantization-aware training"))
        return
    if not model.dataset.has_train:
        st.info(f"Quantization-aware training needs a training split; {model.dataset.name} has none.")
        return
    job = st.session_state.get("qat_job")
    running = job is not None and job.running
    cols = st.columns([2, 2, 3])
    epochs = cols[0].number_input("QAT epochs", 1, 200, 10, key="qat_epochs", bind="query-params")
    lr = cols[1].select_slider("Learning rate", [1e-4, 3e-4, 1e-3, 3e-3], 1e-3, key="qat_lr", bind="query-params")
    cols[2].button(f"Start QAT at {config.bits} bits (+ fp32 control)", key="qat_start", disabled=running,
                   on_click=_start_qat, args=(model, config, int(epochs), float(lr)))
    st.caption("QAT fine-tunes a copy with rounded weights in the forward pass. The **fp32 control** fine-tunes "
               "another copy for the same epochs without rounding, then applies the same PTQ grid: if the "
               "control gains as much, the gain came from training longer, not from QAT.")
    if job is None:
        return
    if running:
        _qat_live()
    else:
        _qat_done(job)


@st.fragment(run_every=jobs.POLL_S)
def _qat_live() -> None:
    job = st.session_state["qat_job"]
    if not job.running:
        st.rerun()  # the whole page: the finished view and the QAT point on the bits chart
    steps = job.steps
    last = steps[-1] if steps else None
    done_runs = RUNS.index(last.run) if last else 0
    fraction = (done_runs + (last.step.fraction if last else 0.0)) / len(RUNS)
    jobs.progress_bar(job, fraction, f"{last.run}: epoch {last.step.epoch:.1f}" if last else "starting…",
                      "qat_cancel")
    st.plotly_chart(plots_quant.qat_curves(_runs(steps), st.session_state["qat_meta"]["baseline"]))


def _qat_done(job: Job) -> None:
    jobs.ended(job, "QAT was cancelled.", "QAT failed")  # and whether its run reached the history
    if job.status != "done":
        return
    result = job.result
    meta = st.session_state["qat_meta"]
    q, c = result.qat, result.control
    cols = st.columns(4)
    cols[0].metric(f"QAT {meta['bits']}-bit", f"{q.accuracy:.2%}", f"{(q.accuracy - q.ptq_accuracy) * 100:+.1f} "
                   "points vs PTQ", delta_color="normal")
    cols[1].metric(f"PTQ {meta['bits']}-bit (no training)", f"{q.ptq_accuracy:.2%}")
    cols[2].metric("Control: fp32 + same epochs", f"{c.accuracy:.2%}",
                   f"{(c.accuracy - c.baseline_accuracy) * 100:+.1f} points vs start", delta_color="off",
                   delta_arrow="off")
    cols[3].metric(f"Control, then PTQ {meta['bits']}-bit", f"{c.ptq_accuracy:.2%}")
    st.plotly_chart(plots_quant.qat_curves(_runs(job.steps), q.baseline_accuracy), key="qat_curves_done")


def _runs(steps) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {name: [] for name in RUNS}
    for p in steps:
        runs[p.run].append({"epoch": p.step.epoch, "loss": p.step.loss, "test_accuracy": p.step.test_accuracy})
    return runs


def _run_int8(model: LoadedModel, mode: str, weights: dict) -> None:
    try:
        result = deploy_int8(model, Int8Config(mode=mode))
    except InputError as exc:
        st.session_state["int8"] = (model_token(model, "q"), None, str(exc))
        return
    st.session_state["int8"] = (model_token(model, "q"), result, None)
    # re-time fp32 and fake-quant beside int8, so the bars compare measurements taken together
    with session_lock("q"):
        st.session_state["q_latency"] = compare_speed(model, st.session_state["q_bench"], weights, result.model)


def _run_large(mode: str) -> None:
    st.session_state["int8_large"] = large_mlp_int8(repeats=5, mode=mode)


def int8_result(model: LoadedModel):
    saved = st.session_state.get("int8")
    return saved[1] if saved and saved[0] == model_token(model, "q") else None


def _one_measurement(m: Int8Measure) -> Int8Measure:
    """The int8 and fp32 times of the speed bars (taken in turns with fake-quant), so card and chart agree."""
    latency = st.session_state.get("q_latency")
    if latency is None or latency.int8_ms is None:
        return m
    return replace(m, latency_ms=latency.int8_ms, baseline_latency_ms=latency.fp32_ms, batch_size=latency.batch)


def int8_section(model: LoadedModel, weights: dict) -> None:
    st.subheader("Real int8 deployment")
    if model.module is None:
        st.info(NEEDS_TORCH.format("Real int8 deployment"))
        return
    cols = st.columns([2, 2, 3])
    mode = cols[0].selectbox("int8 mode", MODES, key="int8_mode", bind="query-params",
                             help="dynamic: int8 weights, activations quantized per batch on the fly (Linear); "
                                  "static: int8 weights and activations, ranges calibrated once (Linear and Conv)")
    cols[1].button("Convert and measure", key="int8_run", on_click=_run_int8,
                   args=(model, mode, weights))
    cols[2].button("Measure a large MLP (1024-4096-4096-10)", key="int8_large_run", on_click=_run_large,
                   args=(mode,), help="Random weights, batch 256: where int8 kernels pay off. Takes a few seconds.")
    saved = st.session_state.get("int8")
    if saved and saved[0] == model_token(model, "q") and saved[2]:
        st.error(saved[2])
    result = int8_result(model)
    if result is not None:
        m = _one_measurement(result.measure)
        c = st.columns(4)
        c[0].metric("int8 accuracy", readable.percent(result.accuracy, 2),
                    f"fp32 {readable.percent(result.baseline_accuracy, 2)}", delta_color="off", delta_arrow="off")
        c[1].metric(f"Latency (batch {m.batch_size})", readable.ms(m.latency_ms), f"fp32 {readable.ms(m.baseline_latency_ms)}",
                    delta_color="off", delta_arrow="off", help="the same measurement as the bars above")
        c[2].metric("int8 file (torch.save)", f"{m.size_bytes / 1024:,.1f} KiB", f"{m.size_ratio:.1f}× smaller",
                    delta_color="off", delta_arrow="off")
        c[3].metric("Speed-up", f"{m.speedup:.3g}×")
        has_conv = any(isinstance(x, torch.nn.Conv2d) for x in model.module.modules())
        (st.success if m.speedup >= 1.1 else st.warning)(int8_verdict(m, has_conv))
        st.caption(f"Backend: {m.backend} ({result.config.mode}), behind our own Int8Backend interface so torchao "
                   "can replace it. Biases, scales and zero points stay in the file, so small models shrink "
                   "less than 4×.")
    large = st.session_state.get("int8_large")
    if large is not None:
        (st.success if large.speedup >= 1.1 else st.warning)(
            f"Large MLP 1024-4096-4096-10 at batch {large.batch_size}, {large.mode} int8: {large.latency_ms:.1f} ms "
            f"vs fp32 {large.baseline_latency_ms:.1f} ms ({large.speedup:.1f}× faster); file "
            f"{large.size_bytes / 2**20:.1f} MiB vs {large.baseline_size_bytes / 2**20:.1f} MiB "
            f"({large.size_ratio:.1f}× smaller).")
