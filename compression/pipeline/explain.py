"""Why each method works, shown on one weight layer: the same weight and the same calibration inputs for every
method, for any model given its block map (the digits models' WeightLayers, a language model's DecoderLayers).

Each view is measured on the dense model's inputs to that layer: GPTQ's error push along one row beside
round-to-nearest, SparseGPT's updates of one row's surviving weights beside magnitude and Wanda, which weights Wanda
keeps that magnitude drops, and what SmoothQuant's migration does to the activations' range and grid. Results are
plain numbers (lists, floats) for the figure builders.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import Tensor, nn

from compression.calibration import (BlockMap, get_weight, hessian, input_ranges, layer_inputs, relative_error,
                                     row_output_errors)
from compression.core.errors import InputError
from compression.pruning import PruneConfig, nm_keep, row_keep
from compression.pruning.sparsegpt import sparsegpt_prune, survivor_updates
from compression.pruning.wanda import contrast_with_magnitude, wanda_prune
from compression.quantization import QuantConfig, SmoothQuantConfig
from compression.quantization.gptq import error_push, gptq_quantize
from compression.quantization.smoothquant import smoothing_effect, w_a_error
from compression.quantization.tensors import quantize_tensor

QUANT_COLUMNS = 32  # GPTQ's first columns drawn one by one
PRUNE_COLUMNS = 64  # a row's first columns drawn (the Pruning page's mask heat-map shows 64 inputs too)


@dataclass(frozen=True)
class Outlier:
    """The loudest input channel of one weight layer of the dense model, over the calibration inputs."""

    layer: int  # block index
    role: str
    channel: int
    max_abs: float  # max |x| of that channel
    median: float  # the median channel's max |x| (over the channels that ever fire)

    @property
    def ratio(self) -> float:
        return self.max_abs / self.median if self.median > 0 else float("inf")


def find_outliers(model: nn.Module, block_map: BlockMap, inputs: Tensor) -> list[Outlier]:
    """Every weight layer's loudest input channel, strongest first (one pass over the dense model)."""
    found = []
    for (layer, role), peaks in input_ranges(model, block_map, inputs).items():
        live = peaks[peaks > 0]
        if live.numel():
            found.append(Outlier(layer, role, int(peaks.argmax()), float(peaks.max()), float(live.median())))
    return sorted(found, key=lambda o: -o.ratio)


@dataclass(frozen=True, eq=False)
class OneLayer:
    """One weight layer of the dense model and its calibration inputs."""

    layer: int  # block index
    block: str  # the block's name ("layer 3", "fc1")
    role: str
    w: Tensor  # (out, in)
    x: Tensor  # (tokens, in)
    fed_together: tuple[Tensor, ...]  # weights of every linear the same norm feeds (SmoothQuant's group), or ()

    @property
    def tokens(self) -> int:
        return self.x.shape[0]

    @property
    def name(self) -> str:
        return self.block if self.block == self.role else f"{self.block} · {self.role}"


def one_layer(model: nn.Module, block_map: BlockMap, inputs: Tensor, layer: int, role: str) -> OneLayer:
    """Weight layer `role` of block `layer` with its inputs on the dense model (nothing compressed)."""
    block, found = layer_inputs(model, block_map, inputs, layer)
    if role not in block.linears:
        raise InputError(f"{block.name} has no weight layer {role!r}; it has {', '.join(block.linears)}")
    if role not in found:
        raise InputError(f"no calibration input reaches {block.name} · {role}")
    fed = next((roles for _, roles in block.norm_groups if role in roles), ())
    return OneLayer(layer, block.name, role, get_weight(block.linears[role]).float(), found[role].float(),
                    tuple(get_weight(block.linears[r]).float() for r in fed))


def _median_row(ratio: Tensor) -> int:
    """The row whose ratio is the median one: a typical row, not the most flattering."""
    order = torch.argsort(ratio)
    return int(order[len(order) // 2])


@dataclass(frozen=True)
class QuantWhy:
    """GPTQ against round-to-nearest on one layer: one row column by column, and the errors they leave."""

    layer: str
    tokens: int
    inputs: int  # the layer's input channels: with fewer tokens than these, H is singular and a fit can be exact
    bits: int
    row: int
    rows: int
    columns: list[int]  # the row's first QUANT_COLUMNS columns in GPTQ's order
    original: list[float]  # their weights before
    pushed: list[float]  # what the columns rounded before each added to it
    gptq: list[float]
    rtn: list[float]
    weight_error: dict[str, float]  # mean |ŵ − w| over the row
    row_error: dict[str, float]  # ‖X(w − ŵ)‖²/‖Xw‖² of the row
    layer_error: dict[str, float]  # ‖X(W − Ŵ)‖²/‖XW‖² of the whole layer
    rows_better: float  # fraction of rows whose output error GPTQ lowers

    def to_dict(self) -> dict:
        return asdict(self)


def explain_quantization(data: OneLayer, config: QuantConfig, row: int | None = None) -> QuantWhy:
    """GPTQ and round-to-nearest on the same weight, grid and inputs; `row` None: the median row by the ratio of
    their output errors."""
    bits = config.bits
    if bits < 2:
        raise InputError("GPTQ's view needs at least 2 bits")
    h = hessian(data.x)
    gptq, _, _ = gptq_quantize(data.w, h, bits, config.symmetric, config.granularity, config.group_size,
                               config.act_order, config.percdamp, config.fp16_scales)
    rtn = quantize_tensor(data.w, bits, replace(config, method="rtn", binary=False, ternary=False)).dequantize()
    errors = {"round-to-nearest": row_output_errors(data.w, rtn, h), "GPTQ": row_output_errors(data.w, gptq, h)}
    if row is None:
        row = _median_row(errors["GPTQ"] / errors["round-to-nearest"].clamp_min(1e-30))
    if not 0 <= row < data.w.shape[0]:
        raise InputError(f"row must be from 0 to {data.w.shape[0] - 1}, got {row}")
    push = error_push(data.w[row], gptq[row], h, config.act_order, config.percdamp)
    shown = push.order[:QUANT_COLUMNS]
    return QuantWhy(
        data.name, data.tokens, data.w.shape[1], bits, row, data.w.shape[0], shown.tolist(),
        push.original[shown].tolist(), push.pushed[shown].tolist(), gptq[row, shown].tolist(), rtn[row, shown].tolist(),
        {"round-to-nearest": float((rtn[row] - data.w[row]).abs().mean()),
         "GPTQ": float((gptq[row] - data.w[row]).abs().mean())},
        {k: float(v[row]) for k, v in errors.items()},
        {"round-to-nearest": relative_error(data.w, rtn, data.x), "GPTQ": relative_error(data.w, gptq, data.x)},
        float((errors["GPTQ"] < errors["round-to-nearest"]).float().mean()))


@dataclass(frozen=True)
class PruneWhy:
    """Magnitude, Wanda and SparseGPT on one layer: one row's weights and SparseGPT's updates, the errors they
    leave, and per input channel the weights Wanda keeps that magnitude drops."""

    layer: str
    tokens: int
    inputs: int  # the layer's input channels
    pattern: str  # "50%" or "2:4"
    row: int
    rows: int
    columns: list[int]  # the row's first PRUNE_COLUMNS columns
    original: list[float]
    sparsegpt: list[float]  # SparseGPT's row: 0 where pruned, the survivors updated
    update: list[float]  # what SparseGPT added to each survivor (0 where pruned)
    magnitude_kept: list[bool]  # magnitude's choice in this row, removing as many weights as SparseGPT did
    row_error: dict[str, float]
    layer_error: dict[str, float]
    input_norm: list[float]  # ‖X_j‖₂ per input channel
    wanda_only: list[int]  # per input channel: weights Wanda keeps that magnitude drops
    magnitude_only: list[int]  # per input channel: weights magnitude keeps that Wanda drops

    def to_dict(self) -> dict:
        return asdict(self)


def explain_pruning(data: OneLayer, config: PruneConfig, row: int | None = None) -> PruneWhy:
    """The three methods at `config`'s sparsity or N:M pattern (magnitude and Wanda per row); `row` None: the median
    row by how much SparseGPT's updates lower its error."""
    amount, nm = config.amount or 0.0, config.nm
    h = hessian(data.x)
    norms = data.x.pow(2).sum(0).sqrt()
    sparsegpt, _ = sparsegpt_prune(data.w, h, amount, nm, config.percdamp)
    kept = sparsegpt != 0
    magnitude = data.w * (nm_keep(data.w.abs(), *nm) if nm else row_keep(data.w.abs(), amount))
    layer = {"magnitude": magnitude, "Wanda": wanda_prune(data.w, norms, amount, nm),
             "SparseGPT's mask, no update": data.w * kept, "SparseGPT": sparsegpt}
    errors = {k: row_output_errors(data.w, v, h) for k, v in layer.items()}
    if row is None:
        row = _median_row(errors["SparseGPT"] / errors["SparseGPT's mask, no update"].clamp_min(1e-30))
    if not 0 <= row < data.w.shape[0]:
        raise InputError(f"row must be from 0 to {data.w.shape[0] - 1}, got {row}")
    # magnitude in this row, removing as many weights as SparseGPT removed from it (its unstructured mask is chosen
    # per column block over all rows, so a row may lose more or fewer than `amount`)
    w_row = data.w[row:row + 1]
    removed = float((~kept[row]).float().mean())
    magnitude_row = (nm_keep(w_row.abs(), *nm) if nm else row_keep(w_row.abs(), removed))[0]
    row_error = {k: float(v[row]) for k, v in errors.items()}
    row_error["magnitude"] = float(row_output_errors(w_row, w_row * magnitude_row, h)[0])
    contrast = contrast_with_magnitude(data.w, norms, amount, nm)
    shown = slice(0, PRUNE_COLUMNS)
    return PruneWhy(
        data.name, data.tokens, data.w.shape[1], f"{nm[0]}:{nm[1]}" if nm else f"{amount:.0%}", row, data.w.shape[0],
        list(range(min(PRUNE_COLUMNS, data.w.shape[1]))), data.w[row, shown].tolist(), sparsegpt[row, shown].tolist(),
        survivor_updates(data.w[row], sparsegpt[row])[shown].tolist(), magnitude_row[shown].tolist(), row_error,
        {k: relative_error(data.w, v, data.x) for k, v in layer.items()}, norms.tolist(),
        contrast.wanda_only.tolist(), contrast.magnitude_only.tolist())


@dataclass(frozen=True)
class SmoothWhy:
    """SmoothQuant's migration on one layer's inputs: the range of each channel before and after, the activation
    grid's step with and without the loudest channel, and the W·A· output error with and without smoothing."""

    layer: str
    tokens: int
    applies: bool  # whether a norm feeds this linear, so the runs here smooth and quantize it
    label: str  # "W6A6 per-token, α=0.5"
    act_max: list[float]
    act_max_smoothed: list[float]
    weight_max: list[float]
    weight_max_smoothed: list[float]
    outlier: int
    outlier_ratio: float  # its max |x| over the median channel's
    step_tokens: int  # the tokens the steps are measured on (per token: those the outlier channel tops)
    step: float
    step_without_outlier: float
    step_smoothed: float
    error: dict[str, float]  # W·A· output error, naive and smoothed

    def to_dict(self) -> dict:
        return asdict(self)


def explain_smoothing(data: OneLayer, config: SmoothQuantConfig) -> SmoothWhy:
    """SmoothQuant at `config`'s α and bits on this layer, beside the naive W·A· run."""
    weight_max = torch.stack([w.abs().amax(0) for w in (data.fed_together or (data.w,))]).amax(0)
    effect = smoothing_effect(data.x, weight_max, config.alpha, config.act_bits, config.act_granularity)
    weights = QuantConfig(bits=config.weight_bits, scheme="symmetric", granularity="per-channel", fp16_scales=True)
    naive = quantize_tensor(data.w, config.weight_bits, weights).dequantize()
    smoothed = quantize_tensor(data.w * effect.scale, config.weight_bits, weights).dequantize()
    wa = f"W{config.weight_bits}A{config.act_bits}"
    live = effect.act_max[effect.act_max > 0]
    median = float(live.median()) if live.numel() else 0.0
    return SmoothWhy(
        data.name, data.tokens, bool(data.fed_together), f"{wa} {config.act_granularity}, α={config.alpha:g}",
        effect.act_max.tolist(), effect.act_max_smoothed.tolist(), effect.weight_max.tolist(),
        effect.weight_max_smoothed.tolist(), effect.outlier,
        float(effect.act_max[effect.outlier]) / median if median > 0 else float("inf"), effect.tokens,
        effect.step, effect.step_without_outlier, effect.step_smoothed,
        {f"naive {wa}": w_a_error(data.x, data.w, naive, None, config.act_bits, config.act_granularity),
         f"SmoothQuant {wa}": w_a_error(data.x, data.w, smoothed, effect.scale, config.act_bits,
                                        config.act_granularity)})
