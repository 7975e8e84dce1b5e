"""Every kind of job a page starts yields often enough that Cancel ends it within a second."""

import time

import pytest

from compression.core import Job, JobPool
from compression.distillation import DistillConfig, distill
from compression.pipeline import BudgetConfig, PipelineConfig, budget_search, run_pipeline
from compression.pruning import FinetuneConfig, GradualConfig, PruneConfig, finetune, prune_gradually
from compression.quantization import QATConfig, QuantConfig, qat_with_control
from compression.training import TrainConfig

CANCEL_S = 1.0  # the promise: Cancel answers within a second
LONG = TrainConfig(epochs=200, lr=1e-3)  # far longer than the test: only Cancel can end these


def _kinds(model):
    return {
        "finetune": lambda: finetune(model, FinetuneConfig(PruneConfig(amount=0.5), LONG)),
        "gradual": lambda: prune_gradually(model, GradualConfig(PruneConfig(amount=0.5), LONG)),
        "qat": lambda: qat_with_control(model, QATConfig(QuantConfig(bits=3), LONG)),
        "distill": lambda: distill(model, DistillConfig(student_hidden=(16,), epochs=200)),
        "pipeline": lambda: run_pipeline(model, PipelineConfig(steps=("prune", "quantize", "encode"),
                                                                    finetune_epochs=200)),
        # the students train first: Cancel must not wait for them
        "budget": lambda: budget_search(model, BudgetConfig(budget=4000, student_hidden=(16,), distill_epochs=200)),
    }


@pytest.mark.parametrize("kind", ["finetune", "gradual", "qat", "distill", "pipeline", "budget"])
def test_cancel_ends_each_kind_of_job_within_a_second(zoo, kind):
    job = Job(_kinds(zoo("mlp"))[kind], label=kind, pool=JobPool(1))
    deadline = time.monotonic() + 60
    while len(job.steps) < 3:  # well into training, past any set-up
        assert job.running and time.monotonic() < deadline, job.error
        time.sleep(0.01)
    asked = time.perf_counter()
    job.cancel()
    job.join(10)
    waited = time.perf_counter() - asked
    assert job.status == "cancelled"
    assert waited < CANCEL_S, f"{kind}: Cancel took {waited:.2f} s"
