"""What every page shares: the sidebar model picker (URL-bound) and the cached, read-only models."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from urllib.parse import urlencode

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx
from streamlit.runtime.state.query_params import QueryParams

from compression.core import InputError, settings
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

_router = threading.local()  # one script run per thread: is app.py routing this run?


@contextmanager
def routing():
    """Wrap app.py's navigation so pages can tell they were reached through the router."""
    _router.active = True
    try:
        yield
    finally:
        _router.active = False


def ensure_routed() -> None:
    """Rerun through app.py when Streamlit ran a page script alone.

    Streamlit treats an app with a pages/ folder as a legacy folder app until app.py calls st.navigation; a
    first visit by direct link (/prune?sparsity=0.9) would then run pages/prune.py alone, without the sidebar.
    Switching the legacy mode off and rerunning sends the same URL through app.py (same url_path, same page).
    """
    if not getattr(_router, "active", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def _keep_history_on_page_switch() -> None:
    """Keep a page switch from rewriting the old page's browser-history entry without its settings.

    On a page switch Streamlit drops the old page's URL-bound params and corrects the new page's ones, and tells
    the browser while it still shows the old page: /quantize lost its query string (or /prune became
    /prune?bits=2) before the new page was pushed, so Back landed on an entry without the settings. During the
    switch run, from the filtering until the run's closing clean-up, the messages are held back (the run still
    knows its query string); the browser then pushes the new page with the query string it holds
    (/prune?bits=2&sparsity=0.84): Back returns to the old entry intact, and other pages' params ride along
    (ignored here, restored on their page). The next interaction writes this page's URL as usual.
    Pinned by tests/test_streamlit_routing_patch.py.
    """
    populate, remove_stale = QueryParams.populate_from_query_string, QueryParams.remove_stale_bindings
    send = QueryParams._send_query_param_msg
    if getattr(populate, "keeps_history", False):
        return

    def _send_query_param_msg(self) -> None:
        if self.__dict__.get("_quiet_cleanups", 0) > 0:
            ctx = get_script_run_ctx()
            if ctx is not None:
                ctx.query_string = urlencode(self._query_params, doseq=True)
            return None
        return send(self)

    def populate_from_query_string(self, query_string: str, valid_script_hashes: set[str] | None = None) -> None:
        if valid_script_hashes is not None:  # a page switch: quiet through the clean-up before the run and after it
            self.__dict__["_quiet_cleanups"] = 2
        return populate(self, query_string, valid_script_hashes)

    def remove_stale_bindings(self, *args, **kwargs) -> None:
        quiet = self.__dict__.get("_quiet_cleanups", 0)
        try:
            return remove_stale(self, *args, **kwargs)
        finally:
            self.__dict__["_quiet_cleanups"] = max(0, quiet - 1)
            if quiet == 1:  # the switch run is over and the browser shows the new page: now its URL
                send(self)

    populate_from_query_string.keeps_history = True
    populate_from_query_string.__wrapped__ = populate
    remove_stale_bindings.__wrapped__ = remove_stale
    _send_query_param_msg.__wrapped__ = send
    QueryParams.populate_from_query_string = populate_from_query_string
    QueryParams.remove_stale_bindings = remove_stale_bindings
    QueryParams._send_query_param_msg = _send_query_param_msg


_keep_history_on_page_switch()

# Narrow windows (800 px with the sidebar open leaves ~500 px): columns wrap two to a row instead of squeezing
# four into it, charts take a row each, and card values, labels and button texts wrap instead of ending in "96.9…".
_NARROW_CSS = """<style>
@media (max-width: 1100px) {
  [data-testid="stMain"] [data-testid="stHorizontalBlock"] { flex-wrap: wrap; }
  [data-testid="stMain"] [data-testid="stColumn"] { min-width: calc(50% - 1rem) !important; }
  [data-testid="stMain"] [data-testid="stColumn"]:has(.js-plotly-plot) { min-width: 100% !important; }
  [data-testid="stMetricValue"] { font-size: 1.8rem; }
}
[data-testid="stMetric"] .stMarkdownEllipsis, [data-testid="stWidgetLabel"] .stMarkdownEllipsis,
[data-testid="stButton"] .stMarkdownEllipsis {
  white-space: normal; overflow: visible; text-overflow: clip;
}
</style>"""


# One browser-history entry per page, not per setting. Streamlit's frontend replaces the URL when a user moves a
# slider but pushes a new entry when the server rewrites the query string (a value put in force, a default
# dropped from a shared link): Back then stepped through invisible changes of one page. Within one path, push
# becomes replace; going to another page still pushes. Our own constant script, never user input.
_ONE_ENTRY_PER_PAGE_JS = """<script>
(() => {
  if (window.__clabOneEntryPerPage) return;
  window.__clabOneEntryPerPage = true;
  const push = history.pushState.bind(history);
  history.pushState = (state, title, url) => {
    const next = new URL(url, window.location.href);
    if (next.pathname === window.location.pathname) return history.replaceState(state, title, url);
    return push(state, title, url);
  };
})();
</script>"""


def page_style() -> None:
    """The app's few CSS rules (see _NARROW_CSS) and its history rule (see _ONE_ENTRY_PER_PAGE_JS)."""
    st.html(_NARROW_CSS + _ONE_ENTRY_PER_PAGE_JS, unsafe_allow_javascript=True)


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
    if file is not None and st.session_state.get("uploaded_token") != (file.file_id, arch):
        _try_load(lambda: load_weights(arch, file.getvalue(), file.name), (file.file_id, arch))


def _onnx_uploader() -> None:
    st.caption("ONNX models run in onnxruntime. Weight-level techniques (magnitude and N:M pruning, weight "
               "quantization) act on the Gemm/MatMul/Conv initializers; training-based ones need a PyTorch model.")
    model_file = st.file_uploader("ONNX model (.onnx)", type=["onnx"], key="upload_onnx_file",
                                  max_upload_size=settings.max_upload_mb())
    data_file = st.file_uploader("Evaluation data (.npz with arrays x and y)", type=["npz"], key="upload_npz_file",
                                 max_upload_size=settings.max_upload_mb())
    if model_file is not None and data_file is not None:
        token = (model_file.file_id, data_file.file_id)
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
    if st.session_state.get("upload_error"):
        st.error(st.session_state["upload_error"])
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
