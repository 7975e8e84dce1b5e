"""The Language-model page's "why" section: the dense model's loudest input channels (one pass over every layer,
cached), and on one layer, with the same calibration windows as the runs, why GPTQ, SparseGPT, Wanda and
SmoothQuant do better than the plain method beside them (ui/why_views.py draws each)."""

from __future__ import annotations

import streamlit as st

from compression.core import InputError
from compression.lm import LanguageModel, layer_roles
from compression.plots import why as plots_why
from ui import why_views
from ui.lm_models import outliers, text_key, why_pruning, why_quantization, why_smoothing

TOP = 8  # layers listed by their loudest channel


def why_section(lm: LanguageModel, settings) -> None:
    """Pick a layer (the loudest one to start with) and see each method family's reason on it."""
    st.subheader("Why each method works, on one layer")
    calibration, key = settings.calibration, text_key(settings.calibration)
    windows = (settings.calib_samples, settings.seq_len)
    try:
        with st.spinner("Looking for the loudest input channels in every layer (once per model and text)…"):
            found = outliers(settings.spec, calibration, key, *windows)
    except InputError as exc:
        st.error(str(exc))
        return
    top = found[:TOP]
    roles = list(layer_roles(lm.model))
    strongest = found[0]
    st.plotly_chart(plots_why.outlier_bars([f"layer {o.layer} · {o.role}" for o in top], [o.ratio for o in top],
                                           [o.channel for o in top],
                                           "The loudest input channels of the dense model"),
                    key="lm_outlier_top")
    st.caption(f"Every linear's loudest input channel over its median channel, all {lm.info.layers} layers searched "
               f"on {_tokens(settings)}; "
               f"the strongest is layer {strongest.layer} · {strongest.role}, channel {strongest.channel} "
               f"({strongest.ratio:.1f}×). Real LLMs have a few such channels (in SmolLM2 a few down projections' "
               "inputs reach hundreds to thousands of times their median channel); the tiny GPT, trained small and "
               "from scratch, has none worth the name, which is why Wanda ≈ magnitude and AWQ ≈ RTN on it. The views "
               "below start on the strongest layer.")
    c = st.columns(2)
    layer = c[0].slider("Decoder layer", 0, lm.info.layers - 1, strongest.layer, key="lm_outlier_layer",
                        bind="query-params")
    role = c[1].selectbox("Input of", roles, index=roles.index(strongest.role), key="lm_outlier_role",
                          bind="query-params")
    where = (settings.spec, calibration, key, *windows, layer, role)
    tabs = st.tabs(["GPTQ vs round-to-nearest", "SparseGPT vs magnitude", "Wanda vs magnitude",
                    "Outliers and SmoothQuant"])
    try:
        with tabs[0]:
            why_views.gptq_view(why_quantization(*where, settings.bits, settings.group_size), "lm_why_gptq")
        pruning = why_pruning(*where, settings.sparsity, settings.pattern)
        with tabs[1]:
            why_views.sparsegpt_view(pruning, "lm_why_sparsegpt")
        with tabs[2]:
            why_views.wanda_view(pruning, "lm_why_wanda")
        with tabs[3]:
            why_views.smoothing_view(why_smoothing(*where, settings.alpha, settings.wa_bits,
                                                   settings.act_granularity), "lm_why_smooth")
    except InputError as exc:
        st.error(str(exc))
    grid = f"groups of {settings.group_size}" if settings.group_size else "one grid per row"
    pattern = "2:4" if settings.pattern == "2:4" else f"{settings.sparsity:.0%}"
    st.caption(f"Every view above is on the same layer (layer {layer} · {role}) and the same {_tokens(settings)} "
               f"the runs use, with the page's settings ({settings.bits}-bit weights in {grid}, {pattern} sparsity, "
               "SmoothQuant's α and W·A·), computed on the dense model's inputs to this layer.")


def _tokens(settings) -> str:
    return f"{settings.calib_samples} × {settings.seq_len} calibration tokens of {settings.calibration.name}"
