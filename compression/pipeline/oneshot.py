"""The one-shot verb for any model: compress(model, config, calibration, block_map) walks a copy block by block
with the technique's process (pruning, weight quantization, SmoothQuant) and measures each block's error."""

from __future__ import annotations

import copy
import time
from collections.abc import Generator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from compression.calibration import BlockMap, BlockProcess, BlockStep, walk
from compression.core.errors import InputError
from compression.pruning import PruneConfig, prune_block
from compression.quantization import QTensor, QuantConfig, SmoothQuantConfig, quantize_block, smoothquant_block

OneShotConfig = PruneConfig | QuantConfig | SmoothQuantConfig


@dataclass(frozen=True, eq=False)
class OneShotResult:
    """A compressed copy of the model and what the run measured."""

    model: nn.Module  # the new model (the input model is untouched)
    config: OneShotConfig
    seconds: float  # compression time, calibration forward passes included
    steps: tuple[BlockStep, ...]  # one per block: relative output error per role, notes
    qtensors: dict[str, QTensor] = field(repr=False)  # weight name -> codes and grid of each quantized weight
    device: str = "cpu"

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(note for step in self.steps for note in step.notes)

    def layer_errors(self) -> list[dict]:
        """Rows {layer, role, relative_error}: the heat-map of ‖WX−ŴX‖²/‖WX‖², one row per block and role."""
        return [{"layer": s.index, "role": role, "relative_error": e} for s in self.steps for role, e in s.errors.items()]


def block_process(config: OneShotConfig, qtensors: dict[str, QTensor]) -> BlockProcess:
    """The technique's process for one block."""
    if isinstance(config, PruneConfig):
        return prune_block(config)
    if isinstance(config, QuantConfig):
        return quantize_block(config, qtensors)
    if isinstance(config, SmoothQuantConfig):
        return smoothquant_block(config, qtensors)
    raise InputError(f"not a one-shot config: {type(config).__name__}")


def compress(model: nn.Module, config: OneShotConfig, calibration: Tensor | None, block_map: BlockMap,
             device: str | torch.device = "cpu") -> Generator[BlockStep, None, OneShotResult]:
    """Compress a copy of `model`; yields a BlockStep per block; returns a OneShotResult.

    `calibration` is what the model reads (token ids, images). Methods that need none also take it and then
    report each block's relative output error. Closing the generator stops after the current block.
    """
    if config.needs_calibration and calibration is None:
        raise InputError(f"{config.label} needs calibration data")
    start = time.perf_counter()
    work = copy.deepcopy(model).to(device)
    qtensors: dict[str, QTensor] = {}
    steps = []
    for step in walk(work, block_map, calibration, block_process(config, qtensors)):
        steps.append(step)
        yield step
    return OneShotResult(work, config, time.perf_counter() - start, tuple(steps), qtensors, str(device))
