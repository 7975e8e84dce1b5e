"""Pure mask functions: tensors in, masks (same shape, float 0/1 like torch.nn.utils.prune) out."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from compression.core.errors import InputError
from compression.pruning.config import PruneConfig


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


def row_keep(scores: Tensor, amount: float) -> Tensor:
    """Keep mask (bool) pruning the round(amount·cols) lowest scores of each row of a 2-D `scores`."""
    k = round(scores.shape[1] * amount)
    keep = torch.ones_like(scores, dtype=torch.bool)
    if k > 0:
        keep.scatter_(1, scores.topk(k, dim=1, largest=False).indices, False)
    return keep


def nm_keep(scores: Tensor, n: int, m: int) -> Tensor:
    """Keep mask (bool): the n highest scores in every group of m consecutive columns of each row.

    The one N:M rule: a row whose length is not a multiple of m ends in a shorter group, padded with scores that
    always lose, so that group keeps min(n, its length).
    """
    cols = scores.shape[1]
    pad = (-cols) % m
    grouped = F.pad(scores.float(), (0, pad), value=-float("inf")).view(scores.shape[0], -1, m)
    keep = torch.zeros_like(grouped, dtype=torch.bool)
    keep.scatter_(-1, grouped.topk(min(n, m), dim=-1).indices, True)
    return keep.view(scores.shape[0], -1)[:, :cols]


def row_mask(weight: Tensor, amount: float, out_axis: int = 0) -> Tensor:
    """Zero the round(amount · inputs) smallest |w| of each output unit (magnitude with scope "row")."""
    w = weight.movedim(out_axis, 0)
    mask = row_keep(w.reshape(w.shape[0], -1).abs(), amount).to(weight.dtype)
    return mask.reshape(w.shape).movedim(0, out_axis).contiguous()


def nm_mask(weight: Tensor, n: int, m: int, out_axis: int = 0) -> Tensor:
    """Keep the n largest |w| in every group of m consecutive input weights of each output unit."""
    w = weight.movedim(out_axis, 0)
    rows = w.reshape(w.shape[0], -1)  # (out, in*kh*kw): groups run along the inputs, as 2:4 hardware expects
    mask = nm_keep(rows.abs(), n, m).to(weight.dtype)
    return mask.reshape(w.shape).movedim(0, out_axis).contiguous()


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
    if config.needs_calibration:
        raise InputError(f"{config.method} needs calibration inputs: use compression.pruning.prune_calibrated")
    if not weights:
        raise InputError("this model has no Linear or Conv weights to prune")
    chosen = select_weights(weights, config.exclude)
    if not chosen:
        raise InputError("there is no layer left to prune: every layer is excluded")
    axes = out_axes or {}
    if config.nm:
        return {k: nm_mask(w, *config.nm, axes.get(k, 0)) for k, w in chosen.items()}
    if config.threshold is not None:
        return {k: threshold_mask(w, config.threshold) for k, w in chosen.items()}
    per_layer = dict(config.layer_amounts)
    if per_layer:
        return {k: magnitude_mask(w, per_layer.get(k, per_layer.get(_layer(k), config.amount or 0.0)))
                for k, w in chosen.items()}
    if config.scope == "global":
        return global_magnitude_masks(chosen, config.amount)
    if config.scope == "row":
        return {k: row_mask(w, config.amount, axes.get(k, 0)) for k, w in chosen.items()}
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


@torch.no_grad()
def mask_parameters_(module: nn.Module, masks: Mapping[str, Tensor]) -> None:
    """Multiply the module's parameters by their masks in place: keeps pruned weights at zero while it trains."""
    params = dict(module.named_parameters())
    for name, mask in masks.items():
        params[name].mul_(mask)


def effective_threshold(weights: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> float:
    """The largest |w| that was pruned: the τ a sparsity target amounts to (0 when nothing was pruned)."""
    pruned = [weights[k].abs()[m == 0] for k, m in masks.items()]
    pruned = [p for p in pruned if p.numel()]
    return float(max(p.max() for p in pruned)) if pruned else 0.0


def mask_sparsity(masks: Mapping[str, Tensor]) -> dict[str, float]:
    """Fraction of zeros in each mask."""
    return {k: 1.0 - float(m.sum()) / m.numel() if m.numel() else 0.0 for k, m in masks.items()}


def mask_grid(mask: Tensor, max_cells: int = 64) -> list[list[float]]:
    """The top-left max_cells x max_cells corner of a 2-D view (out, rest) of `mask`, one cell per weight.

    A crop, not block averages: averaging turns a 2:4 pattern into grey noise, and cells stay units.
    """
    return mask.detach().float().reshape(mask.shape[0], -1)[:max_cells, :max_cells].tolist()


def _layer(weight_name: str) -> str:
    return weight_name.rsplit(".", 1)[0] if "." in weight_name else weight_name
