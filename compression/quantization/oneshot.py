"""Quantize a model block by block with calibration inputs (GPTQ, AWQ) or without (round-to-nearest), and
SmoothQuant's W·A· on the linears a norm feeds. Each process compresses one block in place, on a copy the verb
that walks the model owns; the grid of every weight goes into `qtensors`, by its state-dict name."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from compression.calibration import (ERROR_TOKENS, Block, BlockProcess, BlockReport, BlockStep, InputStats,
                                     WeightLayers, get_weight, gram, is_conv1d, relative_error, set_weight, subsample,
                                     walk)
from compression.quantization.awq import search_clip, search_scale
from compression.quantization.config import QuantConfig
from compression.quantization.gptq import gptq_quantize
from compression.quantization.hooks import InputFakeQuant
from compression.quantization.smoothquant import SmoothQuantConfig, scale_norm, smooth_scales, w_a_error
from compression.quantization.tensors import QTensor, QuantizedWeights, measured, on_grid, quantize_tensor

CLIP_TOKENS = 2048  # AWQ: tokens whose XᵀX scores the clipping ratios


def quantize_block(config: QuantConfig, qtensors: dict[str, QTensor]) -> BlockProcess:
    """RTN, GPTQ or AWQ on each weight layer of a block (errors measured when calibration inputs are given)."""
    def process(index: int, block: Block, inputs: dict[str, Tensor]) -> BlockReport:
        stats = InputStats(inputs)
        original = {role: get_weight(m) for role, m in block.linears.items()}
        applied, notes = awq_scales(block, inputs, config) if config.method == "awq" and inputs else ({}, [])
        errors = {}
        for role, module in block.linears.items():
            name = block.weight_names.get(role, role)
            bits = config.bits_for(name)
            w = get_weight(module) if applied else original[role]  # only AWQ has rescaled the weights since
            if config.method == "gptq" and role in inputs:
                new, qparams, note = gptq_quantize(w, stats.hessian(role), bits, config.symmetric, config.granularity,
                                                   config.group_size, config.act_order, config.percdamp,
                                                   config.fp16_scales)
                qtensor = on_grid(new, qparams, bits)
                notes += [f"{block.name} {role}: {note}"] if note else []
            else:
                if config.method == "awq" and config.awq_clip and role in inputs and role not in block.no_clip:
                    x = inputs[role] / applied.get(role, 1.0)
                    w = search_clip(w, gram(x, CLIP_TOKENS), _rounder(config, bits), _clip_group(config, w),
                                    config.awq_grid)
                qtensor = quantize_tensor(w, bits, config)
                new = qtensor.dequantize()
            set_weight(module, new)
            qtensors[name] = in_module_layout(qtensor, module)
            if role in inputs:
                rows, col = applied.get(f"{role}:rows", 1.0), applied.get(role, 1.0)
                effective = new * (rows[:, None] if isinstance(rows, Tensor) else rows) / col
                errors[role] = relative_error(original[role], effective, inputs[role], ERROR_TOKENS)
        return BlockReport(errors, tuple(notes))
    return process


def in_module_layout(qtensor: QTensor, module: nn.Module) -> QTensor:
    """Codes in the shape of the module's weight (a conv's kernel unflattened; its grid layout is unchanged).

    GPT-2's Conv1D stores (in, out): its codes stay in the (out, in) layout their grid describes.
    """
    if is_conv1d(module):
        return qtensor
    return QTensor(qtensor.codes.reshape(module.weight.shape), qtensor.qparams, qtensor.bits, qtensor.kind)


def _rounder(config: QuantConfig, bits: int):
    return lambda w: quantize_tensor(w, bits, config).dequantize()


def _clip_group(config: QuantConfig, w: Tensor) -> int:
    return config.group_size if config.granularity == "per-group" else w.shape[1]


def awq_scales(block: Block, inputs: dict[str, Tensor], config: QuantConfig) -> tuple[dict, list[str]]:
    """Search and fold AWQ scales into each op of the block that feeds linears; returns the scales applied
    (role -> s on its input columns, "role:rows" -> s its output rows were divided by) and notes."""
    linears = block.linears
    applied: dict[str, Tensor] = {}
    groups = list(block.norm_groups)
    groups += [(role, fed) for role, fed in block.linear_groups
               if get_weight(linears[role]).shape[0] == get_weight(linears[fed[0]]).shape[1]]
    if not groups:
        return {}, [f"{block.name}: no op inside this block can take a scale, so AWQ searched the clipping only"]
    for previous, roles in groups:
        x = inputs[roles[0]]
        rounder = _rounder(config, config.bits_for(block.weight_names.get(roles[0], roles[0])))
        s, _ = search_scale(x, [get_weight(linears[r]) for r in roles], rounder, config.awq_grid)
        if isinstance(previous, str):
            scale_output_rows(linears[previous], s)
            applied[f"{previous}:rows"] = s
        else:
            scale_norm(previous, s)
        for role in roles:
            set_weight(linears[role], get_weight(linears[role]) * s)
            applied[role] = s
    return applied, []


@torch.no_grad()
def scale_output_rows(module: nn.Module, scale: Tensor) -> None:
    """Divide a linear's output channels by `scale`."""
    set_weight(module, get_weight(module) / scale[:, None])
    if getattr(module, "bias", None) is not None:
        module.bias.div_(scale)


def smoothquant_block(config: SmoothQuantConfig, qtensors: dict[str, QTensor]) -> BlockProcess:
    """W·A· on the linears a norm feeds (q/k/v and gate/up; GPT-2: c_attn and c_fc); others stay float."""
    weight_config = QuantConfig(bits=config.weight_bits, scheme="symmetric", granularity="per-channel",
                                fp16_scales=True)

    def process(index: int, block: Block, inputs: dict[str, Tensor]) -> BlockReport:
        linears = block.linears
        weights = {role: get_weight(module) for role, module in linears.items()}
        scales = smooth_block(block, inputs, config.alpha) if config.smooth else {}
        errors = {}
        for _, roles in block.norm_groups:
            for role in roles:
                name = block.weight_names.get(role, role)
                qtensor = quantize_tensor(get_weight(linears[role]), config.weight_bits, weight_config)
                new = qtensor.dequantize()
                set_weight(linears[role], new)
                qtensors[name] = in_module_layout(qtensor, linears[role])
                linears[role].register_forward_pre_hook(InputFakeQuant(bits=config.act_bits,
                                                                       granularity=config.act_granularity))
                if role in inputs:
                    errors[role] = _w_a_error(inputs[role], weights[role], new, scales.get(role), config)
        return BlockReport(errors)
    return process


def smooth_block(block: Block, inputs: dict[str, Tensor], alpha: float) -> dict[str, Tensor]:
    """Migrate s = max|X|^α / max|W|^(1−α) from each norm's outputs into the linears it feeds (float output
    unchanged); returns role -> s."""
    linears = block.linears
    applied = {}
    for norm, roles in block.norm_groups:
        weight_max = torch.stack([get_weight(linears[r]).abs().amax(0) for r in roles]).amax(0)
        s = smooth_scales(inputs[roles[0]].abs().amax(0), weight_max, alpha)
        scale_norm(norm, s)
        for role in roles:
            set_weight(linears[role], get_weight(linears[role]) * s)
            applied[role] = s
    return applied


def _w_a_error(x: Tensor, w: Tensor, w_hat: Tensor, s: Tensor | None, config: SmoothQuantConfig) -> float:
    return w_a_error(subsample(x, ERROR_TOKENS), w, w_hat, s, config.act_bits, config.act_granularity)


def quantize_model(module: nn.Module, weights: Mapping[str, Tensor], config: QuantConfig,
                   inputs: Tensor) -> tuple[QuantizedWeights, tuple[BlockStep, ...]]:
    """GPTQ or AWQ on a copy of `module`, one weight layer at a time, each fed by the already-quantized ones
    (`module` unchanged). `weights` are its quantizable weights by state-dict name; a layer calibration cannot
    treat as a matrix is rounded to nearest."""
    work = copy.deepcopy(module)
    qtensors: dict[str, QTensor] = {}
    steps = tuple(walk(work, WeightLayers(), inputs, quantize_block(config, qtensors)))
    for name, w in weights.items():
        if name not in qtensors:
            qtensors[name] = quantize_tensor(w.detach().float(), config.bits_for(name), config)
    return measured(weights, {name: qtensors[name] for name in weights}), steps
