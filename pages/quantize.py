"""Quantization page: what rounding to fewer bits does to each weight, to accuracy, to the file and to the clock."""

from dataclasses import replace

import streamlit as st

from ui import history, sweep
from ui import quantize_sections as sections
from ui import quantize_views as views
from ui.common import model_with_weights

# The body lives in imported modules: compiled once, not on every rerun of this script.
st.title("Quantization")
views.concept()
model = model_with_weights("This model has no Linear or Conv weights to quantize.")
settings = views.controls(model)
bench = views.workbench(model)
result = views.quantized(model, settings, bench)
views.live_views(model, settings, result, bench)
views.size_and_speed(model, result, bench)
record = {**result.to_dict(), **({"calibration_samples": settings.samples} if result.config.needs_calibration else {})}
history.record_button("quantize", model.name, record, views.run_label(settings.config), key="quantize_record")
sections.activations_section(model, result.config)  # the model in force: mixed precision included
sections.qat_section(model, replace(settings.config, method="rtn"))  # QAT trains toward round-to-nearest grids
sections.int8_section(model, result.weights)
sweep.classifier_section(model, "quantize")  # a grid of settings, each cell measured and recorded
