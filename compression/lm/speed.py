"""How fast a causal LM runs at batch 1: prefill tokens/s for a prompt, then greedy decode tokens/s with the KV cache,
each the median over repeats (with the slowest and fastest repeat beside it). Times are measured in the calling
process at the calling thread's torch threads; memory is measured elsewhere (a child process, see
compression.pipeline.lm_cost)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
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
    # ms per decoded token inside the weight layers (forward hooks, one decode after the timed ones); None: not timed
    decode_weight_layers_ms: float | None = None

    @property
    def decode_other_ms(self) -> float | None:
        """ms per decoded token outside the weight layers: attention over the KV cache, norms, sampling, Python."""
        if self.decode_weight_layers_ms is None:
            return None
        return max(0.0, 1000.0 / self.decode_tokens_per_s - self.decode_weight_layers_ms)

    def to_dict(self) -> dict:
        return asdict(self)


def _forward(model: nn.Module, ids: Tensor, cache: DynamicCache) -> Tensor:
    # logits_to_keep=1: a runtime computes the next token's logits only, prompt or not
    return model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1).logits[:, -1]


@torch.no_grad()
def measure_speed(model: nn.Module, prompt: Tensor, new_tokens: int = 32, repeats: int = 5,
                  warmup: int = 1, weight_layer: Callable[[nn.Module], bool] | None = None) -> Speed:
    """Time `repeats` greedy continuations of `prompt` (1-D token ids) by `new_tokens` tokens after `warmup` untimed
    ones: prefill tokens/s from the prompt's forward pass, decode tokens/s from the tokens after it; with
    `weight_layer`, also the decode's time inside the modules it picks (in one more continuation, hooked)."""
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
    layers_ms = None if weight_layer is None else _weight_layers_ms(model, ids, new_tokens, weight_layer)
    return Speed(statistics.median(decode), min(decode), max(decode), statistics.median(prefill), ids.shape[1],
                 new_tokens, repeats, torch.get_num_threads(), layers_ms)


def _weight_layers_ms(model: nn.Module, ids: Tensor, new_tokens: int, weight_layer: Callable[[nn.Module], bool]
                      ) -> float:
    """ms per decoded token spent inside the modules `weight_layer` picks, timed between forward hooks; apart from
    the timed continuations, whose figures the hooks' own cost would skew."""
    spent, start, counting = [0.0], [0.0], [False]

    def enter(module, args):
        start[0] = time.perf_counter()

    def leave(module, args, output):
        if counting[0]:
            spent[0] += time.perf_counter() - start[0]

    handles = [h for m in model.modules() if weight_layer(m)
               for h in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))]
    if not handles:
        raise InputError("no module of this model is a weight layer: nothing to time")
    try:
        cache = DynamicCache(config=model.config)
        token = _forward(model, ids, cache).argmax(-1, keepdim=True)
        counting[0] = True
        for _ in range(new_tokens):
            token = _forward(model, token, cache).argmax(-1, keepdim=True)
    finally:
        for handle in handles:
            handle.remove()
    return spent[0] / new_tokens * 1000.0


def kv_bytes_per_token(model: nn.Module, context: int, element_bytes: int) -> int:
    """Bytes of KV cache one decode step reads at `context` tokens: keys and values of every layer."""
    config = model.config
    layers = getattr(config, "num_hidden_layers", None) or config.n_layer
    heads = getattr(config, "num_attention_heads", None) or config.n_head
    hidden = getattr(config, "hidden_size", None) or config.n_embd
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    return 2 * layers * kv_heads * head_dim * context * element_bytes
