"""Perplexity on held-out token windows."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class Perplexity:
    perplexity: float
    tokens: int  # predicted tokens: samples * (seq_len - 1)
    nll: float  # mean negative log-likelihood per token, in nats
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def perplexity(model: nn.Module, ids: Tensor, batch_size: int = 4) -> Perplexity:
    """exp(mean NLL) of predicting each next token of every window in `ids` (samples, seq_len)."""
    start = time.perf_counter()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for batch in ids.split(batch_size):
        batch = batch.to(device)
        logits = model(input_ids=batch, use_cache=False).logits[:, :-1]  # (B, T-1, V)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1),
                                 reduction="sum").item()
        count += batch[:, 1:].numel()
    nll = total / count
    return Perplexity(math.exp(min(nll, 700.0)), count, nll, time.perf_counter() - start)
