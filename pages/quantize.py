"""Quantization page: what rounding to fewer bits does to each weight, to accuracy, to the file and to the clock."""

import streamlit as st

from ui import history
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
history.record_button("quantize", model.name, result.to_dict(), f"PTQ {settings.config.bits}-bit "
                      f"{settings.config.scheme} {settings.config.granularity}", key="quantize_record")
sections.activations_section(model, settings.config)
sections.qat_section(model, settings.config)
sections.int8_section(model, result.weights)
