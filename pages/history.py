"""Recording runs from the pages into the shared history, without ever losing the page's own result."""

from __future__ import annotations

import streamlit as st

from compression.history import HistoryError, Run, RunStore


def store() -> RunStore | None:
    """The history database, or None with a warning on the page when it cannot be used."""
    try:
        return RunStore()
    except HistoryError as exc:
        st.warning(f"Run history unavailable: {exc}")
        return None


def record(run: Run) -> str | None:
    """Record `run`; on failure say why and keep going (the result stays on the page)."""
    try:
        run_id = RunStore().record(run)
    except HistoryError as exc:
        st.session_state["history_error"] = str(exc)
        return None
    st.session_state["history_error"] = None
    return run_id


def show_error() -> None:
    if st.session_state.get("history_error"):
        st.warning(f"This run was not saved to the history: {st.session_state['history_error']}")
