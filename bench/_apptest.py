"""Shared by the page benchmarks: time a slider move through AppTest, next to a rerun with nothing changed."""

import logging
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def slider_move_ms(model: str, page: str, key: str, values: Sequence,
                   selections: Mapping[str, object] | None = None) -> tuple[float, float]:
    """Median ms of `set_value(v).run()` on `page`'s slider `key`, and of a plain rerun, over `values`.

    `selections` (selectbox key -> value) are set first, e.g. the method the slider drives.
    """
    from streamlit.testing.v1 import AppTest

    # AppTest runs pages outside a server; Streamlit warns about that on every cached call. Not news here.
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").setLevel(logging.ERROR)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["model"] = model
    at.run()
    at.switch_page(page).run()
    for select, value in (selections or {}).items():
        at.selectbox(key=select).set_value(value).run()
    at.slider(key=key).set_value(values[-1]).run()  # the first move of a method builds its curve: not a move
    moves, reruns = [], []
    for value in values:
        start = time.perf_counter()
        at.slider(key=key).set_value(value).run()
        moves.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        at.run()
        reruns.append((time.perf_counter() - start) * 1e3)
    if at.exception:
        raise RuntimeError(f"page failed: {at.exception}")
    return statistics.median(moves), statistics.median(reruns)
