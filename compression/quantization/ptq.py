"""The `quantize` verb: a model's weights rounded to fewer bits, measured (accuracy, SQNR, packed file bytes).

The pure math lives in compression.quantization.primitives and is re-exported here.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from compression.core.errors import InputError
from compression.metrics import Evaluation, Histogram, histogram, state_dict_of
from compression.models.loading import LoadedModel
from compression.models.workbench import Workbench, with_weights
from compression.calibration import BlockStep, calibration_images
from compression.quantization.config import MAX_BITS, MIN_BITS, QuantConfig, check_bits
from compression.quantization.oneshot import quantize_model
from compression.quantization.packing import save_packed
from compression.quantization.primitives import choose_qparams, clipped_mask, fake_quantize, quantize_codes
from compression.quantization.tensors import (LayerQuant, QTensor, QuantizedWeights, grid_levels, quantize_weights,
                                              sqnr_db)

CALIBRATION_SAMPLES = 512  # training images GPTQ and AWQ calibrate on unless told otherwise


@dataclass(frozen=True, eq=False)
class QuantResult:
    """A quantized copy of a model's weights with its measurements; the source model is untouched."""

    config: QuantConfig
    source: LoadedModel
    quantized: QuantizedWeights
    accuracy: float
    loss: float
    baseline_accuracy: float
    baseline_loss: float
    packed: bytes  # the real packed low-bit file
    baseline_size_bytes: int  # torch.save file (or the .onnx file)
    steps: tuple[BlockStep, ...] = ()  # GPTQ and AWQ: each layer's relative output error on calibration inputs

    @property
    def weights(self) -> Mapping[str, Tensor]:
        """Dequantized weights by state-dict name (new tensors)."""
        return self.quantized.weights

    @property
    def layers(self) -> tuple[LayerQuant, ...]:
        return self.quantized.layers

    @property
    def size_bytes(self) -> int:
        return len(self.packed)

    def to_model(self, name: str | None = None) -> LoadedModel:
        """A new LoadedModel with the dequantized weights (PyTorch models only)."""
        return with_weights(self.source, self.weights, name or f"{self.source.name} ({self.config.bits}-bit)")

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "model": self.source.name, "bits": self.config.bits,
                "accuracy": self.accuracy, "loss": self.loss, "baseline_accuracy": self.baseline_accuracy,
                "baseline_loss": self.baseline_loss, "size_bytes": self.size_bytes,
                "baseline_size_bytes": self.baseline_size_bytes,
                "layers": [asdict(layer) for layer in self.layers],
                "layer_errors": {s.name: e for s in self.steps for e in s.errors.values()},
                "notes": [note for s in self.steps for note in s.notes]}


@dataclass(frozen=True)
class LayerSensitivity:
    """One layer quantized alone: how much noise it gets and how much accuracy it costs."""

    layer: str
    bits: int
    sqnr_db: float
    accuracy: float
    accuracy_drop: float  # baseline accuracy minus this accuracy, as a fraction


@dataclass(frozen=True)
class BitsPoint:
    bits: int
    accuracy: float
    size_bytes: int


def channel_axes(model: LoadedModel) -> dict[str, int]:
    """Output-channel axis of each weight: 0 for PyTorch layers; from the graph for ONNX (MatMul stores (in, out))."""
    if model.onnx is not None:
        return dict(model.onnx.weight_axes)
    return {name: 0 for name in model.weights()}


def quantize(model: LoadedModel, config: QuantConfig, workbench: Workbench | None = None,
             calibration: Tensor | None = None) -> QuantResult:
    """Round every Linear/Conv weight of `model` as `config` says; evaluate; write the packed file.

    GPTQ and AWQ calibrate layer by layer on `calibration` (default: 512 training images fixed by seed 0).
    """
    weights = model.weights()
    _check_layers(config, weights)
    steps: tuple[BlockStep, ...] = ()
    if config.needs_calibration:
        if model.module is None:
            raise InputError(f"{config.method.upper()} needs a PyTorch model: an ONNX graph is quantized by "
                             "round-to-nearest here")
        if calibration is None:
            calibration = calibration_images(model.dataset, CALIBRATION_SAMPLES)
        quantized, steps = quantize_model(model.module, weights, config, calibration)
    else:
        quantized = quantize_weights(weights, config, channel_axes(model))
    bench = workbench or Workbench(model)
    after = bench.evaluate(quantized.weights)
    baseline, baseline_size = _baseline(model, bench)
    packed = save_packed(_full_state(model, quantized.qtensors), config.fp16_scales)
    return QuantResult(config, model, quantized, after.accuracy, after.loss, baseline.accuracy, baseline.loss,
                       packed, baseline_size, steps)


def sensitivity(model: LoadedModel, config: QuantConfig, workbench: Workbench | None = None,
                ) -> tuple[LayerSensitivity, ...]:
    """Quantize one layer at a time (at its bits in `config`) and measure SQNR and the accuracy drop."""
    weights = model.weights()
    _check_layers(config, weights)
    bench = workbench or Workbench(model)
    baseline, _ = _baseline(model, bench)
    axes = channel_axes(model)
    rows = []
    for name, w in weights.items():
        one = quantize_weights({name: w}, config, axes)
        accuracy = bench.evaluate(one.weights).accuracy
        rows.append(LayerSensitivity(name, config.bits_for(name), one.layers[0].sqnr_db, accuracy,
                                     baseline.accuracy - accuracy))
    return tuple(rows)


def propose_bits(rows: Sequence[LayerSensitivity], bits: int) -> dict[str, int]:
    """A first mixed-precision allocation from a sensitivity scan at `bits`: the more sensitive half of the layers
    (largest accuracy drop, then lowest SQNR) one bit more, the rest one bit less, within 1 to 16 bits. Every layer
    at `bits` would change nothing; with one layer there is nothing to trade, so it keeps `bits`."""
    if len(rows) < 2:
        return {r.layer: bits for r in rows}
    ranked = sorted(rows, key=lambda r: (-r.accuracy_drop, r.sqnr_db))
    sensitive = {r.layer for r in ranked[:(len(ranked) + 1) // 2]}
    return {r.layer: min(bits + 1, MAX_BITS) if r.layer in sensitive else max(bits - 1, MIN_BITS) for r in rows}


def accuracy_vs_bits(model: LoadedModel, config: QuantConfig, bits: Iterable[int] = range(MIN_BITS, MAX_BITS + 1),
                     workbench: Workbench | None = None, calibration: Tensor | None = None) -> tuple[BitsPoint, ...]:
    """Held-out accuracy and packed size with every layer at each bit-width (other settings from `config`)."""
    bench = workbench or Workbench(model)
    points = []
    for b in bits:
        result = quantize(model, QuantConfig(**{**config.to_dict(), "bits": b, "layer_bits": ()}), bench,
                          calibration)
        points.append(BitsPoint(b, result.accuracy, result.size_bytes))
    return tuple(points)


def _check_layers(config: QuantConfig, weights: Mapping[str, Tensor]) -> None:
    if not weights:
        raise InputError("this model has no Linear or Conv weights to quantize")
    unknown = set(dict(config.layer_bits)) - set(weights)
    if unknown:
        raise InputError(f"layer_bits names layers this model does not have: {', '.join(sorted(unknown))}")


def _full_state(model: LoadedModel, qtensors: Mapping[str, QTensor]) -> dict[str, Tensor | QTensor]:
    """Every tensor of the model in state-dict order, quantized weights replaced by their codes."""
    state = model.onnx.all_initializers() if model.onnx is not None else state_dict_of(model.module)
    return {name: qtensors.get(name, tensor) for name, tensor in state.items()}


# Baseline accuracy and file size per source model; models are read-only, so this never goes stale.
_BASELINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _baseline(model: LoadedModel, bench: Workbench) -> tuple[Evaluation, int]:
    if model not in _BASELINES:
        size = model.file_size_bytes()
        _BASELINES[model] = (bench.evaluate(), size)
    return _BASELINES[model]


@dataclass(frozen=True)
class LayerView:
    """What the page draws for one layer: histograms (all / clipped), the grid, and a sample for the error view."""

    hist: Histogram
    clipped: Histogram
    levels: tuple[float, ...]
    original_sample: tuple[float, ...]
    quantized_sample: tuple[float, ...]
    sqnr_db: float
    clipped_count: int


def layer_view(original: Tensor, qtensor: QTensor, bins: int = 100, sample: int = 600) -> LayerView:
    """Histograms on the server (only `bins` numbers reach the browser) and a fixed sample of weights."""
    x = original.detach().float()
    deq = qtensor.dequantize()
    lo, hi = x.min().item(), x.max().item()
    clipped = (clipped_mask(x, qtensor.qparams) if qtensor.kind == "affine"
               else torch.zeros_like(x, dtype=torch.bool))
    # one grid (the widest channel's) stands for all channels; clipped values are counted per channel
    levels = tuple(grid_levels(qtensor))
    index = torch.randperm(x.numel(), generator=torch.Generator().manual_seed(0))[:sample]
    return LayerView(histogram(x, bins, (lo, hi)), histogram(x[clipped], bins, (lo, hi)), levels,
                     tuple(x.reshape(-1)[index].tolist()), tuple(deq.reshape(-1)[index].tolist()),
                     sqnr_db(x, deq), int(clipped.sum()))


@dataclass(frozen=True)
class WorkedRow:
    x: float
    x_over_scale: float
    code: int
    x_hat: float
    error: float


def worked_example(values: Iterable[float], bits: int, symmetric: bool = True) -> tuple[float, int,
                                                                                         tuple[WorkedRow, ...]]:
    """A small vector rounded to the grid step by step: (scale, zero point, rows) for the Concept panel."""
    x = torch.tensor(list(values), dtype=torch.float32)
    check_bits(bits)
    qp = choose_qparams(x, bits, symmetric)
    codes = quantize_codes(x, qp)
    x_hat = fake_quantize(x, qp)
    scale = float(qp.scale)
    rows = tuple(WorkedRow(float(a), float(a) / scale, int(c), float(b), float(b - a))
                 for a, c, b in zip(x, codes, x_hat))
    return scale, int(qp.zero_point), rows
