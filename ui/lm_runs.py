"""The Language-model page's runs: one background Job compresses, evaluates and samples each chosen method.

The job thread never calls st.*: it yields LMProgress; a finished method comes out as a plain dict (no model is
kept, so a session holds numbers only), recorded in the history by the job itself and collected by the page.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

from torch import Tensor

from compression import lm  # lm.generate: a name that is also one of its modules' names
from compression.core import Drive, run_to_end
from compression.lm import LanguageModel, Perplexity, perplexity
from compression.calibration import BlockStep
from compression.pipeline import (LMResult, OneShotConfig, compress_lm, fp16_size_bytes, lm_config, method_kind,
                                  method_of, pack, packed_size_bytes)
from compression.pruning import PruneConfig
from compression.quantization import QuantConfig

METHODS = ("magnitude", "wanda", "sparsegpt", "rtn", "gptq", "awq", "smoothquant", "naive")  # naive: W·A, no migration
PRUNING = ("magnitude", "wanda", "sparsegpt")
SHORT = (2, 64)  # the live RTN's first, quick evaluation slice: samples x tokens
PACKED_KEEP_BYTES = 16 << 20  # packed files up to this size stay in the session for download (the tiny GPT's do)


@dataclass(frozen=True)
class LMProgress:
    """Method `index` of `total` is at decoder layer `step` (None: evaluated; `row` then holds its measurements)."""

    index: int
    total: int
    label: str
    step: BlockStep | None = None
    row: dict | None = None

    @property
    def fraction(self) -> float:
        within = 1.0 if self.step is None else self.step.fraction * 0.9  # the last tenth: perplexity and sampling
        return (self.index + within) / self.total

    @property
    def text(self) -> str:
        where = "evaluated" if self.step is None else f"layer {self.step.index + 1}/{self.step.blocks}"
        return f"{self.label} ({self.index + 1} of {self.total}): {where}"


def configs_for(methods: Sequence[str], sparsity: float, pattern: str, bits: int, group_size: int,
                alpha: float, wa_bits: int, act_granularity: str) -> list[OneShotConfig]:
    """One config per chosen method from the page's sliders (raises InputError on a bad value).

    SmoothQuant and its naive baseline quantize weights and activations to `wa_bits` (W8A8, W6A6).
    """
    nm = (2, 4) if pattern == "2:4" else None
    return [lm_config(method, sparsity, nm, bits, group_size, alpha, wa_bits, act_granularity) for method in methods]


def series_of(config: OneShotConfig) -> str:
    """The chart line a config's point joins: a method, plus the grid or pattern that makes it a different curve."""
    if isinstance(config, PruneConfig):
        return f"{config.method} {config.nm[0]}:{config.nm[1]}" if config.nm else config.method
    if isinstance(config, QuantConfig):
        return f"{config.method} " + (f"g{config.group_size}" if config.granularity == "per-group" else "per-channel")
    name = f"smoothquant α={config.alpha:g}" if config.smooth else "naive"
    return f"{name} A{config.act_bits} {config.act_granularity}"


def measure(model: LanguageModel, result: LMResult, evaluation: Tensor, prompt: str,
            new_tokens: int) -> dict:
    """What the page keeps of one compressed model: numbers and text, never the model."""
    config = result.config
    ppl = perplexity(result.lm.model, evaluation)
    bits = getattr(config, "bits", None) or getattr(config, "weight_bits", None)
    size_bytes = packed_size_bytes(result)
    return {
        "method": method_of(config), "series": series_of(config), "label": config.label,
        "config": {"kind": method_kind(config), **config.to_dict()}, "sparsity": result.sparsity(), "bits": bits,
        "target_sparsity": config.amount if isinstance(config, PruneConfig) else None,
        "perplexity": ppl.perplexity, "tokens": ppl.tokens, "seconds": result.seconds,
        "size_bytes": size_bytes, "packed": pack(result) if size_bytes <= PACKED_KEEP_BYTES else None,
        "baseline_size_bytes": fp16_size_bytes(model),
        "layer_errors": result.layer_errors(), "notes": list(result.notes),
        "prompt": prompt, "new_tokens": new_tokens,
        "generation": lm.generate(result.lm, prompt, new_tokens) if prompt.strip() else "",
    }


def run_methods(model: LanguageModel, configs: Sequence[OneShotConfig], calibration: Tensor | None, evaluation: Tensor,
                prompt: str, new_tokens: int, record: Callable[[dict], dict] | None = None
                ) -> Generator[LMProgress, None, None]:
    """Compress, evaluate and sample each config in turn; Cancel (close) stops after the current layer.

    `record(row)` runs in the job's thread as each method finishes, so its run reaches the history even when no
    page is watching; it returns the row as the page keeps it.
    """
    for index, config in enumerate(configs):
        run = Drive(compress_lm(model, config, calibration))
        for step in run:
            yield LMProgress(index, len(configs), config.label, step)
        row = measure(model, run.result, evaluation, prompt, new_tokens)
        del run  # the compressed copy goes before the next one is made
        yield LMProgress(index, len(configs), config.label, row=record(row) if record else row)


def live_rtn(model: LanguageModel, config: QuantConfig, short: Tensor, full: Tensor) -> Generator[Perplexity]:
    """RTN needs no calibration: round once, then yield the perplexity on a short slice first, the full one next."""
    result = run_to_end(compress_lm(model, config))
    yield perplexity(result.lm.model, short)
    yield perplexity(result.lm.model, full)
