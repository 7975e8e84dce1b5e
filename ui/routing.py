"""How pages reach the browser: routing through app.py, one history entry per page, and the page's CSS.

Two private Streamlit behaviours are worked around here; tests/test_streamlit_routing_patch.py pins both.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from urllib.parse import urlencode

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx
from streamlit.runtime.state.query_params import QueryParams

_router = threading.local()  # one script run per thread: is app.py routing this run?


@contextmanager
def routing():
    """Wrap app.py's navigation so pages can tell they were reached through the router."""
    _router.active = True
    try:
        yield
    finally:
        _router.active = False


def ensure_routed() -> None:
    """Rerun through app.py when Streamlit ran a page script alone.

    Streamlit treats an app with a pages/ folder as a legacy folder app until app.py calls st.navigation; a
    first visit by direct link (/prune?sparsity=0.9) would then run pages/prune.py alone, without the sidebar.
    Switching the legacy mode off and rerunning sends the same URL through app.py (same url_path, same page).
    """
    if not getattr(_router, "active", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def _keep_history_on_page_switch() -> None:
    """Keep a page switch from rewriting the old page's browser-history entry without its settings.

    On a page switch Streamlit drops the old page's URL-bound params and corrects the new page's ones, and tells
    the browser while it still shows the old page: /quantize lost its query string (or /prune became
    /prune?bits=2) before the new page was pushed, so Back landed on an entry without the settings. During the
    switch run, from the filtering until the run's closing clean-up, the messages are held back (the run still
    knows its query string); the browser then pushes the new page with the query string it holds
    (/prune?bits=2&sparsity=0.84): Back returns to the old entry intact, and other pages' params ride along
    (ignored here, restored on their page). The next interaction writes this page's URL as usual.
    Pinned by tests/test_streamlit_routing_patch.py.
    """
    populate, remove_stale = QueryParams.populate_from_query_string, QueryParams.remove_stale_bindings
    send = QueryParams._send_query_param_msg
    if getattr(populate, "keeps_history", False):
        return

    def _send_query_param_msg(self) -> None:
        if self.__dict__.get("_quiet_cleanups", 0) > 0:
            ctx = get_script_run_ctx()
            if ctx is not None:
                ctx.query_string = urlencode(self._query_params, doseq=True)
            return None
        return send(self)

    def populate_from_query_string(self, query_string: str, valid_script_hashes: set[str] | None = None) -> None:
        if valid_script_hashes is not None:  # a page switch: quiet through the clean-up before the run and after it
            self.__dict__["_quiet_cleanups"] = 2
        return populate(self, query_string, valid_script_hashes)

    def remove_stale_bindings(self, *args, **kwargs) -> None:
        quiet = self.__dict__.get("_quiet_cleanups", 0)
        try:
            return remove_stale(self, *args, **kwargs)
        finally:
            self.__dict__["_quiet_cleanups"] = max(0, quiet - 1)
            if quiet == 1:  # the switch run is over and the browser shows the new page: now its URL
                send(self)

    populate_from_query_string.keeps_history = True
    populate_from_query_string.__wrapped__ = populate
    remove_stale_bindings.__wrapped__ = remove_stale
    _send_query_param_msg.__wrapped__ = send
    QueryParams.populate_from_query_string = populate_from_query_string
    QueryParams.remove_stale_bindings = remove_stale_bindings
    QueryParams._send_query_param_msg = _send_query_param_msg


_keep_history_on_page_switch()

# Narrow windows (800 px with the sidebar open leaves ~500 px): columns wrap two to a row instead of squeezing
# four into it, charts take a row each, and card values, labels and button texts wrap instead of ending in "96.9…".
_NARROW_CSS = """<style>
@media (max-width: 1100px) {
  [data-testid="stMain"] [data-testid="stHorizontalBlock"] { flex-wrap: wrap; }
  [data-testid="stMain"] [data-testid="stColumn"] { min-width: calc(50% - 1rem) !important; }
  [data-testid="stMain"] [data-testid="stColumn"]:has(.js-plotly-plot) { min-width: 100% !important; }
  [data-testid="stMetricValue"] { font-size: 1.8rem; }
}
[data-testid="stMetric"] .stMarkdownEllipsis, [data-testid="stWidgetLabel"] .stMarkdownEllipsis,
[data-testid="stButton"] .stMarkdownEllipsis {
  white-space: normal; overflow: visible; text-overflow: clip;
}
</style>"""


# One browser-history entry per page, not per setting. Streamlit's frontend replaces the URL when a user moves a
# slider but pushes a new entry when the server rewrites the query string (a value put in force, a default
# dropped from a shared link): Back then stepped through invisible changes of one page. Within one path, push
# becomes replace; going to another page still pushes.
# And the page left keeps the URL it had when the user clicked away: on a page switch the frontend sometimes
# replaces the old entry's URL (without its settings, or with the new page's) just before it pushes the new page,
# a race _keep_history_on_page_switch narrows but cannot close from the server, so Back lost the settings in about
# half the runs here. Our own constant script, never user input.
_ONE_ENTRY_PER_PAGE_JS = """<script>
(() => {
  if (window.__clabOneEntryPerPage) return;
  window.__clabOneEntryPerPage = true;
  let leaving = null;  // this entry's URL when a link to another page was clicked
  document.addEventListener('click', event => {
    const link = event.target.closest && event.target.closest('a[href]');
    if (link && new URL(link.href, window.location.href).pathname !== window.location.pathname) {
      leaving = window.location.href;
    }
  }, true);
  const push = history.pushState.bind(history);
  history.pushState = (state, title, url) => {
    const next = new URL(url, window.location.href);
    if (next.pathname === window.location.pathname) return history.replaceState(state, title, url);
    if (leaving !== null && new URL(leaving).pathname === window.location.pathname) {
      history.replaceState(history.state, '', leaving);
    }
    leaving = null;
    return push(state, title, url);
  };
})();
</script>"""


def page_style() -> None:
    """The app's few CSS rules (see _NARROW_CSS) and its history rule (see _ONE_ENTRY_PER_PAGE_JS)."""
    st.html(_NARROW_CSS + _ONE_ENTRY_PER_PAGE_JS, unsafe_allow_javascript=True)
