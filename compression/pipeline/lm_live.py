"""Round-to-nearest at lecture speed: one working copy of a language model whose decoder linears are rounded in
place, setting after setting, instead of a deepcopy and a packed code tensor per slider move.

The weights are exactly those `compress_lm` gives for the same RTN config (the same grid and the same rounding);
nothing is packed, so the file size is not measured here: a Run does that.
"""

from __future__ import annotations

import copy
import threading
import torch
from torch import Tensor

from compression.calibration import get_weight, set_weight
from compression.lm import DecoderLayers, LanguageModel, Perplexity, perplexity
from compression.quantization import QuantConfig
from compression.quantization.primitives import fake_quantize
from compression.quantization.tensors import grid_for


class LiveRTN:
    """A private copy of `lm` for round-to-nearest previews; one setting at a time (a lock), the shared model never
    touched."""

    def __init__(self, lm: LanguageModel):
        self._copy = copy.deepcopy(lm.model).eval()
        original = DecoderLayers().blocks(lm.model)
        working = DecoderLayers().blocks(self._copy)
        # (the shared model's linear, the copy's linear) for every compressible linear, in forward order
        self._pairs = [(a.linears[role], b.linears[role]) for a, b in zip(original, working) for role in a.linears]
        self._lock = threading.Lock()
        self._current: QuantConfig | None = None  # the rounding the copy holds now

    @torch.no_grad()
    def _round(self, config: QuantConfig) -> None:
        if self._current == config:
            return
        for source, target in self._pairs:
            w = get_weight(source).float()
            set_weight(target, fake_quantize(w, grid_for(w, config.bits, config)))
        self._current = config

    def perplexity(self, config: QuantConfig, ids: Tensor) -> Perplexity:
        """Round every decoder linear as `config` says (RTN; kept while the next call asks for the same config),
        then measure perplexity on `ids`."""
        if config.method != "rtn" or config.binary or config.ternary:
            raise ValueError(f"the live path rounds to nearest on a uniform grid, got {config.label}")
        with self._lock:
            self._round(config)
            return perplexity(self._copy, ids)
