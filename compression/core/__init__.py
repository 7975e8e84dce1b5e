"""What every layer shares: the project's error, settings, progress drivers and the background job runner."""

from compression.core.errors import InputError
from compression.core.jobs import Job, JobPool, default_pool
from compression.core.progress import Drive, Waiting, run_to_end

__all__ = ["Drive", "InputError", "Job", "JobPool", "Waiting", "default_pool", "run_to_end"]
