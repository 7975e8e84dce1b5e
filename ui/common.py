"""What every page shares: the sidebar model picker (URL-bound) and the cached, read-only models."""

from __future__ import annotations

import streamlit as st

from compression.core import InputError, Waiting, settings
from compression.models import (
    ARCHITECTURES,
    ZOO,
    LoadedModel,
    ModelFacts,
    custom_from_environment,
    describe,
    is_cached,
    load_custom_from_environment,
    load_onnx_with_data,
    load_weights,
    load_zoo,
    train_zoo_model,
)
from ui.lm_choices import is_lm, lm_choices
from ui.routing import ensure_routed

UPLOAD_WEIGHTS = "Upload weights…"
UPLOAD_ONNX = "Upload ONNX…"
CUSTOM = "Custom (server)"


@st.cache_resource(show_spinner=False, max_entries=8)
def zoo_model(name: str) -> LoadedModel:
    """Shared by every session: never mutate it; compression returns new models."""
    return load_zoo(name)


@st.cache_resource(show_spinner=False, max_entries=8)
def zoo_facts(name: str) -> ModelFacts:
    return describe(zoo_model(name))


@st.cache_resource(show_spinner=False)
def custom_model(factory: str) -> LoadedModel:
    """The server's own architecture (`factory` keys the cache; the environment names weights and data)."""
    return load_custom_from_environment()


def _ensure_trained(name: str) -> None:
    """Train a zoo model on first use with a visible progress bar (cached on disk afterwards)."""
    if is_cached(name):
        return
    bar = st.sidebar.progress(0.0, text=f"Training {name} on first use…")
    for step in train_zoo_model(name):
        if isinstance(step, Waiting):  # another session or process trains it: it will be cached for us too
            bar.progress(0.0, text=f"Waiting for {step.what} ({step.seconds:.0f} s)…")
            continue
        acc = f" · test accuracy {step.test_accuracy:.1%}" if step.test_accuracy is not None else ""
        bar.progress(min(step.fraction, 1.0), text=f"Training {name}: epoch {step.epoch:.1f}{acc}")
    bar.empty()


def model_picker() -> None:
    """Sidebar: choose a zoo model or load your own; the choice is kept in the URL (?model=...)."""
    options = (list(ZOO) + [UPLOAD_WEIGHTS, UPLOAD_ONNX] + ([CUSTOM] if custom_from_environment() else [])
               + lm_choices())
    with st.sidebar:
        st.markdown("### Model")
        choice = st.selectbox("Model", options, key="model", bind="query-params",
                              help="Zoo models train themselves on first use and are cached on disk.")
        if choice == UPLOAD_WEIGHTS:
            _weights_uploader()
        elif choice == UPLOAD_ONNX:
            _onnx_uploader()


def _weights_uploader() -> None:
    arch = st.selectbox("Architecture", list(ARCHITECTURES), key="upload_arch",
                        help="Which zoo architecture the weights are for; hidden sizes may be smaller (pruned).")
    file = st.file_uploader("Weights (.safetensors, a weights-only .pt/.pth state dict, or a compressed .clab)",
                            type=["safetensors", "pt", "pth", "bin", "clab", "pt2", "ptl"], key="upload_weights_file",
                            max_upload_size=settings.max_upload_mb(),
                            help="A .clab file from the Pipeline page names its own architecture.")
    token = (file.file_id, arch) if file is not None else None
    st.session_state["upload_in_sidebar"] = token
    if token is not None and st.session_state.get("uploaded_token") != token:
        _try_load(lambda: load_weights(arch, file.getvalue(), file.name), token)


def _onnx_uploader() -> None:
    st.caption("ONNX models run in onnxruntime. Weight-level techniques (magnitude and N:M pruning, weight "
               "quantization) act on the Gemm/MatMul/Conv initializers; training-based ones need a PyTorch model.")
    model_file = st.file_uploader("ONNX model (.onnx)", type=["onnx"], key="upload_onnx_file",
                                  max_upload_size=settings.max_upload_mb())
    data_file = st.file_uploader("Evaluation data (.npz with arrays x and y)", type=["npz"], key="upload_npz_file",
                                 max_upload_size=settings.max_upload_mb())
    token = (model_file.file_id, data_file.file_id) if model_file is not None and data_file is not None else None
    st.session_state["upload_in_sidebar"] = token
    if token is not None:
        if st.session_state.get("uploaded_token") != token:
            _try_load(lambda: load_onnx_with_data(model_file.getvalue(), model_file.name,
                                                  data_file.getvalue(), data_file.name), token)


def _try_load(load, token) -> None:
    """Load an upload; on bad input show why and keep whatever was loaded before."""
    try:
        with st.spinner("Checking and evaluating the upload…"):
            model = load()
            facts = describe(model)
    except InputError as exc:
        st.session_state["upload_error"] = str(exc)
        st.session_state["uploaded_token"] = token
        return
    st.session_state.update(uploaded_model=model, uploaded_facts=facts, uploaded_token=token, upload_error=None)


def upload_error() -> None:
    """The reason the last upload was refused, while the sidebar still holds the refused file (a valid upload, or
    removing the file, ends it), naming the model still in use so its numbers below are not taken for the new one's.
    """
    error, kept = st.session_state.get("upload_error"), st.session_state.get("uploaded_model")
    if not error or st.session_state.get("uploaded_token") != st.session_state.get("upload_in_sidebar"):
        return
    if kept is None:
        st.error(f"Upload refused: {error}")
    else:
        data = f" with its data **{kept.dataset.name}**" if kept.source == "onnx" else ""
        st.error(f"Upload refused: {error}\n\nStill in use: **{kept.name}**{data}, loaded before. The numbers on this "
                 "page are that model's.")


def current_model() -> tuple[LoadedModel, ModelFacts] | None:
    """The model chosen in the sidebar, or None (with a message shown) when there is none yet."""
    ensure_routed()
    choice = st.session_state.get("model", ZOO[0])
    if is_lm(choice):
        st.info(f"**{choice}** is a language model: see it on the Model page and compress it on the "
                "Language models page. This page works on the image classifiers above it in the sidebar.")
        return None
    if choice in ZOO:
        try:
            _ensure_trained(choice)
        except InputError as exc:  # e.g. Fashion-MNIST missing for lenet-300-100
            st.error(str(exc))
            return None
        return zoo_model(choice), zoo_facts(choice)
    if choice == CUSTOM:
        try:
            model = custom_model(custom_from_environment())
        except InputError as exc:
            st.error(str(exc))
            return None
        return model, describe(model)
    upload_error()
    if st.session_state.get("uploaded_model") is None:
        st.info("Upload a model in the sidebar, or pick a zoo model.")
        return None
    return st.session_state["uploaded_model"], st.session_state["uploaded_facts"]


def chosen_is_lm() -> bool:
    return is_lm(st.session_state.get("model"))


def model_with_weights(nothing_to_do: str) -> LoadedModel:
    """The sidebar's model for a page that acts on Linear/Conv weights; stops the page with a message otherwise."""
    picked = current_model()
    if picked is None:
        st.stop()
    model = picked[0]
    if not model.weights():
        st.warning(nothing_to_do)
        st.stop()
    return model
