"""Perplexity and next-token top-1 accuracy on held-out token windows."""

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
    top1: float  # fraction of the predicted tokens the model ranks first (next-token top-1 accuracy)

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def perplexity(model: nn.Module, ids: Tensor, batch_size: int = 4) -> Perplexity:
    """exp(mean NLL) of predicting each next token of every window in `ids` (samples, seq_len), and how often the
    model's most likely next token is the one that follows (top-1 accuracy)."""
    start = time.perf_counter()
    device = next(model.parameters()).device
    total, count, hits = 0.0, 0, 0
    for batch in ids.split(batch_size):
        batch = batch.to(device)
        logits = model(input_ids=batch, use_cache=False).logits[:, :-1]  # (B, T-1, V)
        targets = batch[:, 1:]
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                                 reduction="sum").item()
        hits += int((logits.argmax(-1) == targets).sum())
        count += targets.numel()
    nll = total / count
    return Perplexity(math.exp(min(nll, 700.0)), count, nll, time.perf_counter() - start, hits / count)
