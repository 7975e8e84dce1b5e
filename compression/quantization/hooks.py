"""The one activation hook: a forward pre-hook that fake-quantizes a layer's input (a runtime property of the
model, not saved with its weights)."""

from __future__ import annotations

from torch import nn

from compression.quantization.primitives import QParams, fake_quantize, fake_quantize_dynamic


class InputFakeQuant:
    """Round a layer's input to a fixed, calibrated grid (static), or to a symmetric grid fitted to each input
    as it comes, per token or per tensor (dynamic). A class, not a closure, so a model with it still pickles."""

    def __init__(self, qparams: QParams | None = None, bits: int | None = None, granularity: str = "per-tensor"):
        if (qparams is None) == (bits is None):
            raise ValueError("give a fixed grid (qparams) or the bits of a dynamic one, not both")
        self.qparams, self.bits, self.granularity = qparams, bits, granularity

    def __call__(self, _module: nn.Module, args: tuple) -> tuple:
        x = args[0]
        out = fake_quantize(x, self.qparams) if self.qparams is not None else \
            fake_quantize_dynamic(x, self.bits, self.granularity)
        return (out, *args[1:])
