"""Where a sweep's tasks run, behind one interface: threads of this process (the default), or a Ray cluster when
$COMPRESSION_LAB_RAY_ADDRESS names one (`auto`, or an address such as `10.0.0.5:6379`).

A task is a module-level function `fn(payload, report)` on plain data: `payload` is a dict of JSON values and the
function returns one; it never receives a Python object of the caller's (a Ray worker gets the function by its import
path and the payload as data). `report(fraction, text)` publishes the task's progress; under the local backend it
raises `Cancelled` once the work is cancelled, so a task stops at its next report.

Ray places each task by its declared needs (`num_cpus`, and `num_gpus` where the cluster has GPUs), retries a task
whose worker died (`max_retries`), and cancelling force-stops the tasks in flight.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from typing import Any, Protocol

from compression.core.errors import InputError

RAY_ADDRESS_ENV = "COMPRESSION_LAB_RAY_ADDRESS"
# The variables a Ray worker needs to find the same caches and limits as the process that submits to it.
FORWARDED_ENV = ("COMPRESSION_LAB_CACHE", "COMPRESSION_LAB_FASHION_MNIST", "COMPRESSION_LAB_TORCH_THREADS",
                 "COMPRESSION_LAB_MAX_LM_PARAMS", "COMPRESSION_LAB_MAX_ELEMENTS", "COMPRESSION_LAB_MAX_UPLOAD_MB")
RETRIES = 3  # times Ray reruns a task whose worker died
REPORT_EVERY_S = 0.3  # a task's progress reaches the board at most this often (the last report always does)

Task = Callable[[dict, Callable[[float, str], None]], dict]


class Cancelled(Exception):
    """Raised inside a task by `report` once its work has been cancelled (local backend)."""


@dataclass(frozen=True)
class TaskProgress:
    """The last progress a task reported: how far (0–1), what it does, where it runs, since when."""

    fraction: float
    text: str
    worker: str  # host:pid of the process running it
    started_at: float  # wall time the task began (its first report)


@dataclass(frozen=True)
class Outcome:
    """A finished task: its returned record, or why it failed."""

    key: str
    record: dict | None
    error: str | None = None


class Backend(Protocol):
    """Runs tasks, says which have finished, reports their progress and stops them."""

    name: str  # what the page and the CLI say it is
    slots: int  # tasks that run at once
    device: str  # where a task's tensors go: cuda on a cluster with GPUs (each task then declares one), else cpu

    def submit(self, key: str, fn: Task, payload: dict, gpu: bool = False) -> None: ...

    def wait(self, timeout_s: float) -> list[Outcome]: ...

    def progress(self) -> dict[str, TaskProgress]: ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


class _Board:
    """Each running task's latest progress, by key."""

    def __init__(self):
        self._lock = threading.Lock()
        self._latest: dict[str, TaskProgress] = {}

    def report(self, key: str, fraction: float, text: str, worker: str, started_at: float) -> None:
        with self._lock:
            self._latest[key] = TaskProgress(fraction, text, worker, started_at)

    def snapshot(self) -> dict[str, TaskProgress]:
        with self._lock:
            return dict(self._latest)


def _reporter(key: str, send: Callable[..., Any], cancelled: Callable[[], bool] = lambda: False
              ) -> Callable[[float, str], None]:
    """`report(fraction, text)` for one task: forwards at most every REPORT_EVERY_S (always the first and the
    last), and raises Cancelled once the task's work is cancelled."""
    worker, started, last = f"{socket.gethostname()}:{os.getpid()}", time.time(), [0.0]

    def report(fraction: float, text: str) -> None:
        if cancelled():
            raise Cancelled
        now = time.monotonic()
        if now - last[0] >= REPORT_EVERY_S or fraction >= 1.0 or last[0] == 0.0:
            last[0] = now
            send(key, fraction, text, worker, started)

    return report


class LocalBackend:
    """Tasks in `slots` threads of this process (the in-process pool: a sweep started on a page runs beside it)."""

    def __init__(self, slots: int = 1):
        if slots < 1:
            raise ValueError(f"a backend needs at least one slot, got {slots}")
        self.name = f"this process, {slots} cell{'s' if slots > 1 else ''} at a time"
        self.slots = slots
        self.device = "cpu"
        self._pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="sweep-task")
        self._board = _Board()
        self._stop = threading.Event()
        self._futures: dict[Future, str] = {}

    def submit(self, key: str, fn: Task, payload: dict, gpu: bool = False) -> None:
        report = _reporter(key, self._board.report, self._stop.is_set)
        self._futures[self._pool.submit(fn, payload, report)] = key

    def wait(self, timeout_s: float) -> list[Outcome]:
        if not self._futures:
            return []
        done, _ = wait_futures(list(self._futures), timeout=timeout_s, return_when=FIRST_COMPLETED)
        outcomes = []
        for future in done:
            key = self._futures.pop(future)
            if future.cancelled():
                outcomes.append(Outcome(key, None, "cancelled"))
                continue
            error = future.exception()
            outcomes.append(Outcome(key, future.result()) if error is None else
                            Outcome(key, None, "cancelled" if isinstance(error, Cancelled) else
                                    f"{type(error).__name__}: {error}"))
        return outcomes

    def progress(self) -> dict[str, TaskProgress]:
        return self._board.snapshot()

    def cancel(self) -> None:
        self._stop.set()  # running tasks stop at their next report
        for future in self._futures:
            future.cancel()  # queued ones never start

    def close(self) -> None:
        self.cancel()
        self._pool.shutdown(wait=True)


def _ray_task(fn: Task, payload: dict, key: str, board) -> dict:
    """What a Ray worker runs: the task, its progress sent to the sweep's board actor (fire and forget)."""
    return fn(payload, _reporter(key, lambda *args: board.report.remote(*args)))


class RayBackend:
    """Tasks on a Ray cluster: `ray.init(address)` once per process (a process already connected keeps its
    connection), each task declaring `num_cpus` (and one GPU where the cluster has GPUs)."""

    def __init__(self, address: str | None = None, num_cpus: float = 1.0, slots: int | None = None):
        ray = _join(address)
        self.name, cpus, self.gpus = describe_cluster(address)
        self.device = "cuda" if self.gpus else "cpu"
        self.num_cpus = num_cpus
        self.slots = slots or max(1, int(cpus // num_cpus))
        self._ray = ray
        self._remote = ray.remote(_ray_task)
        self._board = ray.remote(num_cpus=0)(_Board).remote()
        self._refs: dict[Any, str] = {}

    def submit(self, key: str, fn: Task, payload: dict, gpu: bool = False) -> None:
        """`gpu`: the task puts its tensors on CUDA, so it declares one GPU (and then needs a cluster that has one)."""
        options = dict(num_cpus=self.num_cpus, num_gpus=1 if gpu and self.gpus else 0, max_retries=RETRIES,
                       retry_exceptions=False, name=f"sweep-cell-{key}")
        ref = self._remote.options(**options).remote(fn, payload, key, self._board)
        self._refs[ref] = key

    def wait(self, timeout_s: float) -> list[Outcome]:
        if not self._refs:
            return []
        ready, _ = self._ray.wait(list(self._refs), num_returns=1, timeout=timeout_s)
        outcomes = []
        for ref in ready:
            key = self._refs.pop(ref)
            try:
                outcomes.append(Outcome(key, self._ray.get(ref)))
            except Exception as exc:  # the task raised, or its worker died more often than it is retried
                outcomes.append(Outcome(key, None, _first_line(exc)))
        return outcomes

    def progress(self) -> dict[str, TaskProgress]:
        return self._ray.get(self._board.snapshot.remote())

    def cancel(self) -> None:
        for ref in list(self._refs):
            self._ray.cancel(ref, force=True)  # a cancelled task is not retried

    def close(self) -> None:
        self.cancel()
        self._ray.kill(self._board)


def _join(address: str | None):
    """The ray module, this process connected to the cluster at `address` (once: a connected process stays)."""
    ray = _import_ray()
    if not ray.is_initialized():
        env = {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}
        try:
            ray.init(address=address or "auto", log_to_driver=False, logging_level="warning",
                     runtime_env={"env_vars": env} if env else None)
        except ConnectionError as exc:
            raise InputError(f"cannot reach the Ray cluster at {address or 'auto'}: {exc}") from None
    return ray


def describe_cluster(address: str | None) -> tuple[str, float, int]:
    """(what to call the cluster, its CPUs, 1 when a task may have a GPU else 0), joining it if need be."""
    ray = _join(address)
    resources = ray.cluster_resources()
    gpus = 1 if resources.get("GPU", 0) >= 1 else 0
    shown = f", {int(resources['GPU'])} GPUs" if gpus else ""
    where = address or ray.get_runtime_context().gcs_address
    return f"the Ray cluster at {where} ({int(resources.get('CPU', 0))} CPUs{shown})", resources.get("CPU", 1), gpus


def _first_line(exc: Exception) -> str:
    """A task's error in one line: Ray wraps a worker's exception in a traceback of its own."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, Exception):
        return f"{type(cause).__name__}: {cause}"
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"


def _import_ray():
    try:
        import ray  # lazy: Ray is an optional extra, needed only when a cluster is named
    except ImportError:
        raise InputError(f"${RAY_ADDRESS_ENV} names a Ray cluster but Ray is not installed: "
                         "pip install 'compression-lab[ray]'") from None
    return ray


def ray_address(environ: Mapping[str, str] | None = None) -> str | None:
    """The Ray cluster $COMPRESSION_LAB_RAY_ADDRESS names, or None for the in-process pool."""
    return ((environ if environ is not None else os.environ).get(RAY_ADDRESS_ENV) or "").strip() or None


def backend_from_environment(local_slots: int = 1) -> Backend:
    """Ray when $COMPRESSION_LAB_RAY_ADDRESS is set, else `local_slots` threads of this process."""
    address = ray_address()
    return RayBackend(address) if address else LocalBackend(local_slots)
