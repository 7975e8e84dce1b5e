"""The one verb: compress(lm, config, calibration) -> a new LanguageModel, layer by layer, with progress."""

from __future__ import annotations

import copy
import time
from collections.abc import Generator
from dataclasses import dataclass

import torch
from torch import Tensor

from compression.core.errors import InputError
from compression.llm.calibrate import LayerStep, each_layer, layerwise
from compression.llm.configs import LMConfig, PruneConfig, QuantizeConfig, SmoothQuantConfig
from compression.llm.layers import get_weight, layer_linears, decoder_layers, family_of
from compression.llm.methods import prune_process, quantize_process, smoothquant_process
from compression.llm.models import LanguageModel
from compression.llm.rounding import GroupGrid, check_group_size


@dataclass(frozen=True, eq=False)
class CompressionResult:
    """A compressed copy of the model and what the run measured."""

    lm: LanguageModel  # the new model (the input model is untouched)
    config: LMConfig
    seconds: float  # compression time, calibration forward passes included
    steps: tuple[LayerStep, ...]  # one per decoder layer: relative output error per role, notes
    grids: dict[tuple[int, str], GroupGrid]  # (layer, role) -> the grid of each quantized linear
    device: str

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(note for step in self.steps for note in step.notes)

    def layer_errors(self) -> list[dict]:
        """Rows {layer, role, relative_error}: the heat-map of ‖WX−ŴX‖²/‖WX‖²."""
        return [{"layer": s.layer, "role": role, "relative_error": e}
                for s in self.steps for role, e in s.errors.items()]

    def sparsity(self) -> float:
        """Fraction of zeros over all compressible linear weights."""
        family = family_of(self.lm.model)
        zeros = total = 0
        for layer in decoder_layers(self.lm.model):
            for module in layer_linears(family, layer).values():
                w = module.weight  # counting zeros needs no float32 copy in (out, in) layout
                zeros, total = zeros + int((w == 0).sum()), total + w.numel()
        return zeros / max(total, 1)

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "seconds": self.seconds, "device": self.device,
                "sparsity": self.sparsity(), "layer_errors": self.layer_errors(), "notes": list(self.notes)}


def compress(lm: LanguageModel, config: LMConfig, calibration: Tensor | None = None,
             device: str | torch.device = "cpu") -> Generator[LayerStep, None, CompressionResult]:
    """Compress a copy of `lm`; yields a LayerStep per decoder layer; returns a CompressionResult.

    `calibration` is (samples, seq_len) token ids. RTN, magnitude and naive W·A· need none; given one, they
    also report each layer's relative output error. Closing the generator stops after the current layer.
    """
    if config.needs_calibration and calibration is None:
        raise InputError(f"{config.label} needs calibration text")
    _check_shapes(lm, config)
    start = time.perf_counter()
    model = copy.deepcopy(lm.model).to(device)
    grids: dict[tuple[int, str], GroupGrid] = {}
    process = _process_for(config, grids)
    walk = layerwise(model, calibration, process) if calibration is not None else each_layer(model, process)
    steps = []
    for step in walk:
        steps.append(step)
        yield step
    new = LanguageModel(model, lm.tokenizer, lm.info)
    return CompressionResult(new, config, time.perf_counter() - start, tuple(steps), grids, str(device))


def _process_for(config: LMConfig, grids: dict):
    if isinstance(config, PruneConfig):
        return prune_process(config)
    if isinstance(config, QuantizeConfig):
        return quantize_process(config, grids)
    if isinstance(config, SmoothQuantConfig):
        return smoothquant_process(config, grids)
    raise InputError(f"not a language-model config: {type(config).__name__}")


def _check_shapes(lm: LanguageModel, config: LMConfig) -> None:
    """Refuse a group size or N:M pattern that does not fit the model before doing any work."""
    family = family_of(lm.model)
    first = decoder_layers(lm.model)[0]
    for module in layer_linears(family, first).values():
        columns = get_weight(module).shape[1]
        if isinstance(config, QuantizeConfig):
            check_group_size(columns, config.group_size)
        if isinstance(config, PruneConfig) and config.nm and columns % config.nm[1]:
            raise InputError(f"N:M with M={config.nm[1]} needs input sizes divisible by {config.nm[1]}")
