"""ui.routing.ensure_routed sets one private Streamlit attribute; these tests pin the behaviour it relies on.

Streamlit treats an app with a pages/ folder as a legacy folder app until a script calls st.navigation:
`PagesManager.uses_pages_directory` starts as None, becomes True when pages/ exists, and then the script
runner runs a deep-linked page script (/prune?sparsity=0.9) alone, without app.py's sidebar. st.navigation
itself sets the attribute to False; ensure_routed does the same one run earlier, then reruns through app.py.
If an upgrade renames or drops any of this, these tests fail instead of deep links breaking silently
(tests/test_e2e_model_page.py opens a deep link on a fresh server to check the behaviour end to end).
"""

import inspect

from streamlit.commands import navigation
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import script_runner


def test_pages_manager_still_has_the_legacy_folder_switch():
    assert "uses_pages_directory" in PagesManager.__annotations__


def test_st_navigation_still_sets_the_switch_off_as_ensure_routed_does():
    assert "PagesManager.uses_pages_directory = False" in inspect.getsource(navigation)


def test_the_script_runner_still_consults_the_switch():
    assert "PagesManager.uses_pages_directory" in inspect.getsource(script_runner)


def test_page_switch_still_filters_params_in_populate_from_query_string():
    """ui.routing._keep_history_on_page_switch wraps this method and shadows _send_query_param_msg during it."""
    from streamlit.runtime.state.query_params import QueryParams
    from streamlit.runtime.state.session_state import SessionState

    import ui.routing  # noqa: F401  (applies the wrapper)

    assert "valid_script_hashes" in inspect.signature(QueryParams.populate_from_query_string).parameters
    assert QueryParams.populate_from_query_string.keeps_history
    assert "self._send_query_param_msg()" in inspect.getsource(QueryParams.populate_from_query_string.__wrapped__)
    assert "ctx.enqueue" in inspect.getsource(QueryParams._send_query_param_msg.__wrapped__)
    assert "self.set_corrected_value(" not in inspect.getsource(QueryParams.populate_from_query_string.__wrapped__)
    assert "populate_from_query_string(" in inspect.getsource(script_runner)
    assert "on_script_finished" in inspect.getsource(script_runner)  # the clean-up before the switch run
    assert "remove_stale_bindings(" in inspect.getsource(inspect.getmodule(SessionState))


def test_streamlit_is_pinned_to_the_minor_release_these_patches_were_tested_on():
    """A new minor release may change the private classes patched here: pip must not install one unasked."""
    import re

    import streamlit
    from conftest import ROOT
    from packaging.requirements import Requirement
    from packaging.version import Version

    [requirement] = re.findall(r'"(streamlit\b[^"]*)"', (ROOT / "pyproject.toml").read_text())
    allowed, installed = Requirement(requirement).specifier, Version(streamlit.__version__)
    assert installed in allowed
    assert Version(f"{installed.major}.{installed.minor + 1}") not in allowed, requirement
