"""fp32, fake-quantized and int8 models timed together, so every bar on a page is one measurement."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor, nn

from compression.metrics import latency_in_turns, torch_save_bytes
from compression.models.loading import LoadedModel
from compression.models.workbench import Workbench, with_weights

SPEED_BATCH = 256  # held-out images per timed forward pass


@dataclass(frozen=True)
class SpeedComparison:
    """Median ms per batch of each model, timed in turns on one batch, and the fake-quant file's bytes."""

    batch: int
    fp32_ms: float
    fake_ms: float
    int8_ms: float | None
    fake_size_bytes: int  # torch.save stores raw fp32: fake-quant weights do not make the file smaller


def compare_speed(model: LoadedModel, bench: Workbench, weights: Mapping[str, Tensor],
                  int8_module: nn.Module | None = None, repeats: int = 15) -> SpeedComparison:
    """Time fp32 (a private copy, never the shared model), fake-quant and, if given, int8 in turns."""
    example = model.dataset.x_test[:SPEED_BATCH]
    modules = [with_weights(model, {}).module, bench.module_with(dict(weights))]
    if int8_module is not None:
        modules.append(int8_module)
    # Three warm-up rounds: the first passes of a fresh copy run several times slower (cnn: 32 ms against 14 ms).
    times = [t.median_ms for t in latency_in_turns(modules, example, repeats=repeats, warmup=3)]
    fake_size = len(torch_save_bytes({**dict(model.module.state_dict()), **weights}))
    return SpeedComparison(len(example), times[0], times[1], times[2] if int8_module is not None else None,
                           fake_size)
