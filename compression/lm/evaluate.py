"""Perplexity and next-token top-1 accuracy on held-out token windows, with how noisy the perplexity is."""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from compression.core.progress import run_to_end

Z95 = 1.96  # a normal 95% interval


@dataclass(frozen=True)
class Perplexity:
    perplexity: float
    tokens: int  # predicted tokens: samples * (seq_len - 1)
    nll: float  # mean negative log-likelihood per token, in nats
    seconds: float
    top1: float  # fraction of the predicted tokens the model ranks first (next-token top-1 accuracy)
    windows: int = 1  # the evaluation windows the tokens came in
    # standard error of the mean NLL across windows (NaN for one window): tokens within a window are correlated,
    # the windows (consecutive stretches of text) much less, so they are what the noise is measured over
    nll_se: float = math.nan

    def interval(self, z: float = Z95) -> tuple[float, float] | None:
        """The range this perplexity would move in on other windows of the same kind of text (about 95% with the
        default z); None with a single window."""
        return perplexity_interval(self.nll, self.nll_se, z)

    def noise(self) -> dict:
        """What a recorded run keeps to redraw its 95% range: the windows and the NLL's standard error (None for one
        window, where there is no spread to measure; JSON has no NaN)."""
        return {"windows": self.windows, "nll_se": self.nll_se if math.isfinite(self.nll_se) else None}

    def to_dict(self) -> dict:
        return asdict(self)


def perplexity_interval(nll: float, nll_se: float | None, z: float = Z95) -> tuple[float, float] | None:
    """exp(nll ± z·se), or None without a standard error (one window)."""
    if nll_se is None or not math.isfinite(nll_se):
        return None
    return math.exp(min(nll - z * nll_se, 700.0)), math.exp(min(nll + z * nll_se, 700.0))


@dataclass(frozen=True)
class EvalProgress:
    """`done` of `total` evaluation windows have been scored."""

    done: int
    total: int


@torch.no_grad()
def perplexity_steps(model: nn.Module, ids: Tensor, batch_size: int = 4) -> Generator[EvalProgress, None, Perplexity]:
    """exp(mean NLL) of predicting each next token of every window in `ids` (samples, seq_len), how often the
    model's most likely next token is the one that follows (top-1 accuracy), and the standard error of the mean NLL
    over the windows; yields after each batch of windows. Closing the generator stops after the current batch."""
    start = time.perf_counter()
    device = next(model.parameters()).device
    per_window, hits = [], 0
    for batch in ids.split(batch_size):
        batch = batch.to(device)
        logits = model(input_ids=batch, use_cache=False).logits[:, :-1]  # (B, T-1, V)
        targets = batch[:, 1:]
        losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), reduction="none")
        per_window += losses.view(targets.shape).mean(1).tolist()  # every window predicts seq_len - 1 tokens
        hits += int((logits.argmax(-1) == targets).sum())
        yield EvalProgress(len(per_window), ids.shape[0])
    windows = torch.tensor(per_window, dtype=torch.float64)
    nll = float(windows.mean())
    se = float(windows.std() / math.sqrt(len(per_window))) if len(per_window) > 1 else math.nan
    count = ids.shape[0] * (ids.shape[1] - 1)
    return Perplexity(math.exp(min(nll, 700.0)), count, nll, time.perf_counter() - start, hits / count,
                      len(per_window), se)


def perplexity(model: nn.Module, ids: Tensor, batch_size: int = 4) -> Perplexity:
    """`perplexity_steps` without its progress."""
    return run_to_end(perplexity_steps(model, ids, batch_size))
