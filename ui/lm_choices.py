"""The sidebar's language-model entries, without importing the LM engine (transformers) on every page."""

from __future__ import annotations

import os

TINY_GPT = "tiny-gpt"  # = compression.lm.TINY_GPT (tests/test_app_language_model.py checks they agree)
SMOLLM2 = "smollm2"  # = compression.lm.SMOLLM2
LM_ENV = "COMPRESSION_LAB_LM"  # a Hugging Face folder or a .gguf file on the server, named by whoever starts it
CUSTOM_LM = "Custom LM (server)"


def lm_choices() -> list[str]:
    """The language models the sidebar offers after the image classifiers."""
    return [TINY_GPT, SMOLLM2] + ([CUSTOM_LM] if os.environ.get(LM_ENV) else [])


def is_lm(choice: str | None) -> bool:
    return choice in lm_choices()


def lm_spec(choice: str) -> str:
    """What load_language_model reads for a sidebar choice (the server's own model comes from its environment)."""
    return os.environ.get(LM_ENV, "") if choice == CUSTOM_LM else choice
