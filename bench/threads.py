"""The thread policy, measured: the SmolLM2 SparseGPT and GPTQ CLI paths idle and beside one and two busy
processes, at the policy (one torch thread unless told otherwise) and at torch's default (one per core).

Each line gives the wall time of a whole CLI run (loading, calibration, compression, evaluation) and its ratio to
the same run idle. Targets (issue 22): beside one busy process at most 2.5x idle; beside two at most 4x.
A distillation (the longest classifier job) is timed the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager

LM_RUN = ["lm", "--model", "smollm2", "--samples", "8", "--eval-samples", "8", "--seq-len", "128", "--json",
          "--no-record"]
DISTILL = ["distill", "--teacher", "cnn", "--student-hidden", "32", "--alpha", "0.5", "--temperature", "4",
           "--epochs", "10", "--labeled-fraction", "0.05", "--json", "--no-record"]
TIMEOUT_S = 600
TARGETS = {1: 2.5, 2: 4.0}


@contextmanager
def hogs(count: int):
    """`count` CPU-bound processes (each spins one core) for the duration of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.5 if count else 0)
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def wall_s(args: list[str], threads: int | None) -> float | None:
    """Seconds one CLI command takes (None: it did not finish within TIMEOUT_S)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "COMPRESSION_LAB_TORCH_THREADS")}
    command = [sys.executable, "-m", "compression", *(["--threads", str(threads)] if threads else []), *args]
    start = time.perf_counter()
    try:
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None
    return time.perf_counter() - start


def show(label: str, seconds: float | None, idle: float | None, busy: int) -> None:
    if seconds is None:
        print(f"  {label:44s} did not finish in {TIMEOUT_S} s", flush=True)
        return
    ratio = seconds / idle if idle else 1.0
    target = TARGETS.get(busy)
    verdict = f" (target <= {target}x: {'MET' if ratio <= target else 'MISSED'})" if target else ""
    print(f"  {label:44s} {seconds:6.1f} s  {ratio:4.2f}x idle{verdict}", flush=True)


def main() -> None:
    print(f"{os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.2f}")
    wall_s([*LM_RUN, "--method", "rtn"], None)  # the dequantized SmolLM2 cache, built once, outside the timings
    for method in ("sparsegpt", "gptq"):
        print(f"SmolLM2 {method} (8x128 calibration and evaluation tokens), the policy (1 thread):")
        idle = None
        for busy in (0, 1, 2):
            with hogs(busy):
                seconds = wall_s([*LM_RUN, "--method", method], None)
            idle = idle if busy else seconds
            show(f"{busy} busy process{'es' if busy != 1 else ''}", seconds, idle, busy)
    print("SmolLM2 sparsegpt at torch's default, one thread per core (2):")
    idle = wall_s([*LM_RUN, "--method", "sparsegpt"], os.cpu_count())
    show("0 busy processes", idle, idle, 0)
    with hogs(1):
        show("1 busy process", wall_s([*LM_RUN, "--method", "sparsegpt"], os.cpu_count()), idle, 1)
    for threads in (1, os.cpu_count()):
        print(f"distillation cnn -> 64-32-10, 10 epochs, {threads} thread{'s' if threads > 1 else ''}:")
        idle = wall_s(DISTILL, threads)
        show("0 busy processes", idle, idle, 0)
        with hogs(1):
            show("1 busy process", wall_s(DISTILL, threads), idle, 1)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
