"""Model page: what the chosen model is made of, its size, its accuracy, and its weights."""

import pandas as pd
import streamlit as st

from compression.metrics import histogram
from compression.plots import common as plots
from ui.common import chosen_is_lm, current_model
from ui.text import ONNX_NOT_SUPPORTED, ONNX_TECHNIQUES

st.title("Model")
if chosen_is_lm():
    from ui.lm_views import model_page  # the LM engine (transformers) is imported only when an LM is chosen

    model_page()
    st.stop()
with st.expander("What am I looking at?"):
    st.markdown(
        "A neural network is layers of **weights**: numbers multiplied with the input. "
        "The table lists each layer, the shape of its weight tensor, how many **parameters** it holds, "
        "how many are **non-zero**, and its **sparsity** (the fraction that is exactly zero — pruning raises it). "
        "**Size** is the byte count of the real file PyTorch (`torch.save`) or safetensors writes. "
        "**Accuracy** and **loss** are measured on held-out images the model never trained on. "
        "The **histogram** shows how the weights of one layer are spread: most sit near zero, which is "
        "why pruning and quantization work."
    )

picked = current_model()
if picked is None:
    st.stop()
model, facts = picked

cols = st.columns(5)
cols[0].metric("Accuracy (held-out)", f"{facts.accuracy:.2%}", help=f"{facts.test_samples} test samples")
cols[1].metric("Loss (held-out)", f"{facts.loss:.4f}")
cols[2].metric("Parameters", f"{facts.params:,}", help=f"{facts.nonzero_params:,} non-zero")
size_label = "ONNX file" if model.onnx is not None else "torch.save file"
cols[3].metric(size_label, f"{facts.size_bytes / 1024:,.1f} KiB", help=f"{facts.size_bytes:,} bytes")
cols[4].metric("safetensors file", f"{facts.safetensors_bytes / 1024:,.1f} KiB",
               help=f"{facts.safetensors_bytes:,} bytes")
st.caption(f"Source: {facts.source} · dataset: {facts.dataset} · "
           f"input shape {tuple(model.dataset.input_shape)} · {model.dataset.num_classes} classes")

if model.onnx is not None:
    st.info(f"ONNX model, run by onnxruntime. Ops in this graph: {', '.join(model.onnx.op_types)}.  \n"
            f"Supported here: {'; '.join(ONNX_TECHNIQUES)}.  \nNot for ONNX: {'; '.join(ONNX_NOT_SUPPORTED)}.")

st.subheader("Architecture")
table = pd.DataFrame([{"layer": r.layer, "type": r.type, "shape": r.shape, "parameters": r.params,
                       "non-zeros": r.nonzero, "sparsity": r.sparsity} for r in facts.layers])
st.dataframe(table, hide_index=True, width="stretch",
             column_config={"sparsity": st.column_config.NumberColumn(format="percent")})

st.subheader("Weight histogram")
weights = model.weights()
if not weights:
    st.warning("This model has no Linear or Conv weights to show.")
    st.stop()
left, right = st.columns([3, 1])
layer = left.selectbox("Layer", list(weights), key="layer", bind="query-params")
log_y = right.toggle("Log scale", key="hist_log", bind="query-params")
tensor = weights[layer]
st.plotly_chart(plots.weight_histogram(histogram(tensor), f"{layer}: {tensor.numel():,} weights", log_y=log_y))
st.caption(f"mean {tensor.mean():.4f} · std {tensor.std():.4f} · min {tensor.min():.4f} · max {tensor.max():.4f} "
           "· 100 bins computed on the server")
