"""Recording runs from the pages into the shared history, without ever losing the page's own result."""

from __future__ import annotations

import dataclasses
import uuid

import streamlit as st

from compression.core.settings import shared_mode
from compression.history import HistoryError, Run, RunStore, run_from_result


def owner() -> str:
    """Who creates runs in this session: the logged-in user when `st.login` is configured (`st.user`), else this
    browser session (a reload makes a new visitor: ownership lasts as long as the tab)."""
    if st.user.get("is_logged_in"):
        return f"user:{st.user.get('email') or st.user.get('sub') or st.user.get('name')}"
    return st.session_state.setdefault("visitor", f"visitor:{uuid.uuid4().hex[:12]}")


def delete(store: RunStore, run_ids: list[str]) -> int:
    """Delete runs: any run on a private server; in shared mode only the runs this visitor created."""
    return store.delete(run_ids, owner=owner() if shared_mode() else None)


def deletable(runs: list[Run]) -> list[Run]:
    """The runs this visitor may delete."""
    if not shared_mode():
        return runs
    me = owner()
    return [r for r in runs if r.owner == me]


def store() -> RunStore | None:
    """The history database, or None with a warning on the page when it cannot be used."""
    try:
        return RunStore()
    except HistoryError as exc:
        st.warning(f"Run history unavailable: {exc}")
        return None


def record(run: Run) -> str | None:
    """Record `run`; on failure say why and keep going (the result stays on the page)."""
    run_id, st.session_state["history_error"] = record_as(run, owner())
    return run_id


def record_as(run: Run, who: str) -> tuple[str | None, str | None]:
    """Record `run` for `who` from a job's thread (no st.* here): (run id, None), or (None, why it failed)."""
    try:
        return RunStore().record(dataclasses.replace(run, owner=who)), None
    except HistoryError as exc:
        return None, str(exc)


def show_error() -> None:
    if st.session_state.get("history_error"):
        st.warning(f"This run was not saved to the history: {st.session_state['history_error']}")


def record_button(kind: str, model: str, result: dict, label: str, key: str) -> None:
    """A button that records the current view as a run, so slider settings can join the Compare page."""
    def save() -> None:
        run_id = record(run_from_result(kind, model, result, label))
        if run_id:
            st.toast(f"Recorded run {run_id}: see it on the Compare page")

    st.button("Record this setting", key=key, on_click=save, help="Save config and measurements to the run history")
    show_error()
