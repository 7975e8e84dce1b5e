"""Prune a model block by block: magnitude per row or per layer (no data), Wanda and SparseGPT (calibration
inputs). Each process prunes one block in place, on a copy the verb that walks the model owns."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from compression.calibration import (ERROR_TOKENS, Block, BlockProcess, BlockReport, BlockStep, InputStats,
                                     WeightLayers, get_weight, relative_error, set_weight, walk)
from compression.core.errors import InputError
from compression.pruning.config import PruneConfig
from compression.pruning.masks import magnitude_mask, nm_keep, row_keep, select_weights
from compression.pruning.sparsegpt import sparsegpt_prune
from compression.pruning.wanda import wanda_prune



def prune_matrix(w: Tensor, config: PruneConfig, stats: InputStats | None = None,
                 role: str = "") -> tuple[Tensor, str | None]:
    """One (out, in) weight pruned as `config` says; returns (new weight, a note)."""
    amount = config.amount or 0.0
    if config.method == "wanda":
        return wanda_prune(w, stats.column_norms(role), amount, config.nm), None
    if config.method == "sparsegpt":
        return sparsegpt_prune(w, stats.hessian(role), amount, config.nm, config.percdamp)
    if config.method != "magnitude" or config.threshold is not None or config.scope == "global":
        raise InputError("block by block, magnitude prunes per row or per layer at a sparsity")
    if config.nm:
        return w * nm_keep(w.abs(), *config.nm), None
    keep = row_keep(w.abs(), amount) if config.scope == "row" else magnitude_mask(w, amount).bool()
    return w * keep, None


def prune_block(config: PruneConfig) -> BlockProcess:
    """Magnitude, Wanda or SparseGPT on each weight layer of a block."""
    def process(index: int, block: Block, inputs: dict[str, Tensor]) -> BlockReport:
        if config.needs_calibration and not inputs:
            return BlockReport(notes=(f"{block.name}: no calibration input reached it; left dense",))
        stats = InputStats(inputs)
        errors, notes = {}, []
        for role, module in block.linears.items():
            w = get_weight(module)
            new, note = prune_matrix(w, config, stats, role)
            notes += [f"{block.name} {role}: {note}"] if note else []
            set_weight(module, new)
            if role in inputs:
                errors[role] = relative_error(w, new, inputs[role], ERROR_TOKENS)
        return BlockReport(errors, tuple(notes))
    return process


@dataclass(frozen=True, eq=False)
class CalibratedPrune:
    """New weights (pruned, and updated by SparseGPT), their masks, and each block's measured error."""

    weights: Mapping[str, Tensor] = field(repr=False)
    masks: Mapping[str, Tensor] = field(repr=False)
    steps: tuple[BlockStep, ...]


def prune_calibrated(module: nn.Module, weights: Mapping[str, Tensor], config: PruneConfig,
                     inputs: Tensor | None) -> CalibratedPrune:
    """Prune a copy of `module` layer by layer, each layer fed by the already-pruned ones (`module` unchanged).

    `weights` are the module's prunable weights by state-dict name; `config.exclude` leaves some dense.
    """
    if config.needs_calibration and inputs is None:
        raise InputError(f"{config.method} needs calibration inputs")
    chosen = select_weights(weights, config.exclude)
    if not chosen:
        raise InputError("there is no layer left to prune: every layer is excluded")
    work = copy.deepcopy(module)
    left_out = tuple(k.rsplit(".", 1)[0] for k in weights if k not in chosen)
    steps = tuple(walk(work, WeightLayers(left_out), inputs, prune_block(config)))
    params = dict(work.named_parameters())
    new = {k: params[k].detach() for k in chosen}
    return CalibratedPrune(new, {k: (w != 0).to(w.dtype) for k, w in new.items()}, steps)
