"""Pruning page: move a slider and see, measured, which weights die and what it costs."""

import streamlit as st

from compression.core import readable
from ui import history, sweep
from ui.common import model_with_weights
from ui.prune_finetune import finetune_section
from ui.prune_sections import calibration, concept, controls, workspace
from ui.prune_views import figures, metric_cards, sensitivity, why_not_faster

st.title("Pruning")
concept()
model = model_with_weights("This model has no Linear or Conv weights: there is nothing to prune.")
space = workspace(model)
config, view, state = controls(space, is_onnx=model.onnx is not None)
metric_cards(view, space["baseline"], state["method"])
st.caption(readable.one_image(view.evaluation.samples))
job = st.session_state.get("prune_job")
training = job is not None and job.running  # the training thread shares the CPU: timings are not the model's
if training:
    st.caption("A fine-tune is running on this server: latencies above are inflated and are not recorded.")
measured = view.to_record(space["baseline"].evaluation.accuracy, timings_valid=not training)
if config.needs_calibration:
    measured["calibration_samples"] = state["samples"]
pattern = f" {config.nm[0]}:{config.nm[1]}" if config.nm else ""
history.record_button("prune", model.name, measured, f"{config.method}{pattern} {view.sparsity:.0%}",
                      key="prune_record")
figures(space, view, config, state["sparsity"], state["samples"])
why_not_faster(view)
sensitivity(space, view, config)
images = calibration(space, state["samples"]) if config.needs_calibration else None
finetune_section(model, config, view.sparsity, space["baseline"].evaluation.accuracy, images)
sweep.classifier_section(model, "prune")  # a grid of settings, each cell measured and recorded
