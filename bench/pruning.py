"""Pruning targets, each next to its reference measured in the same run.

- `sparsity` slider move on the Pruning page (AppTest set_value + run, median ms) on mlp and cnn, next to a
  rerun with nothing changed (the harness and page floor)
- the 22-point accuracy-vs-sparsity curve vs the naive loop (deepcopy + global_unstructured + evaluate per point)
- fine-tuned accuracy retention: mlp at 90% global, cnn at 95% global, one-shot + fine-tune and gradual
- structured removal of half the hidden units of a wide MLP: measured speed-up
"""

from __future__ import annotations

import copy
import statistics
import time

import torch
import torch.nn.utils.prune as tp
from torch import nn

from bench._apptest import slider_move_ms
from compression.core import run_to_end
from compression.data import load_dataset
from compression.metrics import evaluate, latency_in_turns
from compression.models import MLP, LoadedModel, Workbench, load_zoo
from compression.pruning import (
    CURVE_AMOUNTS,
    FinetuneConfig,
    GradualConfig,
    PruneConfig,
    accuracy_curve,
    finetune,
    plan,
    prune,
    prune_gradually,
    rebuild,
    shrink,
)
from compression.training import TrainConfig

SLIDER = [0.55, 0.7, 0.35, 0.9, 0.6, 0.8, 0.2, 0.95, 0.5, 0.75, 0.4, 0.85, 0.65, 0.3, 0.92, 0.45, 0.78, 0.1, 0.88, 0.5]


def _slider_ms(model: str) -> tuple[float, float]:
    return slider_move_ms(model, "pages/prune.py", "sparsity", SLIDER)


def _naive_curve(model, amounts) -> list[float]:
    out = []
    for amount in amounts:
        module = copy.deepcopy(model.module)
        tp.global_unstructured([(m, "weight") for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d))],
                               pruning_method=tp.L1Unstructured, amount=amount)
        out.append(evaluate(module, model.dataset.x_test, model.dataset.y_test).accuracy)
    return out


def _timed(fn, repeats: int = 5) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), result


def main() -> None:
    torch.set_num_threads(1)  # both sides of every ratio on one thread: the machine is shared
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread")
    _slider_moves()
    _curves()
    _finetuned()
    _structured_speedup()


def _slider_moves() -> None:
    for name, target in {"mlp": 50.0, "cnn": 100.0}.items():
        load_zoo(name)
        move, rerun = _slider_ms(name)
        verdict = "meets" if move <= target else "misses"
        print(f"slider move {name}: median {move:.1f} ms (target <= {target:.0f} ms: {verdict}); "
              f"rerun with nothing changed {rerun:.1f} ms")


def _curves() -> None:
    for name in ("mlp", "cnn"):
        model = load_zoo(name)
        config = PruneConfig(amount=0.5)
        bench = Workbench(model)  # the page keeps one per session; built once, like the page does
        fast, naive = [], []
        for _ in range(7):  # in turns, so load from other work hits both alike
            fast_ms, curve = _timed(lambda: accuracy_curve(bench, config), repeats=1)  # noqa: B023
            naive_ms, reference = _timed(lambda: _naive_curve(model, CURVE_AMOUNTS), repeats=1)  # noqa: B023
            fast.append(fast_ms)
            naive.append(naive_ms)
        fast_ms, naive_ms = statistics.median(fast), statistics.median(naive)
        same = [p.accuracy for p in curve] == reference
        target = " (target >= 5x)" if name == "mlp" else ""
        print(f"{len(CURVE_AMOUNTS)}-point curve {name}: {fast_ms:.1f} ms (one reused Workbench) vs naive "
              f"deepcopy+global_unstructured+evaluate {naive_ms:.1f} ms: {naive_ms / fast_ms:.1f}x faster{target}; "
              f"same accuracies: {same}")


def _finetuned() -> None:
    runs = {"mlp": (0.9, 60, 0.985), "cnn": (0.95, 30, 0.97)}
    for name, (amount, epochs, target) in runs.items():
        model = load_zoo(name)
        dense = model.evaluate().accuracy
        oneshot = prune(model, PruneConfig(amount=amount)).accuracy
        train = TrainConfig(epochs=epochs, lr=1e-3)
        tuned = run_to_end(finetune(model, FinetuneConfig(PruneConfig(amount=amount), train)))
        gradual = run_to_end(prune_gradually(model, GradualConfig(PruneConfig(amount=amount), train)))
        for label, result in (("one-shot + fine-tune", tuned), ("gradual (cubic)", gradual)):
            verdict = "meets" if result.retention >= target else "misses"
            print(f"{name} at {amount:.0%} global, {label}, {epochs} epochs: {result.accuracy:.4f} vs dense "
                  f"{dense:.4f} = {result.retention:.2%} kept (target >= {target:.1%}: {verdict}); "
                  f"one-shot without training {oneshot:.4f}")


def _structured_speedup() -> None:
    torch.manual_seed(0)
    wide = MLP(512, (2048, 2048), 10).eval()
    wide_model = LoadedModel("wide-mlp", "custom", load_dataset("digits"), module=wide)
    keep = plan(wide, PruneConfig(method="structured", amount=0.5))
    half = rebuild(wide_model, shrink(wide, keep))
    example = torch.randn(64, 512)
    dense_ms, half_ms = [t.median_ms for t in latency_in_turns([wide, half], example, repeats=40)]
    print(f"structured half hidden units, MLP 512-2048-2048-10 at batch 64: {dense_ms:.2f} ms -> {half_ms:.2f} ms "
          f"= {dense_ms / half_ms:.2f}x faster (target >= 1.8x); params {sum(p.numel() for p in wide.parameters()):,} "
          f"-> {sum(p.numel() for p in half.parameters()):,}")
