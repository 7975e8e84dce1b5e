"""Every kind of job a page starts stops at its next step when cancelled. How long a step takes is a wall time on
a shared CPU, not a test's business: bench/cancel.py measures it against the README's one second."""

import time

import pytest

from bench.cancel import job_kinds
from compression.core import Job, JobPool

HANG_S = 120  # only a job that never reaches another step takes this long; no wall-time target


@pytest.mark.parametrize("kind", ["finetune", "gradual", "qat", "distill", "pipeline", "budget"])
def test_cancel_ends_each_kind_of_job_at_its_next_step(zoo, kind):
    job = Job(job_kinds(zoo("mlp"))[kind], label=kind, pool=JobPool(1))
    hung = time.monotonic() + HANG_S
    while len(job.steps) < 3:  # well into training, past any set-up
        assert job.running and time.monotonic() < hung, job.error
        time.sleep(0.01)
    job.cancel()
    steps_when_cancelled = len(job.steps)
    job.join(HANG_S)
    assert job.status == "cancelled", f"{kind} still {job.status} {HANG_S} s after Cancel"
    assert len(job.steps) <= steps_when_cancelled + 1  # the step under way may end; no other starts
