"""Quantization: fake-quantized weights (PTQ), QAT, activations, and real int8 through a swappable backend."""

from compression.quantization.activations import OBSERVERS, ActivationQuantConfig, quantize_activations
from compression.quantization.int8 import (
    LARGE_MLP,
    MODES,
    Int8Config,
    Int8Measure,
    TorchAOQuantization,
    deploy_int8,
    large_mlp_int8,
)
from compression.quantization.packed import load_packed
from compression.quantization.ptq import (
    GRANULARITIES,
    RANGES,
    SCHEMES,
    QuantConfig,
    QuantResult,
    accuracy_vs_bits,
    layer_view,
    quantize,
    sensitivity,
    worked_example,
)
from compression.quantization.qat_training import QATConfig, qat, qat_with_control
from compression.quantization.speed import SpeedComparison, compare_speed

__all__ = [
    "accuracy_vs_bits",
    "ActivationQuantConfig",
    "compare_speed",
    "deploy_int8",
    "GRANULARITIES",
    "Int8Config",
    "Int8Measure",
    "LARGE_MLP",
    "large_mlp_int8",
    "layer_view",
    "load_packed",
    "MODES",
    "OBSERVERS",
    "qat",
    "qat_with_control",
    "QATConfig",
    "QuantConfig",
    "quantize",
    "quantize_activations",
    "QuantResult",
    "RANGES",
    "SCHEMES",
    "sensitivity",
    "SpeedComparison",
    "TorchAOQuantization",
    "worked_example",
]
