"""Language models in the sidebar: which choices are LMs, and the cached (read-only) models and measurements."""

from __future__ import annotations

import hashlib

import streamlit as st

from compression.core import InputError
from compression.lm import (
    LanguageModel,
    generate,
    Perplexity,
    TextSplit,
    decode_text,
    evaluation_ids,
    load_language_model,
    load_text,
    perplexity,
    split_text,
)
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


@st.cache_data(show_spinner=False, max_entries=64)
def dense_perplexity(spec: str, _split: TextSplit, key: str, samples: int, seq_len: int) -> Perplexity:
    """The uncompressed model's held-out perplexity (`key` names the text for the cache)."""
    lm = lm_model(spec)
    return perplexity(lm.model, evaluation_ids(lm.tokenizer, _split.evaluation, samples, seq_len))


@st.cache_data(show_spinner=False, max_entries=64)
def dense_generation(spec: str, prompt: str, max_new_tokens: int) -> str:
    return generate(lm_model(spec), prompt, max_new_tokens)
