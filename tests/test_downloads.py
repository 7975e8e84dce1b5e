"""A deferred download's file survives the clean-up sweeps other sessions' script runs make before the browser
fetches it (ui/downloads.py): once in 9 downloads the Compare report failed with a 404 while a job ran elsewhere."""

from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

import ui.downloads as downloads


def _clicked(manager: MediaFileManager, execute=MediaFileManager.execute_deferred) -> str:
    """A deferred report button drawn by a session, then clicked: the stored file's name (id and extension)."""
    placeholder = manager.add_deferred(lambda: "<html>report</html>", "text/html", "1.(2.3)", file_name="r.html")
    return execute(manager, placeholder).rsplit("/", 1)[-1]


def _sweep_twice(manager: MediaFileManager) -> None:
    """What two script runs ending in other tabs (a fragment polling a running job, twice a second) do."""
    manager.remove_orphaned_files()
    manager.remove_orphaned_files()


def _stored(manager: MediaFileManager) -> set[str]:
    return {f"{file_id}.html" for file_id in manager._storage._files_by_id}


def test_streamlit_alone_deletes_the_clicked_file_before_the_browser_fetches_it():
    """Pins the race in the installed Streamlit: once it keeps the file itself, ui/downloads.py's patch can go."""
    manager = MediaFileManager(MemoryMediaFileStorage("/media"))
    name = _clicked(manager, MediaFileManager.execute_deferred.__wrapped__)
    assert name in _stored(manager)
    _sweep_twice(manager)
    assert name not in _stored(manager), "Streamlit now keeps a clicked deferred file: the patch may be removed"


def test_the_clicked_file_stays_until_the_session_runs_again():
    manager = MediaFileManager(MemoryMediaFileStorage("/media"))
    name = _clicked(manager)
    _sweep_twice(manager)
    assert manager._storage.get_file(name).content == b"<html>report</html>"  # the browser's fetch finds it
    manager.clear_session_refs()  # the session's next full run
    _sweep_twice(manager)
    assert not manager._storage._files_by_id  # then it is freed as before


def test_the_patch_is_applied_once():
    before = MediaFileManager.execute_deferred
    downloads._keep_deferred_files_until_the_next_run()
    assert MediaFileManager.execute_deferred is before and before.keeps_file
