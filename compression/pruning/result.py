"""A pruned model with its measurements: accuracy, parameters, real file sizes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from compression.metrics import state_dict_of, torch_save_bytes
from compression.models.loading import LoadedModel
from compression.pruning.config import PruneConfig
from compression.pruning.masks import effective_threshold, mask_sparsity


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
    size_bytes: int  # the result's dense torch.save file (the baseline file every page compares against)
    baseline_size_bytes: int
    sparse_size_bytes: int  # non-zeros + 1-bit mask, a real torch.save file
    threshold: float
    layer_sparsity: Mapping[str, float]

    def to_dict(self) -> dict:
        metrics = {k: getattr(self, k) for k in (
            "accuracy", "baseline_accuracy", "sparsity", "params", "nonzero_params", "baseline_params",
            "size_bytes", "baseline_size_bytes", "sparse_size_bytes", "threshold")}
        return {"config": self.config.to_dict(), **metrics, "layer_sparsity": dict(self.layer_sparsity)}


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
        size_bytes=len(torch_save_bytes(after)), baseline_size_bytes=len(torch_save_bytes(before)),
        sparse_size_bytes=sparse_bytes(after, set(masks) & set(after)),
        threshold=effective_threshold(weights, masks), layer_sparsity=mask_sparsity(masks))


def model_state(model: LoadedModel) -> dict[str, Tensor]:
    """Every tensor of the model under the names `export` writes."""
    return model.onnx.all_initializers() if model.onnx is not None else state_dict_of(model.module)


def sparse_bytes(state: Mapping[str, Tensor], names) -> int:
    """Bytes of a real torch.save file where the `names` tensors keep only non-zeros plus a 1-bit mask."""
    encoded = {}
    for key, t in state.items():
        if key not in names:
            encoded[key] = t
            continue
        nonzero = (t != 0).reshape(-1)
        encoded[f"{key}.values"] = t.reshape(-1)[nonzero].contiguous()
        encoded[f"{key}.bitmask"] = torch.from_numpy(np.packbits(nonzero.numpy()))
        encoded[f"{key}.shape"] = torch.tensor(t.shape, dtype=torch.int32)
    return len(torch_save_bytes(encoded))


def output_axes(model: LoadedModel) -> dict[str, int]:
    """Output-channel axis of each weight: 0 in PyTorch; for ONNX MatMul weights stored (in, out) it is 1."""
    return dict(model.onnx.weight_axes) if model.onnx is not None else {}
