"""The pipeline: prune → distill → weight sharing → encode, and the budget search over such pipelines."""

from compression.pipeline.budget import (
    BudgetConfig,
    best_run,
    best_under_budget,
    budget_search,
)
from compression.pipeline.run import STEPS, PipelineConfig, run_pipeline

__all__ = [
    "best_run",
    "best_under_budget",
    "budget_search",
    "BudgetConfig",
    "PipelineConfig",
    "run_pipeline",
    "STEPS",
]
