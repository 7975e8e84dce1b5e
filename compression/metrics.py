"""Measurements: accuracy and loss, per-layer counts, real serialized sizes, measured latency, histograms."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn

from compression.core.histogram import Histogram


@dataclass(frozen=True)
class Evaluation:
    accuracy: float  # fraction in [0, 1]
    loss: float
    samples: int


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 2048) -> Evaluation:
    """Accuracy and mean cross-entropy of `model` on (x, y), in eval mode."""
    model.eval()
    correct, loss_sum = 0, 0.0
    for i in range(0, len(y), batch_size):
        logits = model(x[i:i + batch_size])
        loss_sum += F.cross_entropy(logits, y[i:i + batch_size], reduction="sum").item()
        correct += (logits.argmax(1) == y[i:i + batch_size]).sum().item()
    return evaluation_from_logits_stats(correct, loss_sum, len(y))


def evaluation_from_logits_stats(correct: int, loss_sum: float, samples: int) -> Evaluation:
    return Evaluation(correct / samples, loss_sum / samples, samples)


def logits_evaluation(logits: Tensor, y: Tensor) -> Evaluation:
    """Accuracy and loss from precomputed logits (e.g. from onnxruntime)."""
    loss = F.cross_entropy(logits, y, reduction="sum").item()
    return evaluation_from_logits_stats(int((logits.argmax(1) == y).sum()), loss, len(y))


@dataclass(frozen=True)
class LayerRow:
    """One layer of the architecture table."""

    layer: str
    type: str
    shape: str
    params: int
    nonzero: int

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero / self.params if self.params else 0.0


def layer_table(model: nn.Module) -> list[LayerRow]:
    """Every module that owns parameters directly, with its parameter and non-zero counts."""
    rows = []
    for name, module in model.named_modules():
        own = list(module.named_parameters(recurse=False))
        if not own:
            continue
        weight = dict(own).get("weight", own[0][1])
        rows.append(LayerRow(
            layer=name or "(root)", type=type(module).__name__,
            shape=" x ".join(str(d) for d in weight.shape) + ("" if "weight" in dict(own) else f" ({own[0][0]})"),
            params=sum(p.numel() for _, p in own),
            nonzero=sum(int(torch.count_nonzero(p)) for _, p in own),
        ))
    return rows


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_nonzero(model: nn.Module) -> int:
    return sum(int(torch.count_nonzero(p)) for p in model.parameters())


def state_dict_of(model: nn.Module) -> dict[str, Tensor]:
    """Detached, contiguous CPU tensors: what `export` writes and what the sizes are measured on."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def torch_save_bytes(state: Mapping[str, Tensor]) -> bytes:
    """The bytes of a real `model.pt` written by `torch.save` (the zip archive embeds the file's stem)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pt"
        torch.save(dict(state), path)
        return path.read_bytes()


def saved_size_bytes(module: nn.Module) -> int:
    """Bytes of the module's state dict as a real torch.save file: the reference size every ratio is taken against."""
    return len(torch_save_bytes(state_dict_of(module)))


def safetensors_bytes(state: Mapping[str, Tensor]) -> bytes:
    """The exact bytes of a .safetensors file of `state`."""
    return safetensors_save({k: v.contiguous() for k, v in state.items()})


@dataclass(frozen=True)
class Latency:
    """Wall-clock ms of one forward pass after warm-up, with how it was measured."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    best_ms: float  # the minimum: noise on a busy machine only ever adds time
    batch_size: int
    repeats: int
    threads: int  # torch's intra-op threads while timing


LATENCY_METHOD = ("latency_stat", "latency_batch", "latency_threads")  # how a recorded latency_ms was measured


def latency_method(latency: Latency, stat: str) -> dict[str, str | int]:
    """What a recorded latency is: its statistic (median or best), batch size and torch threads. Latencies are
    comparable only when all three agree."""
    if stat not in ("median", "best"):
        raise ValueError(f"stat must be median or best, got {stat!r}")
    return dict(zip(LATENCY_METHOD, (stat, latency.batch_size, latency.threads), strict=True))


def measure_latency(model: nn.Module, example: Tensor, warmup: int = 5, repeats: int = 30) -> Latency:
    """Latency of `model(example)` over `repeats` runs after `warmup` runs."""
    return latency_in_turns([model], example, repeats=repeats, warmup=warmup)[0]


@torch.no_grad()
def latency_in_turns(contenders: Sequence[nn.Module | Callable[[], nn.Module]], example: Tensor, repeats: int = 15,
                     warmup: int = 1, budget_ms: float | None = None) -> list[Latency]:
    """Each model's latency, timed one run of each in turn, so a burst of load on a shared CPU hits all alike.

    A contender is a module or a function returning one (e.g. a workbench with other weights swapped in).
    With `budget_ms`, stop after the timed round that exceeds it (at least five timed rounds, the warm-up not
    counted): a slider move stays fast, and slow first passes cannot cut the timed runs short.
    """
    getters = [(lambda m=c: m) if isinstance(c, nn.Module) else c for c in contenders]
    times: list[list[float]] = [[] for _ in getters]
    begin = time.perf_counter()
    for round_ in range(warmup + repeats):
        if round_ == warmup:
            begin = time.perf_counter()
        for get, bucket in zip(getters, times):
            module = get().eval()
            start = time.perf_counter()
            module(example)
            if round_ >= warmup:
                bucket.append((time.perf_counter() - start) * 1e3)
        timed = round_ - warmup + 1
        if budget_ms is not None and timed >= 5 and (time.perf_counter() - begin) * 1e3 > budget_ms:
            break
    return [_latency(t, len(example)) for t in times]


def _latency(times: list[float], batch_size: int) -> Latency:
    deciles = statistics.quantiles(times, n=10) if len(times) > 1 else [times[0]] * 9
    return Latency(statistics.median(times), deciles[0], deciles[-1], min(times), batch_size, len(times),
                   torch.get_num_threads())


def histogram(values: Tensor, bins: int = 100, value_range: tuple[float, float] | None = None) -> Histogram:
    """Histogram computed on the server, so only `bins` numbers reach the browser."""
    flat = values.detach().float().flatten()
    flat = flat[torch.isfinite(flat)]
    if value_range is None:
        lo, hi = (flat.min().item(), flat.max().item()) if flat.numel() else (0.0, 0.0)
    else:
        lo, hi = value_range
    if hi <= lo:  # constant tensor: one visible bar around the value
        lo, hi = lo - 0.5, hi + 0.5
    counts = torch.histc(flat, bins=bins, min=lo, max=hi)
    edges = torch.linspace(lo, hi, bins + 1)
    return Histogram([int(c) for c in counts.tolist()], edges.tolist())
