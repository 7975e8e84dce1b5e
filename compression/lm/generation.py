"""Greedy generation from a prompt."""

from __future__ import annotations

import torch

from compression.core.errors import InputError
from compression.lm.models import LanguageModel


def max_positions(lm: LanguageModel) -> int:
    config = lm.model.config
    return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", 1024)


@torch.no_grad()
def generate(lm: LanguageModel, prompt: str, max_new_tokens: int = 40) -> str:
    """The greedy continuation of `prompt` (the new text only); the same for the same model and prompt."""
    if not 1 <= max_new_tokens <= 1024:
        raise InputError(f"max_new_tokens must be from 1 to 1024, got {max_new_tokens}")
    ids = lm.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    if ids.shape[1] == 0:
        raise InputError("the prompt is empty")
    room = max_positions(lm) - ids.shape[1]
    if room < 1:
        raise InputError(f"the prompt has {ids.shape[1]} tokens; this model reads at most {max_positions(lm)}")
    device = next(lm.model.parameters()).device
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else lm.tokenizer.eos_token_id
    out = lm.model.generate(ids.to(device), attention_mask=torch.ones_like(ids).to(device), do_sample=False,
                            max_new_tokens=min(max_new_tokens, room), pad_token_id=pad if pad is not None else 0)
    new = out[0, ids.shape[1]:].tolist()
    return lm.tokenizer.decode(new, skip_special_tokens=True)
