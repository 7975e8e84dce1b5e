"""Download buttons that leave the page as it is, and whose deferred files outlive the server's clean-up.

Streamlit runs a deferred button's callable when it is clicked, stores the bytes as a media file and sends the
browser its URL; the browser then fetches that URL. Streamlit leaves the stored file referenced by no session, and
every script run that ends anywhere on the server (any tab's rerun, or a fragment polling a running job twice a
second) sweeps unreferenced files: the first sweep marks the file, the second deletes it. Two sweeps between the
callable's end and the browser's fetch, which happens when another tab runs a job on a busy machine, and the
download fails with "Download Button source error - 404" (seen once in 9 downloads of the Compare report while a
language-model job ran in another tab). _keep_deferred_files_until_the_next_run maps the stored file to the
session and button it was made for, like any other file that session shows, so it stays until that session's next
full run. tests/test_downloads.py pins the race and the fix.
"""

from __future__ import annotations

import os
from typing import Any

from streamlit.runtime.media_file_manager import MediaFileManager, MediaFileMetadata
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage


def download_button(where: Any, label: str, data: Any, file_name: str, **kwargs: Any) -> bool:
    """`where.download_button(...)` (st, a column…) that does not rerun the page when clicked.

    A download changes nothing on the page. The rerun Streamlit starts by default gives a deferred button (data
    built on click by a callable) a new file id while the browser asks for the old one, and the download then fails
    now and then with "Deferred file ... not found" (tests/test_e2e_pipeline_compare.py).
    """
    return where.download_button(label, data, file_name, on_click="ignore", **kwargs)


def _keep_deferred_files_until_the_next_run() -> None:
    """After a deferred callable has run, reference its stored file from the session and button that asked for it
    (see the module's docstring). Streamlit drops a session's references at the start of its next full run, and the
    sweeps after that free the file as before. Only the in-memory storage (Streamlit's default) is handled: a
    storage plugged in by a host serves its files its own way."""
    execute = MediaFileManager.execute_deferred
    if getattr(execute, "keeps_file", False):
        return

    def execute_deferred(self: MediaFileManager, file_id: str) -> str:
        url = execute(self, file_id)
        if not isinstance(self._storage, MemoryMediaFileStorage):
            return url
        stored = os.path.splitext(url.rsplit("/", 1)[-1])[0]  # "<id><extension>", as the /media route reads it
        with self._lock:
            entry = self._deferred_callables.get(file_id)
            session = self._files_by_session_and_coord.get(entry["session_id"]) if entry is not None else None
            if session is not None and stored in self._file_metadata:  # the session still shows the button
                # a fresh entry: a sweep between the callable's end and this lock may have marked the file already
                self._file_metadata[stored] = MediaFileMetadata(kind=self._file_metadata[stored].kind)
                session[f"{entry['coordinates']}:download"] = stored
        return url

    execute_deferred.keeps_file = True
    execute_deferred.__wrapped__ = execute
    MediaFileManager.execute_deferred = execute_deferred


_keep_deferred_files_until_the_next_run()
