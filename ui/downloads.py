"""Download buttons that leave the page as it is."""

from __future__ import annotations

from typing import Any


def download_button(where: Any, label: str, data: Any, file_name: str, **kwargs: Any) -> bool:
    """`where.download_button(...)` (st, a column…) that does not rerun the page when clicked.

    A download changes nothing on the page. The rerun Streamlit starts by default gives a deferred button (data
    built on click by a callable) a new file id while the browser asks for the old one, and the download then fails
    now and then with "Deferred file ... not found" (tests/test_e2e_pipeline_compare.py).
    """
    return where.download_button(label, data, file_name, on_click="ignore", **kwargs)
