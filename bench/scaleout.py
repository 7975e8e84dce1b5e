"""Past one machine: sweeps on Ray and a history several servers share (issue 21). Run it alone on a quiet machine:
every figure is printed with the 1-minute load average beside it, and each target says MET or MISSED.

1. A 12-cell sweep of the cnn (SparseGPT at 3 sparsities and GPTQ at 3 bit widths, each on 512 and 2,048
   calibration images) on a local Ray cluster of 1 worker CPU, then of 2: the median wall time over repeats
   (workers warmed first: each has imported the engine), the speed-up (target ≥ 1.7×), and Ray's overhead per cell:
   the median from a task's start to its model loaded (target < 1 s), beside the median gap a worker sits between
   two cells and the time to the first cell on a fresh cluster. The same sweep in this process is printed beside.
2. A 4-cell SmolLM2-135M sweep (magnitude 50%, SparseGPT 50%, RTN and GPTQ 4-bit in groups of 64) on 2 workers:
   the peak resident memory of this process and every Ray process together (sampled every 0.2 s; target ≤ 6 GB), and
   each cell's perplexity against the same cell run alone in a fresh process (target: equal).
3. A worker killed in the middle of a cell (SIGKILL, on a tiny-GPT sweep): every cell ends in the history exactly
   once (the killed cell retried by Ray on another worker).
4. 100 writers at once (4 processes × 25 threads, 10 runs each with a 20 kB file) into a SQLite history and into a
   PostgreSQL one ($COMPRESSION_LAB_TEST_DB_URL, else a throwaway server via .ci/with-postgres): runs lost (target 0).

SCALEOUT_SMOKE=1 only checks that the script runs end to end (the tiny GPT instead of SmolLM2, one repeat, fewer
writers): its figures mean nothing.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# Everything on the loopback interface; read by Ray when it is first imported (see tests/ray_cluster.py).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from compression.core import Drive  # noqa: E402
from compression.history import RunStore  # noqa: E402
from compression.pipeline import (  # noqa: E402
    CLASSIFIER,
    LANGUAGE_MODEL,
    SweepGrid,
    SweepSettings,
    expand_sweep,
    run_sweep,
)

ROOT = Path(__file__).resolve().parent.parent
SMOKE = bool(os.environ.get("SCALEOUT_SMOKE"))
REPEATS = 1 if SMOKE else 3
GIB = 2 ** 30
CNN_GRID = SweepGrid(methods=("sparsegpt", "gptq"), sparsities=(0.5, 0.7, 0.9), bits=(2, 3, 4),
                     calibration_samples=(512, 2048))
LM_MODEL = "tiny-gpt" if SMOKE else "smollm2"
LM_GRID = SweepGrid(methods=("magnitude", "sparsegpt", "rtn", "gptq"), sparsities=(0.5,), bits=(4,),
                    group_sizes=(64,), calibration_samples=(4 if SMOKE else 16,))
LM_SETTINGS = SweepSettings(evaluation="kjv", eval_samples=4 if SMOKE else 16, seq_len=64 if SMOKE else 128)
KILL_GRID = SweepGrid(methods=("sparsegpt", "gptq"), sparsities=(0.5, 0.7), bits=(3, 4), group_sizes=(16,),
                      calibration_samples=(64,))


def load() -> str:
    return f"[load {os.getloadavg()[0]:.2f}]"


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


class Cluster:
    """A local Ray cluster of `cpus` worker CPUs started by this process (ray.init), its processes our children."""

    def __init__(self, cpus: int):
        import ray  # lazy: Ray is an optional extra

        env = {k: v for k, v in os.environ.items()
               if k.startswith("COMPRESSION_LAB_") and k != "COMPRESSION_LAB_DB_URL"}
        start = time.perf_counter()
        ray.init(num_cpus=cpus, num_gpus=0, include_dashboard=False, log_to_driver=False, logging_level="error",
                 runtime_env={"env_vars": {**env, "OMP_NUM_THREADS": "1"}})
        self.started_s = time.perf_counter() - start
        self.ray = ray

    def backend(self):
        from compression.core.backends import RayBackend

        return RayBackend()

    def close(self) -> None:
        self.ray.shutdown()


def drive(sweep, backend, store, on_state=None):
    """Run a sweep to its end; (wall seconds, final state)."""
    start = time.perf_counter()
    run = Drive(run_sweep(sweep, backend, store, poll_s=0.05))
    for state in run:
        if on_state is not None:
            on_state(state)
    return time.perf_counter() - start, run.result


def timings(state) -> list[dict]:
    return [c.record["timing"] | {"pid": c.record["worker"]["pid"]} for c in state.cells if c.status == "done"]


def gaps(cells: list[dict]) -> list[float]:
    """Per worker, the time between one cell's end and the next cell's start there."""
    by_worker: dict[int, list[dict]] = {}
    for t in cells:
        by_worker.setdefault(t["pid"], []).append(t)
    out = []
    for runs in by_worker.values():
        runs.sort(key=lambda t: t["entered_at"])
        out += [b["entered_at"] - a["ended_at"] for a, b in zip(runs, runs[1:])]
    return out


def classifier_speedup(store: RunStore) -> None:
    from compression.core.backends import LocalBackend
    from compression.models import load_zoo

    load_zoo("cnn")  # trained into the cache before any worker reads it
    print(f"\n1. 12-cell cnn sweep ({len(expand_sweep('cnn', CLASSIFIER, CNN_GRID))} cells: SparseGPT 50/70/90% and "
          f"GPTQ 2/3/4-bit, each on 512 and 2,048 calibration images), median of {REPEATS} {load()}")
    local = LocalBackend(1)
    walls = [drive(expand_sweep("cnn", CLASSIFIER, CNN_GRID, owner=f"local-{r}-{time.time_ns()}"), local, store)[0]
             for r in range(REPEATS)]
    local.close()
    print(f"   this process, 1 cell at a time: {statistics.median(walls):.2f} s {load()}")
    results = {}
    for cpus in (1, 2):
        cluster = Cluster(cpus)
        backend = cluster.backend()
        first_wall, first = drive(expand_sweep("cnn", CLASSIFIER, SweepGrid(methods=("rtn",), bits=(8,)),
                                               owner=f"warm-{cpus}-{time.time_ns()}"), backend, store)
        # warm every worker before the clock runs (each has imported torch and the engine): rounds of cheap cells
        # submitted together until they ran on `cpus` processes, since Ray starts a second worker only while
        # tasks wait and the first finishes cheap cells before it is up
        for _ in range(30):
            _, warm = drive(expand_sweep("cnn", CLASSIFIER, SweepGrid(methods=("rtn",), bits=(2, 3, 4, 5, 6, 7)),
                                         owner=f"warm-{cpus}-{time.time_ns()}"), backend, store)
            if len({c.record["worker"]["pid"] for c in warm.cells}) >= cpus:
                break
        runs, cells = [], []
        for r in range(REPEATS):
            wall, state = drive(expand_sweep("cnn", CLASSIFIER, CNN_GRID, owner=f"ray{cpus}-{r}-{time.time_ns()}"),
                                backend, store)
            assert state.count("done") == len(state.cells), [c.error for c in state.cells]
            runs.append(wall)
            cells += timings(state)
        backend.close()
        cluster.close()
        results[cpus] = (statistics.median(runs), cells)
        load_s = statistics.median(t["load_s"] for t in cells)
        gap = gaps(cells)
        print(f"   Ray, {cpus} worker CPU(s): {statistics.median(runs):.2f} s (runs "
              f"{', '.join(f'{w:.2f}' for w in runs)}); cluster start {cluster.started_s:.1f} s, first cell on a fresh cluster {first_wall:.1f} s "
              f"(workers import torch and the engine); per cell: task start to model loaded median {load_s:.3f} s, "
              f"worker idle between cells median {statistics.median(gap) if gap else float('nan'):.3f} s {load()}")
    speedup = results[1][0] / results[2][0]
    overhead = statistics.median(t["load_s"] for t in results[2][1])
    print(f"   speed-up, 2 workers over 1: {speedup:.2f}× (target ≥ 1.7×): {verdict(speedup >= 1.7)} {load()}")
    print(f"   Ray overhead per cell, task start to model loaded (2 workers, median): {overhead:.3f} s "
          f"(target < 1 s): {verdict(overhead < 1.0)} {load()}")


class MemorySampler:
    """The peak of this process's and all its descendants' resident memory together, sampled in a thread."""

    def __init__(self, every_s: float = 0.2):
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)
        self._thread.start()

    def _run(self, every_s: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(os.getpid()))
            time.sleep(every_s)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def tree_rss(root: int) -> int:
    """VmRSS of `root` and every process below it, in bytes (shared pages counted in each: an upper bound)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid = int(entry.name)
        children.setdefault(int(fields["PPid"].strip()), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def language_model_sweep(store: RunStore) -> None:
    sweep = expand_sweep(LM_MODEL, LANGUAGE_MODEL, LM_GRID, LM_SETTINGS, owner=f"lm-{time.time_ns()}")
    print(f"\n2. {len(sweep)}-cell {LM_MODEL} sweep ({', '.join(c.label for c in sweep.cells)}; "
          f"{LM_SETTINGS.eval_samples} × {LM_SETTINGS.seq_len} evaluation tokens) on 2 Ray workers {load()}")
    cluster = Cluster(2)
    backend = cluster.backend()
    sampler = MemorySampler()
    wall, state = drive(sweep, backend, store)
    peak = sampler.stop()
    backend.close()
    cluster.close()
    assert state.count("done") == len(sweep), [c.error for c in state.cells]
    print(f"   {wall:.1f} s; peak resident memory of this process and every Ray process together: "
          f"{peak / GIB:.2f} GiB (target ≤ 6 GB = {6e9 / GIB:.2f} GiB): {verdict(peak <= 6e9)} {load()}")
    worst = max(c.record["worker"]["peak_rss_bytes"] for c in state.cells)
    print(f"   largest worker's own peak: {worst / GIB:.2f} GiB {load()}")
    equal = 0
    for cell_state in state.cells:
        alone = subprocess.run([sys.executable, "-c", "import json, sys\nfrom compression.pipeline import run_cell\n"
                                "print(json.dumps(run_cell(json.loads(sys.argv[1]))['result']['perplexity']))",
                                json.dumps(cell_state.cell.to_dict())], capture_output=True, text=True, cwd=ROOT,
                               timeout=1800)
        if alone.returncode != 0:
            print(f"   {cell_state.cell.label}: the cell alone failed: {alone.stderr.strip().splitlines()[-1:]}")
            continue
        swept, single = cell_state.metrics["perplexity"], json.loads(alone.stdout)
        equal += swept == single
        print(f"   {cell_state.cell.label:<24} perplexity {swept:.6f} in the sweep, {single:.6f} alone "
              f"({'equal' if swept == single else f'differs by {swept - single:+.3g}'}) {load()}")
    print(f"   each cell's perplexity equal to the cell run alone: {equal} of {len(sweep)}: "
          f"{verdict(equal == len(sweep))} {load()}")


def killed_worker(store: RunStore) -> None:
    from compression.lm import load_tiny_gpt

    load_tiny_gpt()
    sweep = expand_sweep("tiny-gpt", LANGUAGE_MODEL, KILL_GRID, SweepSettings(eval_samples=2, seq_len=64),
                         owner=f"kill-{time.time_ns()}")
    print(f"\n3. A worker killed mid-cell: {len(sweep)}-cell tiny-GPT sweep on 2 Ray workers {load()}")
    cluster = Cluster(2)
    backend = cluster.backend()
    killed: list[int] = []

    def kill(state) -> None:
        busy = [c for c in state.cells if c.status == "running" and c.worker and c.fraction > 0.05]
        if not killed and busy:
            killed.append(int(busy[0].worker.rsplit(":", 1)[1]))
            os.kill(killed[0], signal.SIGKILL)

    wall, state = drive(sweep, backend, store, kill)
    backend.close()
    cluster.close()
    rows = store.runs(sweep=sweep.id)
    once = len(rows) == len(sweep) == len({r.id for r in rows}) and {r.status for r in rows} == {"done"}
    retried = killed and killed[0] not in {r.details["worker"]["pid"] for r in rows}
    print(f"   killed worker pid {killed[0] if killed else 'none (every cell ended before one could be killed)'}; "
          f"{wall:.1f} s; {len(rows)} records for {len(sweep)} cells, all done: {state.count('done')}")
    print(f"   every cell in the history exactly once: {verdict(bool(once and killed))}"
          f"{' (the killed cell ran again on another worker)' if retried else ''} {load()}")


def writers() -> None:
    each = dict(processes=2, threads=5, each=2) if SMOKE else {}
    print(f"\n4. 100 writers at once {'(smoke: 10) ' if SMOKE else ''}{load()}")
    from bench._writers import concurrent_writers, fresh_schema_url

    with tempfile.TemporaryDirectory() as folder:
        show(concurrent_writers(str(Path(folder) / "runs.sqlite"), **each))
    url = os.environ.get("COMPRESSION_LAB_TEST_DB_URL")
    if url:
        show(concurrent_writers(fresh_schema_url(url), **each))
        return
    if SMOKE:
        print("   PostgreSQL: skipped in a smoke run without $COMPRESSION_LAB_TEST_DB_URL")
        return
    done = subprocess.run([str(ROOT / ".ci" / "with-postgres"), sys.executable, "-m", "bench._writers", "postgresql"],
                          capture_output=True, text=True, cwd=ROOT, timeout=3600)
    if done.returncode != 0:
        print(f"   PostgreSQL: could not run ({done.stderr.strip().splitlines()[-1:]})")
        return
    show(json.loads(done.stdout.strip().splitlines()[-1]))


def show(result: dict) -> None:
    refused = f" (the first: {result['first_error']})" if result["errors"] else ""
    print(f"   {result['dialect']}: {result['writers']} writers, {result['written']} runs written, {result['stored']} "
          f"stored, {result['lost']} lost (target 0), {result['duplicates']} duplicated, {result['errors']} writes "
          f"refused{refused}, in {result['seconds']:.1f} s: {verdict(result['lost'] == 0 and result['duplicates'] == 0)}"
          f" {load()}")


def main() -> None:
    print(f"{os.cpu_count()} cores; {'SMOKE RUN: the figures below mean nothing. ' if SMOKE else ''}{load()}")
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(Path(folder) / "runs.sqlite")
        classifier_speedup(store)
        language_model_sweep(store)
        killed_worker(store)
    writers()


if __name__ == "__main__":
    main()
