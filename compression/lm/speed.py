"""How fast a causal LM runs at batch 1: prefill tokens/s for a prompt, then greedy decode tokens/s with the KV cache,
each the median over repeats (with the slowest and fastest repeat beside it). Times are measured in the calling
process at the calling thread's torch threads; memory is measured elsewhere (a child process, see
compression.pipeline.lm_cost)."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from transformers import DynamicCache

from compression.core.errors import InputError


@dataclass(frozen=True)
class Speed:
    """Batch-1 speed of one model; decode is greedy, one token per forward pass, reading the KV cache."""

    decode_tokens_per_s: float  # median over repeats
    decode_tokens_per_s_min: float  # the slowest repeat
    decode_tokens_per_s_max: float  # the fastest repeat
    prefill_tokens_per_s: float  # median over repeats: prompt tokens in one forward pass
    prompt_tokens: int
    new_tokens: int
    repeats: int
    threads: int

    def to_dict(self) -> dict:
        return asdict(self)


def _forward(model: nn.Module, ids: Tensor, cache: DynamicCache) -> Tensor:
    # logits_to_keep=1: a runtime computes the next token's logits only, prompt or not
    return model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1).logits[:, -1]


@torch.no_grad()
def measure_speed(model: nn.Module, prompt: Tensor, new_tokens: int = 32, repeats: int = 5,
                  warmup: int = 1) -> Speed:
    """Time `repeats` greedy continuations of `prompt` (1-D token ids) by `new_tokens` tokens after `warmup` untimed
    ones: prefill tokens/s from the prompt's forward pass, decode tokens/s from the tokens after it."""
    if prompt.dim() != 1 or prompt.numel() < 1:
        raise InputError("the prompt must be a non-empty 1-D tensor of token ids")
    if new_tokens < 1 or repeats < 1:
        raise InputError(f"new_tokens and repeats must be at least 1, got {new_tokens} and {repeats}")
    ids = prompt[None].to(next(model.parameters(), torch.empty(0)).device)
    prefill, decode = [], []
    for run in range(warmup + repeats):
        cache = DynamicCache(config=model.config)
        start = time.perf_counter()
        token = _forward(model, ids, cache).argmax(-1, keepdim=True)
        middle = time.perf_counter()
        for _ in range(new_tokens):
            token = _forward(model, token, cache).argmax(-1, keepdim=True)
        end = time.perf_counter()
        if run >= warmup:
            prefill.append(ids.shape[1] / (middle - start))
            decode.append(new_tokens / (end - middle))
    return Speed(statistics.median(decode), min(decode), max(decode), statistics.median(prefill), ids.shape[1],
                 new_tokens, repeats, torch.get_num_threads())


def kv_bytes_per_token(model: nn.Module, context: int, element_bytes: int) -> int:
    """Bytes of KV cache one decode step reads at `context` tokens: keys and values of every layer."""
    config = model.config
    layers = getattr(config, "num_hidden_layers", None) or config.n_layer
    heads = getattr(config, "num_attention_heads", None) or config.n_head
    hidden = getattr(config, "hidden_size", None) or config.n_embd
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    return 2 * layers * kv_heads * head_dim * context * element_bytes
