"""The measuring child of compression.pipeline.lm_cost: reads a job (JSON) on stdin, rebuilds the model from its
folder, marks the peak resident memory from there on, times decode and prefill, and writes its answer (JSON) to the
file the job names.

Run as `python -m compression.pipeline.lm_child`; it is started by lm_cost.run_child, never by a user.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

import torch

from compression.lm.speed import measure_speed
from compression.pipeline.lm_cost import reads_weights
from compression.pipeline.lm_deploy import load_deployed

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_bytes(field: str) -> int | None:
    """VmRSS or VmHWM of this process in bytes (Linux), else None."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024  # the kernel writes kB
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Set VmHWM to the current RSS (Linux 4.0+: writing 5 to clear_refs), so the peak counts from now on."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _peak_since_start() -> int | None:
    """ru_maxrss where /proc is missing (kilobytes on Linux, bytes on macOS); the peak then includes loading."""
    try:
        import resource  # lazy: a Unix module (Windows has none)
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def main() -> int:
    job = json.loads(sys.stdin.read())
    torch.set_num_threads(int(job["threads"]))
    runtime = _status_bytes("VmRSS")
    model = load_deployed(Path(job["folder"]))
    gc.collect()
    reset = _reset_peak()
    speed = measure_speed(model, torch.tensor(job["prompt"], dtype=torch.long), int(job["new_tokens"]),
                          int(job["repeats"]), weight_layer=reads_weights)
    peak = _status_bytes("VmHWM") if reset else _peak_since_start()
    method = ("VmHWM of the measuring process, reset after the model was loaded" if reset else
              "ru_maxrss of the measuring process (includes loading the model)" if peak else "not available here")
    Path(job["answer"]).write_text(json.dumps({"speed": speed.to_dict(), "peak_rss_bytes": peak,
                                               "runtime_rss_bytes": runtime, "memory_method": method}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
