"""The `prune` verb: magnitude, N:M or structured pruning of a copy of a model, measured."""

from __future__ import annotations

from compression.models.loading import LoadedModel
from compression.models.workbench import with_weights
from compression.pruning.config import PruneConfig
from compression.pruning.masks import apply_masks, compute_masks
from compression.pruning.result import PruneResult, measure_result, output_axes
from compression.pruning.structured import prune_structured


def prune(model: LoadedModel, config: PruneConfig) -> PruneResult:
    """Prune a copy of `model` as `config` says and measure it; `model` itself is never changed."""
    if config.method == "structured":
        return prune_structured(model, config)
    weights = model.weights()
    masks = compute_masks(weights, config, output_axes(model))
    pruned = apply_masks(weights, masks)
    new = with_weights(model, pruned, name=f"{model.name} (pruned)")
    return measure_result(model, new, config, masks, weights)

