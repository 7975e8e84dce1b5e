"""Many writers at once into one history: `processes` processes of `threads` writer threads, each thread with its
own store, all released together, each recording `each` runs (with a 20 kB file). Counts what the history then
holds: lost = written - stored.

`python -m bench._writers WHERE` prints the figures as one JSON line (bench/scaleout.py runs it beside a throwaway
PostgreSQL server through .ci/with-postgres when none is named).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_WRITER = """
import sys, threading, time
from compression.history.store import Run, RunStore
where, tag, threads, each = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
gate, failures = threading.Barrier(threads), []
def write(w):
    store = RunStore(where, timeout_s=120)
    gate.wait()
    for i in range(each):
        try:
            store.record(Run(kind="bench-writer", model=tag, config={"writer": w, "i": i}, metrics={"i": i},
                             file=b"x" * 20_000))
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
workers = [threading.Thread(target=write, args=(w,)) for w in range(threads)]
for t in workers: t.start()
for t in workers: t.join()
print(len(failures), failures[:1])
"""


def concurrent_writers(where: str, processes: int = 4, threads: int = 25, each: int = 10) -> dict:
    """Write processes × threads × each runs at once into the history at `where`; what arrived."""
    from compression.history import RunStore

    store = RunStore(where)
    tag = f"writers-{uuid.uuid4().hex[:8]}"
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, where, tag, str(threads), str(each)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
             for _ in range(processes)]
    outputs = [p.communicate(timeout=1200)[0] for p in procs]
    seconds = time.perf_counter() - start
    runs = store.runs(kind="bench-writer", model=tag)
    distinct = {(r.id, r.config["writer"], r.config["i"]) for r in runs}
    written = processes * threads * each
    return {"dialect": store.dialect, "writers": processes * threads, "written": written, "stored": len(runs),
            "lost": written - len(runs), "duplicates": len(runs) - len(distinct), "seconds": seconds,
            "errors": sum(int(o.split()[0]) for o in outputs if o.strip()),
            "first_error": next((o.split(" ", 1)[1].strip() for o in outputs if o.strip() and o.split()[0] != "0"),
                                None)}


def fresh_schema_url(base_url: str) -> str:
    """A URL that writes into a new, empty schema of the server `base_url` names (left there for inspection)."""
    from urllib.parse import quote

    from sqlalchemy import create_engine, text

    name = f"bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(base_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as db:
        db.execute(text(f"CREATE SCHEMA {name}"))
    engine.dispose()
    return f"{base_url}{'&' if '?' in base_url else '?'}options={quote(f'-c search_path={name}')}"


if __name__ == "__main__":
    where = sys.argv[1]
    if where == "postgresql":  # the server .ci/with-postgres started for us
        where = fresh_schema_url(os.environ["COMPRESSION_LAB_TEST_DB_URL"])
    print(json.dumps(concurrent_writers(where)))
