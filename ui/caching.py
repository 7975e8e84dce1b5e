"""Per-session caches for pages that recompute on every rerun: a stable token per model, one lock per page,
and small most-recent-first caches keyed by configuration, so a rerun that changes nothing recomputes nothing."""

from __future__ import annotations

import itertools
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeVar

import streamlit as st

T = TypeVar("T")
_tokens = itertools.count(1)  # process-wide, so a token is never handed out twice
# session_state.setdefault is a look-up then a store (MutableMapping's), not one step: two script threads of a
# session could each store a lock of their own. Creating under this process-wide lock makes it one step.
_creating = threading.Lock()


def model_token(model: Any, slot: str) -> int:
    """A token for `model` in this session's `slot` (a page): the same object keeps its token; any other object
    (a new upload, another zoo model) gets a new one, never reused. Caches keyed by `id(model)` can attach a
    stale result to a new upload that lands at the old address; keying by this token cannot."""
    seen = st.session_state.get(f"{slot}_model")
    if seen is None or seen[0] is not model:
        seen = (model, next(_tokens))
        st.session_state[f"{slot}_model"] = seen
    return seen[1]


def session_lock(slot: str) -> threading.Lock:
    """One lock per session and page: a fast rerun may start a new script thread before the interrupted one
    has finished, and two runs must not swap weights into the same working copy at once."""
    key = f"{slot}_lock"
    with _creating:
        if key not in st.session_state:
            st.session_state[key] = threading.Lock()
        return st.session_state[key]


def config_key(config: Any) -> str:
    """A hashable key for a config with a to_dict() (dict fields included)."""
    data = config.to_dict() if hasattr(config, "to_dict") else config
    return json.dumps(data, sort_keys=True, default=str) if isinstance(data, Mapping) else repr(data)


def remembered(slot: str, key: Hashable, compute: Callable[[], T], keep: int = 4) -> T:
    """`compute()` once per `key` in this session, keeping the `keep` most recently used results of `slot`."""
    cache: OrderedDict = st.session_state.setdefault(f"{slot}_cache", OrderedDict())
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = compute()
    cache[key] = value
    while len(cache) > keep:
        cache.popitem(last=False)
    return value
