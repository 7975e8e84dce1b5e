"""The real app under `streamlit run` on a free localhost port, and the headless Chromium flags: shared by the
browser tests (tests/conftest.py) and the classroom benchmark."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Without the background-networking flags Chromium keeps trying the closed network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextmanager
def serve(log: Path, env: Mapping[str, str] | None = None,
          host: str = "127.0.0.1") -> Iterator[tuple[subprocess.Popen, str]]:
    """Yield (the server process, its base URL) once /_stcore/health says ok; RuntimeError if it never does.

    `host` is a loopback address (127.0.0.0/8): two servers on 127.0.0.1 and 127.0.0.2 are two sites to a browser,
    each with its own cookies, as two machines behind a balancer would be."""
    with socket.socket() as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless=true",
             f"--server.address={host}", f"--server.port={port}", "--browser.gatherUsageStats=false",
             "--server.fileWatcherType=none"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})})
        url = f"http://{host}:{port}"
        try:
            deadline = time.time() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"streamlit exited with {proc.returncode}; see {log}")
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                        break
                except OSError:
                    pass
                if time.time() > deadline:
                    raise RuntimeError(f"streamlit did not become healthy in 60 s; see {log}")
                time.sleep(0.3)
            yield proc, url
        finally:
            os.killpg(proc.pid, signal.SIGTERM)  # only the process group started here
            proc.wait(timeout=30)
