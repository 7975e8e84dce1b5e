"""What a model is made of: the facts behind the Model page and `python -m compression info`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from compression.metrics import LayerRow, layer_table, safetensors_bytes, state_dict_of, torch_save_bytes
from compression.models.loading import LoadedModel


@dataclass(frozen=True)
class ModelFacts:
    name: str
    source: str
    dataset: str
    test_samples: int
    params: int
    nonzero_params: int
    accuracy: float
    loss: float
    size_bytes: int  # torch.save file (or the .onnx file itself)
    safetensors_bytes: int
    layers: tuple[LayerRow, ...]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["layers"] = [{**asdict(r), "sparsity": r.sparsity} for r in self.layers]
        return out


def describe(model: LoadedModel) -> ModelFacts:
    """Measure a model: counts from its tensors, sizes from real serialized bytes, accuracy on held-out data."""
    result = model.evaluate()
    if model.onnx is not None:
        inits = model.onnx.all_initializers()
        rows = tuple(LayerRow(name, "initializer" if name not in model.onnx.weight_axes else "weight",
                              " x ".join(map(str, t.shape)), t.numel(), int(torch.count_nonzero(t)))
                     for name, t in inits.items())
        size, st_size = len(model.onnx.raw), len(safetensors_bytes(inits))
    else:
        state = state_dict_of(model.module)
        rows = tuple(layer_table(model.module))
        size, st_size = len(torch_save_bytes(state)), len(safetensors_bytes(state))
    return ModelFacts(
        name=model.name, source=model.source, dataset=model.dataset.name, test_samples=result.samples,
        params=sum(r.params for r in rows), nonzero_params=sum(r.nonzero for r in rows),
        accuracy=result.accuracy, loss=result.loss, size_bytes=size, safetensors_bytes=st_size, layers=rows,
    )
