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
    "Int8Measure",
    "SpeedComparison",
    "compare_speed",
    "MODES",
    "Int8Config",
    "deploy_int8",
    "large_mlp_int8",
    "load_packed",
    "accuracy_vs_bits",
    "ActivationQuantConfig",
    "deploy_int8",
    "GRANULARITIES",
    "Int8Config",
    "LARGE_MLP",
    "large_mlp_int8",
    "layer_view",
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
    "TorchAOQuantization",
    "worked_example",
]
