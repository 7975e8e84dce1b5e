"""Language models in the sidebar: which choices are LMs, and the cached (read-only) models and measurements."""

from __future__ import annotations

import hashlib

import streamlit as st

from compression.core import InputError
from compression.lm import (
    CORPORA,
    DecoderLayers,
    LanguageModel,
    Perplexity,
    TextSplit,
    calibration_ids,
    decode_text,
    evaluation_ids,
    generate,
    load_language_model,
    load_text,
    perplexity,
    split_text,
)
from compression.pipeline import (LiveRTN, Outlier, PruneWhy, QuantWhy, SmoothWhy, explain_pruning,
                                  explain_quantization, explain_smoothing, find_outliers, lm_config, one_layer)
from ui.lm_choices import CUSTOM_LM, LM_ENV, is_lm, lm_spec
from ui.routing import ensure_routed

UPLOADED_TEXT = "uploaded .txt"


@st.cache_resource(show_spinner=False, max_entries=3)
def lm_model(spec: str) -> LanguageModel:
    """Shared by every session: never mutate it; compress() returns a new model."""
    return load_language_model(spec)


def current_lm() -> LanguageModel | None:
    """The language model chosen in the sidebar, or None (with a message shown) when there is none."""
    ensure_routed()
    choice = st.session_state.get("model")
    if not is_lm(choice):
        return None
    try:
        with st.spinner(f"Loading {choice} (a .gguf is dequantized once on first use, ~20 s; the tiny GPT "
                        "trains itself once, a minute or two)…"):
            return lm_model(lm_spec(choice))
    except InputError as exc:
        # the server's own model is named by whoever started it: say where it came from
        st.error(f"The server's language model (${LM_ENV}) cannot be used: {exc}" if choice == CUSTOM_LM else str(exc))
        return None


@st.cache_resource(show_spinner=False, max_entries=4)
def builtin_text(name: str) -> TextSplit:
    return load_text(name)


def text_split(name: str, uploaded: bytes | None) -> TextSplit:
    """A built-in corpus, or the session's uploaded .txt (UTF-8), cut into calibration and evaluation parts."""
    if name != UPLOADED_TEXT:
        return builtin_text(name)
    if uploaded is None:
        raise InputError("upload a .txt file first (UTF-8, at least 2000 characters)")
    return split_text(UPLOADED_TEXT, decode_text(uploaded, "the uploaded file"))


def text_key(split: TextSplit) -> str:
    """A short fingerprint of a text (an upload is keyed by its content)."""
    return f"{split.name}:{hashlib.sha256(split.evaluation.encode()).hexdigest()[:10]}"


def evaluation_key(split: TextSplit, samples: int, seq_len: int) -> str:
    """The evaluation tokens a perplexity was measured on: points compare only when this is the same."""
    return f"{text_key(split)}|{samples}x{seq_len}"


def recorded_key(row: dict) -> str | None:
    """The evaluation key of a recorded run: the page records it; a command-line run records its text, tokens and
    window length, which name the same tokens when the text is a built-in one (an uploaded text cannot be told)."""
    if row.get("eval_key"):
        return row["eval_key"]
    text, tokens, seq_len = row.get("evaluation"), row.get("tokens"), row.get("seq_len")
    if text in CORPORA and tokens and seq_len and seq_len > 1 and tokens % (seq_len - 1) == 0:
        try:
            return evaluation_key(builtin_text(text), int(tokens) // (int(seq_len) - 1), int(seq_len))
        except InputError:  # the text is no longer installed
            return None
    return None


@st.cache_data(show_spinner=False, max_entries=64)
def dense_perplexity(spec: str, _split: TextSplit, key: str, samples: int, seq_len: int) -> Perplexity:
    """The uncompressed model's held-out perplexity (`key` names the text for the cache)."""
    lm = lm_model(spec)
    return perplexity(lm.model, evaluation_ids(lm.tokenizer, _split.evaluation, samples, seq_len))


@st.cache_data(show_spinner=False, max_entries=64)
def dense_generation(spec: str, prompt: str, max_new_tokens: int) -> str:
    return generate(lm_model(spec), prompt, max_new_tokens)


@st.cache_resource(show_spinner=False, max_entries=2)
def live_workbench(spec: str) -> LiveRTN:
    """One working copy per model for the live RTN path, shared by every session (it rounds under a lock)."""
    return LiveRTN(lm_model(spec))


@st.cache_data(show_spinner=False, max_entries=256)
def live_perplexity(spec: str, _split: TextSplit, key: str, bits: int, group_size: int, samples: int,
                    seq_len: int) -> Perplexity:
    """Round-to-nearest's perplexity on the first `samples` windows of the evaluation text (`key` names the text);
    measured once per server for each setting."""
    lm = lm_model(spec)
    ids = evaluation_ids(lm.tokenizer, _split.evaluation, samples, seq_len)
    return live_workbench(spec).perplexity(lm_config("rtn", bits=bits, group_size=group_size), ids)


@st.cache_data(show_spinner=False, max_entries=16)
def outliers(spec: str, _split: TextSplit, key: str, samples: int, seq_len: int) -> list[Outlier]:
    """Every decoder linear's loudest input channel on the calibration windows, strongest first (one pass)."""
    lm = lm_model(spec)
    return find_outliers(lm.model, DecoderLayers(), calibration_ids(lm.tokenizer, _split.calibration, samples,
                                                                    seq_len))


@st.cache_resource(show_spinner=False, max_entries=4)
def _layer(spec: str, _split: TextSplit, key: str, samples: int, seq_len: int, layer: int, role: str):
    lm = lm_model(spec)
    ids = calibration_ids(lm.tokenizer, _split.calibration, samples, seq_len)
    return one_layer(lm.model, DecoderLayers(), ids, layer, role)


@st.cache_data(show_spinner=False, max_entries=64)
def why_quantization(spec: str, _split: TextSplit, key: str, samples: int, seq_len: int, layer: int, role: str,
                     bits: int, group_size: int) -> QuantWhy:
    return explain_quantization(_layer(spec, _split, key, samples, seq_len, layer, role),
                                lm_config("gptq", bits=bits, group_size=group_size))


@st.cache_data(show_spinner=False, max_entries=64)
def why_pruning(spec: str, _split: TextSplit, key: str, samples: int, seq_len: int, layer: int, role: str,
                sparsity: float, pattern: str) -> PruneWhy:
    return explain_pruning(_layer(spec, _split, key, samples, seq_len, layer, role),
                           lm_config("sparsegpt", sparsity, (2, 4) if pattern == "2:4" else None))


@st.cache_data(show_spinner=False, max_entries=64)
def why_smoothing(spec: str, _split: TextSplit, key: str, samples: int, seq_len: int, layer: int, role: str,
                  alpha: float, wa_bits: int, granularity: str) -> SmoothWhy:
    return explain_smoothing(_layer(spec, _split, key, samples, seq_len, layer, role),
                             lm_config("smoothquant", alpha=alpha, wa_bits=wa_bits, act_granularity=granularity))
