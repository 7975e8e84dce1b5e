"""Real int8 deployment behind a small interface (`Int8Backend`); today torch.ao.quantization, later torchao."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from compression.core.errors import InputError
from compression.metrics import evaluate, latency_in_turns, saved_size_bytes, torch_save_bytes
from compression.models.architectures import MLP
from compression.models.loading import LoadedModel
from compression.quantization.activations import calibration_inputs

MODES = ("dynamic", "static")


class Int8Backend(Protocol):
    """Turns an fp32 module into a truly int8 one; never changes the module it is given."""

    name: str

    def quantize_dynamic(self, module: nn.Module) -> nn.Module:
        """int8 weights, activations quantized on the fly per batch (Linear layers)."""

    def quantize_static(self, module: nn.Module, calibration: Tensor) -> nn.Module:
        """int8 weights and activations, activation ranges fixed by running `calibration` once."""


@contextmanager
def _quiet() -> Iterator[None]:
    # torch.ao.quantization warns that it is deprecated in favour of torchao; the warning is for us, not users.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


class TorchAOQuantization:
    """`torch.ao.quantization`: eager dynamic and FX-graph static quantization on CPU."""

    def __init__(self, engine: str | None = None):  # "x86", "fbgemm", "onednn", "qnnpack"; None: process default
        if engine is not None and engine not in torch.backends.quantized.supported_engines:
            raise InputError(f"quantized engine {engine!r} is not available; choose one of "
                             f"{', '.join(torch.backends.quantized.supported_engines)}")
        self.engine = engine
        self.name = "torch.ao.quantization" + (f" ({engine})" if engine else "")

    def quantize_dynamic(self, module: nn.Module) -> nn.Module:
        with _quiet(), _engine(self.engine):
            from torch.ao.quantization import quantize_dynamic  # lazy: importing it warns (deprecated); _quiet()

            return _scoped(quantize_dynamic(copy.deepcopy(module).eval(), {nn.Linear}, dtype=torch.qint8),
                           self.engine)

    def quantize_static(self, module: nn.Module, calibration: Tensor) -> nn.Module:
        with _quiet(), _engine(self.engine):
            from torch.ao.quantization import get_default_qconfig_mapping  # lazy, in _quiet(): warns on import
            from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx  # lazy, in _quiet()

            engine = torch.backends.quantized.engine
            try:
                prepared = prepare_fx(copy.deepcopy(module).eval(), get_default_qconfig_mapping(engine),
                                      (calibration[:1],))
            except Exception as exc:  # symbolic tracing fails on data-dependent control flow
                raise InputError(f"static int8 cannot trace this model ({type(exc).__name__}); "
                                 "use dynamic int8") from exc
            with torch.no_grad():
                prepared(calibration)
            return _scoped(convert_fx(prepared), self.engine)


@contextmanager
def _engine(engine: str | None) -> Iterator[None]:
    # the engine is process-global; int8 weights packed for one engine must also run under it
    if engine is None:
        yield
        return
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


class EngineScoped(nn.Module):
    """Runs an int8 module under the quantized engine its weights were packed for."""

    def __init__(self, module: nn.Module, engine: str):
        super().__init__()
        self.module, self.engine = module, engine

    def forward(self, x: Tensor) -> Tensor:
        with _engine(self.engine):
            return self.module(x)


def _scoped(module: nn.Module, engine: str | None) -> nn.Module:
    return module if engine is None else EngineScoped(module, engine)


DEFAULT_BACKEND: Int8Backend = TorchAOQuantization()


@dataclass(frozen=True)
class Int8Config:
    mode: str = "dynamic"
    batch_size: int = 256  # the batch latency is measured at
    calibration_samples: int = 256  # static mode only
    repeats: int = 30

    def __post_init__(self):
        if self.mode not in MODES:
            raise InputError(f"mode must be dynamic or static, got {self.mode!r}")
        if self.batch_size < 1 or self.calibration_samples < 1 or self.repeats < 1:
            raise InputError("batch_size, calibration_samples and repeats must be >= 1")


@dataclass(frozen=True)
class Int8Measure:
    """Latency and file size of an int8 module next to its fp32 original, measured in the same run."""

    backend: str
    mode: str
    batch_size: int
    latency_ms: float
    baseline_latency_ms: float
    size_bytes: int  # torch.save of the int8 state dict
    baseline_size_bytes: int

    @property
    def speedup(self) -> float:
        return self.baseline_latency_ms / self.latency_ms if self.latency_ms > 0 else float("inf")

    @property
    def size_ratio(self) -> float:
        return self.baseline_size_bytes / self.size_bytes


@dataclass(frozen=True, eq=False)
class Int8Result:
    config: Int8Config
    model: nn.Module  # the int8 module (a new one)
    measure: Int8Measure
    accuracy: float
    baseline_accuracy: float

    def to_dict(self) -> dict:
        m = self.measure
        return {"config": asdict(self.config), **asdict(m), "speedup": m.speedup, "size_ratio": m.size_ratio,
                "accuracy": self.accuracy, "baseline_accuracy": self.baseline_accuracy}


def measure_int8(module: nn.Module, int8_module: nn.Module, example: Tensor, mode: str, backend: str,
                 repeats: int = 30) -> Int8Measure:
    """Time both modules on `example`, in turns, and weigh their torch.save files."""
    with _quiet():
        fp32_ms, int8_ms = [t.median_ms for t in latency_in_turns((module, int8_module), example, repeats, warmup=3)]
        size = len(torch_save_bytes(int8_module.state_dict()))
    return Int8Measure(backend, mode, len(example), int8_ms, fp32_ms, size, saved_size_bytes(module))


def convert_int8(module: nn.Module, mode: str, calibration: Tensor | None = None,
                 backend: Int8Backend = DEFAULT_BACKEND) -> nn.Module:
    """A new int8 module from an fp32 one (static needs `calibration` inputs)."""
    if mode == "dynamic":
        return backend.quantize_dynamic(module)
    if calibration is None or not len(calibration):
        raise InputError("static int8 needs calibration inputs")
    return backend.quantize_static(module, calibration)


def deploy_int8(model: LoadedModel, config: Int8Config, backend: Int8Backend = DEFAULT_BACKEND) -> Int8Result:
    """Convert `model` to real int8, then measure accuracy, latency and file size against fp32."""
    if model.module is None:
        raise InputError("int8 deployment needs a PyTorch model (ONNX models: use onnxruntime's own tools)")
    calibration = calibration_inputs(model, 1, config.calibration_samples)
    int8_module = convert_int8(model.module, config.mode, calibration, backend)
    data = model.dataset
    example = data.x_test[:config.batch_size]
    with _quiet():
        accuracy = evaluate(int8_module, data.x_test, data.y_test).accuracy
    measure = measure_int8(model.module, int8_module, example, config.mode, backend.name, config.repeats)
    return Int8Result(config, int8_module, measure, accuracy,
                      evaluate(model.module, data.x_test, data.y_test).accuracy)


LARGE_MLP = (1024, (4096, 4096), 10)


def large_mlp_int8(batch_size: int = 256, repeats: int = 10, mode: str = "dynamic",
                   backend: Int8Backend = DEFAULT_BACKEND) -> Int8Measure:
    """Where int8 wins: a 1024-4096-4096-10 MLP (random weights, fixed seed) at `batch_size`."""
    torch.manual_seed(0)
    in_features, hidden, classes = LARGE_MLP
    module = MLP(in_features, hidden, classes).eval()
    example = torch.randn(batch_size, in_features, generator=torch.Generator().manual_seed(0))
    int8_module = convert_int8(module, mode, example, backend)  # static: calibrated on the timed batch
    return measure_int8(module, int8_module, example, mode, backend.name, repeats)
