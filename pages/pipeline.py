"""Pipeline page: compose prune -> distill -> quantize -> encode, run it live, hand over the files."""

import pandas as pd
import streamlit as st

from compression.core import InputError, readable
from compression.history import pipeline_report, run_from_result
from compression.models import dense_safetensors, onnx_bytes
from compression.pipeline import STEPS, PipelineConfig, run_pipeline
from compression.plots import common as plots
from compression.plots import compare as plots_compare
from ui import jobs
from ui.common import current_model
from ui.downloads import download_button

JOB, META, RESULT = "pipeline_job", "pipeline_meta", "pipeline_result"

st.title("Pipeline")
st.caption("Deep Compression and beyond: prune with fine-tuning, distill into a smaller student, share weights "
           "by k-means with trained centroids, then encode a real compressed file. Every size is the byte count "
           "of that file; every accuracy is measured after decoding it.")
with st.expander("Concept"):
    st.markdown("The `.clab` file stores, per layer, the positions of the kept weights as **relative indices** "
                "(gaps of a few bits, with an escape for longer gaps), a **code** per kept weight pointing into "
                "a small **codebook** of shared values, and both streams **Huffman-coded**:")
    st.latex(r"\text{bits} \approx \underbrace{(1-s)\,n}_{\text{kept}}\,\big(\bar\ell_\text{code} + "
             r"\bar\ell_\text{index}\big) + 32\cdot 2^{b}\ \text{per layer},\qquad \bar\ell \le H + 1")
    st.markdown("Han et al. (2016) report 40× on LeNet-300-100 this way. Run the pipeline below to measure it "
                "here; `python -m bench pipeline` prints zlib on the same weights as a reference.")

picked = current_model()
if picked is None:
    st.stop()
model, facts = picked
if model.module is None or model.arch is None:
    st.info("The pipeline rebuilds and fine-tunes the model, so it needs a zoo architecture (a zoo model or "
            "weights uploaded for one). ONNX models: use the Pruning and Quantization pages.")
    st.stop()

defaults = PipelineConfig()
steps = st.multiselect("Steps (run in this order)", STEPS, default=list(defaults.steps), key="pipe_steps",
                       bind="query-params")
cols = st.columns(4)
sparsity = cols[0].slider("Sparsity", 0.0, 0.98, defaults.sparsity, 0.01, key="pipe_sparsity",
                          bind="query-params", disabled="prune" not in steps)
ft_epochs = cols[0].number_input("Fine-tune epochs", 0, 300, defaults.finetune_epochs, key="pipe_ft_epochs",
                                 bind="query-params", disabled="prune" not in steps)
hidden = cols[1].slider("Student hidden units", 4, 256, 32, key="pipe_hidden", bind="query-params",
                        disabled="distill" not in steps)
distill_epochs = cols[1].number_input("Distill epochs", 1, 200, defaults.distill_epochs, key="pipe_kd_epochs",
                                      bind="query-params", disabled="distill" not in steps)
bits = cols[2].slider("Bits per shared weight", 1, 8, defaults.codebook_bits, key="pipe_bits", bind="query-params",
                      disabled="quantize" not in steps)
quant_epochs = cols[2].number_input("Centroid fine-tune epochs", 0, 100, defaults.quant_epochs,
                                    key="pipe_q_epochs", bind="query-params", disabled="quantize" not in steps)
index_bits = cols[3].slider("Relative index bits", 1, 8, defaults.index_bits, key="pipe_index_bits",
                            bind="query-params", disabled="encode" not in steps)
lr = cols[3].select_slider("Learning rate", [3e-4, 1e-3, 3e-3, 1e-2], defaults.finetune_lr, key="pipe_lr",
                         bind="query-params")

try:
    config = PipelineConfig(steps=tuple(steps), sparsity=sparsity, finetune_epochs=int(ft_epochs), finetune_lr=lr,
                            student_hidden=(hidden,), distill_epochs=int(distill_epochs), codebook_bits=bits,
                            quant_epochs=int(quant_epochs), index_bits=index_bits)
except InputError as exc:
    st.error(str(exc))
    config = None


def file_stem(model_name: str, result) -> str:
    """Downloads say what they hold: mlp-prune-quantize-encode, not model."""
    return "-".join([model_name, *result.config.steps])


def start() -> None:
    if jobs.busy(JOB, "pipe_refused", "A pipeline"):
        return
    st.session_state["pipe_refused"] = None
    label = " → ".join(config.steps)

    def finish(result, _steps):
        return run_from_result("pipeline", model.name, {**result.to_dict(), "curves": dict(result.curves)},
                               label=label, file_name=f"{file_stem(model.name, result)}.clab", file=result.file)

    st.session_state[JOB] = jobs.start(lambda: run_pipeline(model, config), "pipeline", model.name, label,
                                       config.to_dict(), finish)
    st.session_state[META] = {"status": "running", "model": model.name, "label": label}


st.button("Run pipeline", type="primary", key="pipe_run", on_click=start, disabled=config is None)
if st.session_state.get("pipe_refused"):
    st.error(st.session_state["pipe_refused"])

job = st.session_state.get(JOB)


@st.fragment(run_every=jobs.poll_every(job))
def live() -> None:
    job, meta = st.session_state.get(JOB), st.session_state.get(META)
    if job is None:
        return
    progress = job.steps
    if job.running:
        last = progress[-1] if progress else None
        jobs.progress_bar(job, last.fraction if last else 0.0, f"{last.stage}: {last.fraction:.0%}" if last else
                          "starting…", "pipe_cancel")
        rows = [{"epoch": p.step.epoch, "loss": p.step.loss, "test_accuracy": p.step.test_accuracy}
                for p in progress if p.step is not None and p.stage == (last.stage if last else "")]
        if rows:
            st.plotly_chart(plots.training_curves(rows, f"{last.stage}: training"))
    jobs.settle(job, meta, lambda result: keep(result, meta, job.run_id))
    jobs.ended(job, "Pipeline cancelled; the model you started from is unchanged.", "The pipeline failed")


def keep(result, meta: dict, run_id: str | None) -> None:
    """Keep the finished pipeline on the page (the job itself recorded it in the history)."""
    st.session_state[RESULT] = {"result": result, "run_id": run_id, "model": meta["model"]}


live()

kept = st.session_state.get(RESULT)
if kept is None or kept["model"] != model.name:
    st.stop()
result = kept["result"]
st.subheader("Result")
c = st.columns(4)
c[0].metric("Accuracy (decoded file)", readable.percent(result.accuracy, 2),
            readable.points(result.accuracy - result.baseline_accuracy, 2))
c[1].metric("File size", readable.size(result.size_bytes), f"{result.compression_ratio:.1f}× smaller",
            delta_color="off", delta_arrow="off")
c[2].metric("Baseline: fp32 torch.save file", readable.size(result.baseline_size_bytes))
c[3].metric("Latency (batch 1)", readable.ms(result.latency_ms), f"fp32 {readable.ms(result.baseline_latency_ms)}",
            delta_color="off", delta_arrow="off")
stage_names = ["start: fp32 file"] + [plots_compare.stage_label(s.name) for s in result.stages]
st.plotly_chart(plots_compare.stage_bars(stage_names,
                                         [result.baseline_size_bytes] + [s.size_bytes for s in result.stages],
                                         [result.baseline_accuracy] + [s.accuracy for s in result.stages]))
st.dataframe(pd.DataFrame([{"step": plots_compare.stage_label(s.name), "accuracy": readable.percent(s.accuracy, 2),
                            "file size": readable.size(s.size_bytes), "parameters": readable.count(s.params),
                            "non-zero parameters": readable.count(s.nonzero_params),
                            "time": readable.seconds(s.seconds)}
                           for s in result.stages]), hide_index=True)
st.caption(readable.one_image(len(result.model.dataset.y_test)))
st.caption("Pruning and weight sharing leave an fp32 file the same size (zeros and shared values still cost 4 "
           "bytes each); only the encode step turns them into a smaller file.")
if "encode" not in result.config.steps:
    st.info("Without the encode step the size is the step's fp32 torch.save file: add encode for the real "
            "compressed file.")
st.caption("Latency: decoding restores a dense model, so it runs as fast as the original. Sparse and shared "
           "weights shrink the file, not the dense matrix multiply.")

st.subheader("Hand over")
d = st.columns(4)
stem = file_stem(kept["model"], result)
if result.file is not None:
    download_button(d[0], "Compressed model (.clab)", result.file, f"{stem}.clab", key="dl_clab")
# Callables: each file is built only when its button is clicked (the report inlines 4 MB of plotly.js).
download_button(d[1], "Dense weights (.safetensors)", lambda: dense_safetensors(result.model),
                f"{stem}-dense.safetensors", key="dl_st")
download_button(d[2], "ONNX (dense fp32)", lambda: onnx_bytes(result.model), f"{stem}-dense.onnx", key="dl_onnx")
download_button(d[3], "HTML report", lambda: pipeline_report(result), f"{stem}-report.html", mime="text/html",
                key="dl_report")
if kept["run_id"]:
    st.caption(f"Recorded in the history as run `{kept['run_id']}`: compare it on the Compare page.")
