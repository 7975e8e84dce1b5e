"""Atomic cache writes and the cross-process lock (compression.core.files)."""

import threading
import time

import pytest

from compression.core.files import atomic_folder, file_lock, write_bytes_atomic


def test_write_bytes_atomic_replaces_the_file_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    write_bytes_atomic(path, b"new")
    assert path.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_atomic_folder_appears_whole_or_not_at_all(tmp_path):
    folder = tmp_path / "cache"
    with pytest.raises(RuntimeError), atomic_folder(folder) as tmp:
        (tmp / "half").write_text("x")
        raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []  # no folder, no leftovers
    with atomic_folder(folder) as tmp:
        (tmp / "whole").write_text("x")
    assert [p.name for p in folder.iterdir()] == ["whole"]
    with atomic_folder(folder) as tmp:  # another writer finished first: its folder is kept
        (tmp / "second").write_text("y")
    assert [p.name for p in folder.iterdir()] == ["whole"] and [p.name for p in tmp_path.iterdir()] == ["cache"]


def test_file_lock_lets_one_holder_in_at_a_time(tmp_path):
    inside, overlaps = [], []

    def hold():
        with file_lock(tmp_path / "sub" / ".lock"):
            overlaps.append(len(inside))
            inside.append(1)
            time.sleep(0.05)
            inside.pop()

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [0, 0, 0, 0]


def test_the_lock_needs_no_fcntl_which_windows_lacks(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    code = ("import sys; sys.modules['fcntl'] = None  # as on Windows: import fcntl fails\n"
            "from pathlib import Path\nfrom compression.core.files import file_lock\n"
            f"with file_lock(Path({str(tmp_path / 'a.lock')!r})):\n    print('held')\n")
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, cwd=ROOT,
                            timeout=120)
    assert result.returncode == 0 and result.stdout == "held\n", result.stderr
