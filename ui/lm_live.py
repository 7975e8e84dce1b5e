"""The Language-model page's live RTN point: RTN follows the bits slider, read first on a short slice beside the dense
model on the same tokens, then on the full evaluation tokens, which puts it on the bits chart."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from compression.core import InputError
from compression.lm import Perplexity
from compression.pipeline import lm_config
from compression.plots import language_model as plots_lm
from ui.lm_models import dense_perplexity, live_perplexity, text_key
from ui.lm_runs import SHORT, series_of
from ui.lm_sections import LIVE, LMSettings, noise


def bits_chart(slot, points: list[dict], settings: LMSettings, dense_ppl: float | None,
               live: dict | None = None, key: str = "lm_chart_bits") -> None:
    """The weight-only bits chart (`key`: the chart before and after the live RTN point need two keys)."""
    merged = {(p["series"], p["x"]): p for p in live_points(settings) + points}  # a run replaces a live point
    slot.plotly_chart(plots_lm.perplexity_curves(list(merged.values()), "x", "weight bits (weights only)",
                                                 "Perplexity vs bits", dense_ppl, live=live,
                                                 x_range=(1.5, 8.5)), key=key)


def live_points(settings: LMSettings) -> list[dict]:
    return [{"method": "rtn", "series": series, "x": bits, "perplexity": ppl, "label": f"{series} {bits}-bit (live)"}
            for (spec, key, series, bits), ppl in st.session_state.get(LIVE, {}).items()
            if spec == settings.spec and key == settings.eval_key]


@dataclass
class LivePoint:
    """The live RTN point: measured on a short slice first (beside the dense model on that slice), then on the full
    evaluation tokens, the ones the dense line is measured on, which puts it on the chart."""

    slot: object  # the bits chart's st.empty()
    points: list[dict]
    dense_ppl: float | None
    settings: LMSettings | None = None
    label: str = ""
    note: object = None


def live_rtn_first(settings: LMSettings, slot, points: list[dict], dense_ppl: float | None) -> LivePoint:
    """RTN follows the bits slider: draw the bits chart now, and if RTN is chosen its value on a short slice
    beside the dense model's on the very same tokens (the chart's dense line is measured on other, more tokens)."""
    live = LivePoint(slot, points, dense_ppl)
    if "rtn" not in settings.methods:
        bits_chart(slot, points, settings, dense_ppl)
        return live
    config = lm_config("rtn", bits=settings.bits, group_size=settings.group_size)
    live.settings, live.label = settings, f"live: {config.label}"
    full = _live_cached(settings)
    if full is not None:
        bits_chart(slot, points, settings, dense_ppl, {"x": config.bits, "perplexity": full.perplexity,
                                                       "label": live.label})
        st.caption(_full_caption(live.label, full))
        return live
    bits_chart(slot, points, settings, dense_ppl, key="lm_chart_bits_wait")  # the chart at once, RTN point next
    live.note = st.empty()
    try:
        quick = _live(settings, *SHORT)
        dense_short = dense_perplexity(settings.spec, settings.evaluation, text_key(settings.evaluation), *SHORT)
    except InputError as exc:
        live.note.error(str(exc))
        live.settings = None
        return live
    with live.note.container():
        m = st.columns(3)
        m[0].metric(f"Live {config.label}, first {quick.tokens:,} tokens", f"{quick.perplexity:.2f}",
                    help=noise(quick))
        m[1].metric("Dense model, the same tokens", f"{dense_short.perplexity:.2f}", help=noise(dense_short))
        m[2].metric("Ratio", f"×{quick.perplexity / dense_short.perplexity:.3f}", delta_color="off",
                    delta_arrow="off")
        st.caption(f"A quick first reading on {quick.tokens:,} tokens, both models on the same tokens. "
                   f"{noise(quick).capitalize()}. Measuring the {settings.eval_samples * (settings.seq_len - 1):,} "
                   "evaluation tokens of the chart's dense line…")
    return live


def _live(settings: LMSettings, samples: int, seq_len: int) -> Perplexity:
    return live_perplexity(settings.spec, settings.evaluation, text_key(settings.evaluation), settings.bits,
                           settings.group_size, samples, seq_len)


def _live_cached(settings: LMSettings) -> Perplexity | None:
    """The full evaluation of the live setting if this session has it already."""
    return st.session_state.get("lm_live_full", {}).get(_live_key(settings))


def _live_key(settings: LMSettings) -> tuple:
    config = lm_config("rtn", bits=settings.bits, group_size=settings.group_size)
    return settings.spec, settings.eval_key, series_of(config), config.bits


def _full_caption(label: str, full: Perplexity) -> str:
    return (f"{label.capitalize()}: perplexity {full.perplexity:.2f} on {full.tokens:,} tokens, the same tokens as "
            f"the dense line; {noise(full)}.")


def live_rtn_refine(live: LivePoint, dense_ppl: float | None) -> None:
    """The full evaluation of the live setting, drawn on the chart (last on the page: everything else first)."""
    settings = live.settings
    if settings is None or live.note is None:
        return
    try:
        full = _live(settings, settings.eval_samples, settings.seq_len)
    except InputError as exc:
        live.note.error(str(exc))
        return
    key = _live_key(settings)
    st.session_state.setdefault("lm_live_full", {})[key] = full
    st.session_state.setdefault(LIVE, {})[key] = full.perplexity
    bits_chart(live.slot, live.points, settings, dense_ppl, {"x": settings.bits, "perplexity": full.perplexity,
                                                             "label": live.label})
    live.note.caption(_full_caption(live.label, full))
