"""One LayerProcess per method: compress one decoder layer's linears in place (on a copy the verb owns)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from compression.llm.awq import search_clip, search_scale
from compression.llm.calibrate import LayerProcess, LayerReport
from compression.llm.configs import PruneConfig, QuantizeConfig, SmoothQuantConfig
from compression.llm.gptq import gptq_quantize
from compression.llm.hessian import gram, hessian, relative_error, subsample
from compression.llm.layers import (Family, get_weight, layer_linears, scale_norm, scale_output_rows, set_weight)
from compression.llm.pruning import magnitude_prune, sparsegpt_prune, wanda_prune
from compression.llm.rounding import GroupGrid, rtn
from compression.llm.smoothquant import ActivationQuantizer, quantize_activations, smooth_scales

ERROR_TOKENS = 512  # evenly spaced calibration tokens on which each linear's relative output error is measured
CLIP_TOKENS = 2048  # AWQ: tokens whose XᵀX scores the clipping ratios


class _Hessians:
    """H = 2XᵀX/n (and Wanda's ‖X_j‖₂) per input tensor, computed once for linears that share an input (q, k, v)."""

    def __init__(self, inputs: dict[str, Tensor]):
        self._inputs, self._done = inputs, {}

    def _once(self, what: str, role: str, compute) -> Tensor:
        x = self._inputs[role]
        if (what, id(x)) not in self._done:
            self._done[(what, id(x))] = compute(x)
        return self._done[(what, id(x))]

    def __call__(self, role: str) -> Tensor:
        return self._once("hessian", role, hessian)

    def column_norms(self, role: str) -> Tensor:
        return self._once("norms", role, lambda x: x.float().pow(2).sum(0).sqrt())


def prune_process(config: PruneConfig) -> LayerProcess:
    def process(family: Family, index: int, layer: nn.Module, inputs: dict[str, Tensor]) -> LayerReport:
        hessians = _Hessians(inputs)
        errors, notes = {}, []
        for role, module in layer_linears(family, layer).items():
            w = get_weight(module)
            if config.method == "magnitude":
                new = magnitude_prune(w, config.sparsity, config.scope, config.nm)
            elif config.method == "wanda":
                new = wanda_prune(w, hessians.column_norms(role), config.sparsity, config.nm)
            else:
                new, note = sparsegpt_prune(w, hessians(role), config.sparsity, config.nm, config.percdamp)
                notes += [f"layer {index} {role}: {note}"] if note else []
            set_weight(module, new)
            if inputs:
                errors[role] = relative_error(w, new, inputs[role], ERROR_TOKENS)
        return LayerReport(errors, tuple(notes))
    return process


def quantize_process(config: QuantizeConfig, grids: dict[tuple[int, str], GroupGrid]) -> LayerProcess:
    """RTN, GPTQ or AWQ; the grid of every linear goes into `grids` (what a packed file needs)."""
    def process(family: Family, index: int, layer: nn.Module, inputs: dict[str, Tensor]) -> LayerReport:
        hessians = _Hessians(inputs)
        linears = layer_linears(family, layer)
        original = {role: get_weight(m) for role, m in linears.items()}
        cols = apply_awq_scales(family, layer, inputs, config) if config.method == "awq" else {}
        errors, notes = {}, []
        for role, module in linears.items():
            w = get_weight(module) if cols else original[role]  # only AWQ has rescaled the weights since
            if config.method == "gptq":
                new, grid, note = gptq_quantize(w, hessians(role), config.bits, config.group_size, config.act_order,
                                                config.percdamp, config.symmetric)
                notes += [f"layer {index} {role}: {note}"] if note else []
            else:
                if config.method == "awq" and config.awq_clip and role not in ("q", "k"):  # as the reference
                    w = search_clip(w, gram(inputs[role] / cols.get(role, 1.0), CLIP_TOKENS), config.bits,
                                    config.group_size, config.awq_grid, config.symmetric)
                new, grid = rtn(w, config.bits, config.group_size, config.symmetric)
            set_weight(module, new)
            grids[(index, role)] = grid
            if inputs:
                rows, col = cols.get(f"{role}:rows", 1.0), cols.get(role, 1.0)
                effective = new * (rows[:, None] if isinstance(rows, Tensor) else rows) / col
                errors[role] = relative_error(original[role], effective, inputs[role], ERROR_TOKENS)
        return LayerReport(errors, tuple(notes))
    return process


def apply_awq_scales(family: Family, layer: nn.Module, inputs: dict[str, Tensor], config: QuantizeConfig) -> dict:
    """Search and fold AWQ scales into each norm (and linear) that feeds linears; returns the scales applied:
    role -> s on its input columns, and "role:rows" -> s its output rows were divided by."""
    linears = layer_linears(family, layer)
    applied: dict[str, Tensor] = {}
    groups = [(layer.get_submodule(norm), roles) for norm, roles in family.norm_groups]
    groups += [(role, fed) for role, fed in family.linear_groups
               if get_weight(linears[role]).shape[0] == get_weight(linears[fed[0]]).shape[1]]
    for previous, roles in groups:
        x = inputs[roles[0]]
        s, _ = search_scale(x, [get_weight(linears[r]) for r in roles], config.bits, config.group_size,
                            config.awq_grid, config.symmetric)
        if isinstance(previous, str):
            scale_output_rows(linears[previous], s)
            applied[f"{previous}:rows"] = s
        else:
            scale_norm(previous, s)
        for role in roles:
            set_weight(linears[role], get_weight(linears[role]) * s)
            applied[role] = s
    return applied


def smoothquant_process(config: SmoothQuantConfig, grids: dict[tuple[int, str], GroupGrid]) -> LayerProcess:
    """Only the norm-fed linears get W·A· quantization (q/k/v and gate/up; GPT-2: c_attn and c_fc)."""
    quantizer = ActivationQuantizer(config.act_bits, config.act_granularity)

    def process(family: Family, index: int, layer: nn.Module, inputs: dict[str, Tensor]) -> LayerReport:
        linears = layer_linears(family, layer)
        weights = {role: get_weight(module) for role, module in linears.items()}
        scales = smooth_layer(family, layer, inputs, config.alpha) if config.smooth else {}
        errors = {}
        for _, roles in family.norm_groups:
            for role in roles:
                s = scales.get(role)
                new, grids[(index, role)] = rtn(get_weight(linears[role]), config.weight_bits, 0, symmetric=True)
                set_weight(linears[role], new)
                linears[role].register_forward_pre_hook(quantizer)
                if inputs:
                    errors[role] = _w_a_error(inputs[role], weights[role], new, s, config)
        return LayerReport(errors)
    return process


def smooth_layer(family: Family, layer: nn.Module, inputs: dict[str, Tensor], alpha: float) -> dict[str, Tensor]:
    """Migrate s = max|X|^α / max|W|^(1−α) from each norm's outputs into the linears it feeds (float output
    unchanged); returns role -> s."""
    linears = layer_linears(family, layer)
    applied = {}
    for norm_path, roles in family.norm_groups:
        weight_max = torch.stack([get_weight(linears[r]).abs().amax(0) for r in roles]).amax(0)
        s = smooth_scales(inputs[roles[0]].abs().amax(0), weight_max, alpha)
        scale_norm(layer.get_submodule(norm_path), s)
        for role in roles:
            set_weight(linears[role], get_weight(linears[role]) * s)
            applied[role] = s
    return applied


def _w_a_error(x: Tensor, w: Tensor, w_hat: Tensor, s: Tensor | None, config: SmoothQuantConfig) -> float:
    x = subsample(x, ERROR_TOKENS).float()
    reference = x @ w.t()
    xq = quantize_activations(x / s if s is not None else x, config.act_bits, config.act_granularity)
    diff = reference - xq @ w_hat.t()
    return (diff.pow(2).sum() / reference.pow(2).sum().clamp_min(1e-30)).item()
