"""Per-session helpers of the pages: one lock per session and page, whichever script thread asks first."""

import threading
from collections.abc import MutableMapping
from types import SimpleNamespace

import ui.caching as caching


class Sessions(MutableMapping):
    """A session state that, on its first miss, lets another script thread ask for the same lock before going on
    (as Streamlit's may: a fast rerun starts a new script thread while the interrupted one still runs)."""

    def __init__(self, meanwhile):
        self.data, self.meanwhile, self.other = {}, meanwhile, None

    def __getitem__(self, key):
        if key in self.data:
            return self.data[key]
        if self.meanwhile is not None:  # the look-up has missed; the other thread runs before the store
            self.other, self.meanwhile = threading.Thread(target=self.meanwhile), None
            self.other.start()
            self.other.join(timeout=1)  # it finishes now unless it must wait for this thread (no assertion on time)
        raise KeyError(key)

    def __setitem__(self, key, value):
        self.data[key] = value

    def __delitem__(self, key):
        del self.data[key]

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)


def test_two_script_threads_asking_at_once_get_the_same_session_lock(monkeypatch):
    got = []
    sessions = Sessions(lambda: got.append(caching.session_lock("q")))
    monkeypatch.setattr(caching, "st", SimpleNamespace(session_state=sessions))
    first = caching.session_lock("q")
    sessions.other.join(10)  # if it had to wait for this thread, it ends now
    assert got[0] is first and sessions["q_lock"] is first
