"""Verbs that chain techniques: prune → distill → weight sharing → encode and the budget search over such
pipelines; the one-shot walk of any model (`compress`) and of a causal language model (`compress_lm`)."""

from compression.pipeline.budget import (
    BudgetConfig,
    best_run,
    best_under_budget,
    budget_search,
)
from compression.pipeline.lm import (
    PRUNE_METHODS,
    QUANT_METHODS,
    WA_METHODS,
    LMResult,
    compress_lm,
    config_from_dict,
    fp16_size_bytes,
    lm_config,
    method_kind,
    method_of,
    pack,
    packed_size_bytes,
    unpack,
)
from compression.pipeline.oneshot import OneShotConfig, OneShotResult, block_process, compress
from compression.pipeline.run import STEPS, PipelineConfig, run_pipeline

__all__ = [
    "best_run",
    "best_under_budget",
    "block_process",
    "budget_search",
    "BudgetConfig",
    "compress",
    "compress_lm",
    "config_from_dict",
    "fp16_size_bytes",
    "lm_config",
    "LMResult",
    "method_kind",
    "method_of",
    "OneShotConfig",
    "OneShotResult",
    "pack",
    "packed_size_bytes",
    "PipelineConfig",
    "PRUNE_METHODS",
    "QUANT_METHODS",
    "run_pipeline",
    "STEPS",
    "unpack",
    "WA_METHODS",
]
