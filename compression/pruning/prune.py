"""Magnitude and N:M pruning: pure mask functions, and the `prune` verb that returns a new model."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from compression.core.errors import InputError
from compression.models.loading import LoadedModel
from compression.metrics import safetensors_bytes, state_dict_of

METHODS = ("magnitude", "structured", "nm")
SCOPES = ("global", "layer")


@dataclass(frozen=True)
class PruneConfig:
    """What to prune: by `amount` (target sparsity) or `threshold` (keep |w| > threshold), N:M, or structured."""

    amount: float | None = None  # fraction of weights (structured: of units) set to zero
    threshold: float | None = None  # magnitude only: keep |w| > threshold
    method: str = "magnitude"  # magnitude | structured | nm
    scope: str = "global"  # global: one ranking over all layers; layer: the same amount in each layer
    exclude: tuple[str, ...] = ()  # layer or weight names left dense (e.g. the first and last)
    n: int = 2  # N:M keeps n of every m consecutive input weights
    m: int = 4
    norm: int = 1  # structured: rank units by L1 or L2 norm
    layer_amounts: tuple[tuple[str, float], ...] = ()  # per-layer amounts (e.g. from a sensitivity scan)

    def __post_init__(self):
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "layer_amounts", tuple((str(k), float(v)) for k, v in self.layer_amounts))
        if self.method not in METHODS:
            raise InputError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.scope not in SCOPES:
            raise InputError(f"scope must be global or layer, got {self.scope!r}")
        for name, value in (("amount", self.amount), *self.layer_amounts):
            if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise InputError(f"sparsity ({name}) must be in [0, 1], got {value}")
        if self.threshold is not None and not (math.isfinite(self.threshold) and self.threshold >= 0):
            raise InputError(f"threshold must be a finite number >= 0, got {self.threshold}")
        if self.method == "nm":
            if self.amount is not None or self.threshold is not None:
                raise InputError("N:M pruning sets its own sparsity (1 - N/M): give N and M, not a sparsity")
            if not 1 <= self.n <= self.m <= 64:
                raise InputError(f"N:M needs 1 <= N <= M <= 64, got {self.n}:{self.m}")
            return
        if self.method == "structured":
            if self.threshold is not None or self.amount is None:
                raise InputError("structured pruning needs a sparsity (the fraction of units removed), "
                                 "not a threshold")
            if self.norm not in (1, 2):
                raise InputError(f"structured pruning ranks by the L1 or L2 norm, got L{self.norm}")
            return
        if (self.amount is None) == (self.threshold is None) and not self.layer_amounts:
            raise InputError("give either a sparsity or a threshold (exactly one)")

    def to_dict(self) -> dict:
        return asdict(self)


# ---- pure mask functions: tensors in, masks (same shape, float 0/1 like torch.nn.utils.prune) out ----

def threshold_mask(weight: Tensor, threshold: float) -> Tensor:
    """The textbook rule: keep |w| > threshold."""
    return (weight.abs() > threshold).to(weight.dtype)


def magnitude_mask(weight: Tensor, amount: float) -> Tensor:
    """Zero the round(amount * numel) smallest |w|; equals torch.nn.utils.prune.l1_unstructured."""
    mask = torch.ones_like(weight)
    k = round(amount * weight.numel())  # the same rounding as torch's _compute_nparams_toprune
    if k:  # topk, like torch, so ties break the same way
        mask.view(-1)[torch.topk(weight.abs().view(-1), k, largest=False).indices] = 0
    return mask


def global_magnitude_masks(weights: Mapping[str, Tensor], amount: float) -> dict[str, Tensor]:
    """One ranking over all tensors; equals torch.nn.utils.prune.global_unstructured with L1Unstructured."""
    if not weights:
        raise InputError("there is no layer left to prune (every layer is excluded, or the model has none)")
    flat = torch.cat([w.detach().reshape(-1) for w in weights.values()])
    mask = magnitude_mask(flat, amount)
    out, start = {}, 0
    for name, w in weights.items():
        out[name] = mask[start:start + w.numel()].view_as(w).clone()
        start += w.numel()
    return out


def nm_mask(weight: Tensor, n: int, m: int, out_axis: int = 0) -> Tensor:
    """Keep the n largest |w| in every group of m consecutive input weights of each output unit."""
    w = weight.movedim(out_axis, 0)
    rows = w.reshape(w.shape[0], -1)  # (out, in*kh*kw): groups run along the inputs, as 2:4 hardware expects
    cols = rows.shape[1]
    pad = (-cols) % m
    scores = F.pad(rows.abs(), (0, pad), value=-1.0).view(rows.shape[0], -1, m)  # padding always loses
    keep = scores.topk(min(n, m), dim=-1).indices
    mask = torch.zeros_like(scores).scatter_(-1, keep, 1.0).view(rows.shape[0], -1)[:, :cols]
    return mask.reshape(w.shape).movedim(0, out_axis).contiguous().to(weight.dtype)


# ---- masks for a model's weights under a config ----

def select_weights(weights: Mapping[str, Tensor], exclude: tuple[str, ...]) -> dict[str, Tensor]:
    """The weights left after `exclude` (layer names like "fc1" or weight names like "fc1.weight")."""
    names = set(weights) | {_layer(k) for k in weights}
    unknown = [e for e in exclude if e not in names]
    if unknown:
        raise InputError(f"cannot exclude {', '.join(unknown)}: not a prunable layer "
                         f"(layers: {', '.join(_layer(k) for k in weights)})")
    return {k: w for k, w in weights.items() if k not in exclude and _layer(k) not in exclude}


def compute_masks(weights: Mapping[str, Tensor], config: PruneConfig,
                  out_axes: Mapping[str, int] | None = None) -> dict[str, Tensor]:
    """Masks for the selected weights (magnitude or N:M); excluded weights get no mask."""
    if config.method == "structured":
        raise InputError("structured masks need the model: use compression.pruning.structured.unit_masks")
    if not weights:
        raise InputError("this model has no Linear or Conv weights to prune")
    chosen = select_weights(weights, config.exclude)
    if not chosen:
        raise InputError("there is no layer left to prune: every layer is excluded")
    if config.method == "nm":
        return {k: nm_mask(w, config.n, config.m, (out_axes or {}).get(k, 0)) for k, w in chosen.items()}
    if config.threshold is not None:
        return {k: threshold_mask(w, config.threshold) for k, w in chosen.items()}
    per_layer = dict(config.layer_amounts)
    if per_layer:
        return {k: magnitude_mask(w, per_layer.get(k, per_layer.get(_layer(k), config.amount or 0.0)))
                for k, w in chosen.items()}
    if config.scope == "global":
        return global_magnitude_masks(chosen, config.amount)
    return {k: magnitude_mask(w, config.amount) for k, w in chosen.items()}


class MagnitudeRanking:
    """|w| sorted once per scope group; any amount's masks are then a cut of that order (fast slider moves).

    The same number of weights as torch.nn.utils.prune is removed; only exact ties in |w| may break differently.
    """

    def __init__(self, weights: Mapping[str, Tensor], scope: str = "global", exclude: tuple[str, ...] = ()):
        chosen = select_weights(weights, tuple(exclude))
        if not chosen:
            raise InputError("there is no layer left to prune (every layer is excluded, or the model has none)")
        groups = [chosen] if scope == "global" else [{k: w} for k, w in chosen.items()]
        self._groups = [(g, torch.cat([w.reshape(-1) for w in g.values()]).abs().argsort(stable=True))
                        for g in groups]

    def masks(self, amount: float) -> dict[str, Tensor]:
        out = {}
        for group, order in self._groups:
            flat = torch.ones(order.numel())
            flat[order[:round(amount * order.numel())]] = 0.0
            start = 0
            for name, w in group.items():
                out[name] = flat[start:start + w.numel()].view_as(w)
                start += w.numel()
        return out


def apply_masks(weights: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """New tensors w * mask for the masked weights (the inputs are not changed)."""
    return {k: weights[k] * m for k, m in masks.items()}


def effective_threshold(weights: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> float:
    """The largest |w| that was pruned: the τ a sparsity target amounts to (0 when nothing was pruned)."""
    pruned = [weights[k].abs()[m == 0] for k, m in masks.items()]
    pruned = [p for p in pruned if p.numel()]
    return float(max(p.max() for p in pruned)) if pruned else 0.0


def mask_sparsity(masks: Mapping[str, Tensor]) -> dict[str, float]:
    """Fraction of zeros in each mask."""
    return {k: 1.0 - float(m.sum()) / m.numel() if m.numel() else 0.0 for k, m in masks.items()}


def sparse_bytes(state: Mapping[str, Tensor], names) -> int:
    """Bytes of a real safetensors file where the `names` tensors keep only non-zeros plus a 1-bit mask."""
    encoded = {}
    for key, t in state.items():
        if key not in names:
            encoded[key] = t
            continue
        nonzero = (t != 0).reshape(-1)
        encoded[f"{key}.values"] = t.reshape(-1)[nonzero].contiguous()
        encoded[f"{key}.bitmask"] = torch.from_numpy(np.packbits(nonzero.numpy()))
        encoded[f"{key}.shape"] = torch.tensor(t.shape, dtype=torch.int32)
    return len(safetensors_bytes(encoded))


def mask_grid(mask: Tensor, max_cells: int = 64) -> list[list[float]]:
    """Fraction kept per block of a 2-D view (out, rest) of `mask`, at most max_cells x max_cells."""
    grid = mask.detach().float().reshape(mask.shape[0], -1)[None, None]
    rows, cols = grid.shape[-2:]
    size = (min(rows, max_cells), min(cols, max_cells))
    return F.adaptive_avg_pool2d(grid, size)[0, 0].tolist()


def _layer(weight_name: str) -> str:
    return weight_name.rsplit(".", 1)[0] if "." in weight_name else weight_name


def output_axes(model: LoadedModel) -> dict[str, int]:
    """Output-channel axis of each weight: 0 in PyTorch; for ONNX MatMul weights stored (in, out) it is 1."""
    return dict(model.onnx.weight_axes) if model.onnx is not None else {}


# ---- the verb ----

@dataclass(frozen=True, eq=False)
class PruneResult:
    """A pruned copy of a model with its measurements; `masks` are on the original shapes."""

    config: PruneConfig
    model: LoadedModel
    masks: Mapping[str, Tensor] = field(repr=False)
    accuracy: float
    baseline_accuracy: float
    sparsity: float  # of the prunable weights: zeroed or removed
    params: int
    nonzero_params: int
    baseline_params: int
    size_bytes: int  # dense safetensors file of the result
    baseline_size_bytes: int
    sparse_size_bytes: int  # non-zeros + 1-bit mask, a real safetensors file
    threshold: float
    layer_sparsity: Mapping[str, float]

    def to_dict(self) -> dict:
        metrics = {k: getattr(self, k) for k in (
            "accuracy", "baseline_accuracy", "sparsity", "params", "nonzero_params", "baseline_params",
            "size_bytes", "baseline_size_bytes", "sparse_size_bytes", "threshold")}
        return {"config": self.config.to_dict(), **metrics, "layer_sparsity": dict(self.layer_sparsity)}


def prune(model: LoadedModel, config: PruneConfig) -> PruneResult:
    """Prune a copy of `model` as `config` says and measure it; `model` itself is never changed."""
    if config.method == "structured":
        from compression.pruning.structured import prune_structured

        return prune_structured(model, config)
    weights = model.weights()
    masks = compute_masks(weights, config, output_axes(model))
    pruned = apply_masks(weights, masks)
    new = _onnx_with(model, pruned) if model.onnx is not None else _torch_with(model, pruned)
    return measure_result(model, new, config, masks, weights)


def measure_result(model: LoadedModel, new: LoadedModel, config: PruneConfig, masks: Mapping[str, Tensor],
                   weights: Mapping[str, Tensor]) -> PruneResult:
    """Evaluate and size the pruned model against the original."""
    before, after = model_state(model), model_state(new)
    total = sum(w.numel() for w in weights.values())
    kept = sum(float(masks[k].sum()) if k in masks else int(torch.count_nonzero(w)) for k, w in weights.items())
    return PruneResult(
        config=config, model=new, masks=masks, accuracy=new.evaluate().accuracy,
        baseline_accuracy=model.evaluate().accuracy, sparsity=1.0 - kept / total if total else 0.0,
        params=sum(t.numel() for t in after.values()),
        nonzero_params=sum(int(torch.count_nonzero(t)) for t in after.values()),
        baseline_params=sum(t.numel() for t in before.values()),
        size_bytes=len(safetensors_bytes(after)), baseline_size_bytes=len(safetensors_bytes(before)),
        sparse_size_bytes=sparse_bytes(after, set(masks) & set(after)),
        threshold=effective_threshold(weights, masks), layer_sparsity=mask_sparsity(masks))


def model_state(model: LoadedModel) -> dict[str, Tensor]:
    """Every tensor of the model under the names `export` writes."""
    return model.onnx.all_initializers() if model.onnx is not None else state_dict_of(model.module)


def _torch_with(model: LoadedModel, weights: Mapping[str, Tensor]) -> LoadedModel:
    from compression.models.workbench import with_weights

    return with_weights(model, weights, name=f"{model.name} (pruned)")


def _onnx_with(model: LoadedModel, weights: Mapping[str, Tensor]) -> LoadedModel:
    """A new ONNX model whose initializers are replaced by `weights` (re-serialized and re-checked)."""
    import onnx
    from onnx import numpy_helper

    from compression.models.onnx import load_onnx

    proto = onnx.load_from_string(model.onnx.raw)
    for init in proto.graph.initializer:
        if init.name in weights:
            init.CopyFrom(numpy_helper.from_array(weights[init.name].detach().numpy(), init.name))
    name = f"{model.name} (pruned)"
    return LoadedModel(name, "onnx", model.dataset, onnx=load_onnx(proto.SerializeToString(), name))
