"""A local Ray cluster for the tests: `ray start --head --block` with two worker CPUs on a free loopback port, in a
process group of its own that is stopped (and only it) afterwards. Ray is an extra that `make setup` installs, so
the tests that need it skip with the reason where it is missing (and fail in CI, where nothing may skip)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from conftest import ROOT, require

# Everything stays on the loopback interface: Ray otherwise swaps 127.0.0.1 for the machine's outward address when it
# connects. A head started by `ray start` requires its token (~/.ray/auth_token, made on first start); a process
# joining it sends the token only in token mode. Both are read when ray is first imported, so they are set here,
# before any test imports ray, and passed to every process of a test cluster.
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token"}
os.environ.update(RAY_ENV)


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def ray_head(num_cpus: int = 2, env: Mapping[str, str] | None = None, log: Path | None = None) -> Iterator[str]:
    """Yield the address (127.0.0.1:port) of a fresh head node; its workers see `env` beside this environment."""
    require(ray_available(), "Ray is not installed (pip install 'compression-lab[ray]'; make setup does)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    log = log or ROOT / ".cache" / f"ray-head-{time.time_ns()}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", f"--port={port}",
               "--node-ip-address=127.0.0.1", f"--num-cpus={num_cpus}", "--num-gpus=0", "--include-dashboard=false",
               "--disable-usage-stats", f"--temp-dir={temp}"]
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **RAY_ENV, "OMP_NUM_THREADS": "1",
                                     "RAY_USAGE_STATS_ENABLED": "0", **(env or {})})
        try:
            deadline = time.time() + 180
            while "will now block" not in log.read_text():
                if proc.poll() is not None:
                    raise RuntimeError(f"ray start exited with {proc.returncode}; see {log}")
                if time.time() > deadline:
                    raise RuntimeError(f"the Ray head did not start in 180 s; see {log}")
                time.sleep(0.5)
            yield f"127.0.0.1:{port}"
        finally:
            proc.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # whatever of its group is left: only what we started
            proc.wait(timeout=30)
            shutil.rmtree(temp, ignore_errors=True)


def disconnect() -> None:
    """Leave the cluster this process joined (a RayBackend joins on first use)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
