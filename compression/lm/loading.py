"""One name for every language model the lab can load."""

from __future__ import annotations

from pathlib import Path

from compression.core.errors import InputError
from compression.lm.models import SMOLLM2, LanguageModel, load_gguf, load_hf_folder, load_smollm2
from compression.lm.tinygpt import TINY_GPT, load_tiny_gpt

MODEL_NAMES = (TINY_GPT, SMOLLM2)


def load_language_model(spec: str) -> LanguageModel:
    """`tiny-gpt`, `smollm2`, a Hugging Face folder or a .gguf file."""
    if spec == TINY_GPT:
        return load_tiny_gpt()
    if spec == SMOLLM2:
        return load_smollm2()
    path = Path(spec)
    if path.is_dir():
        return load_hf_folder(path)
    if path.is_file() and path.suffix.lower() == ".gguf":
        return load_gguf(path)
    raise InputError(f"{spec!r} is not {TINY_GPT}, {SMOLLM2}, a Hugging Face folder or a .gguf file")
