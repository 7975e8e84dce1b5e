"""The first visit after a server start, in headless Chromium: the sidebar never lists the pages/ folder's file
names (app, compare, language model...) while the first run imports torch; only the app's own navigation."""

import pytest
from conftest import serve_app
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

# Every text the sidebar navigation shows, from the first paint on (recorded in the page, so none is missed).
_RECORD_NAVIGATION_JS = """
window.__navigation = [];
new MutationObserver(() => {
  const nav = document.querySelector('[data-testid="stSidebarNav"]');
  const text = nav ? nav.innerText.replace(/\\s+/g, ' ').trim() : '';
  if (text && window.__navigation[window.__navigation.length - 1] !== text) window.__navigation.push(text);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


@pytest.mark.parametrize("path", ["/", "/compare"])
def test_a_fresh_server_shows_only_the_apps_own_navigation(browser, path):
    with serve_app() as url:  # a server of its own: the legacy list showed only before its first st.navigation
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.add_init_script(_RECORD_NAVIGATION_JS)
        page.goto(url + path)
        expect(page.get_by_test_id("stSidebarNav").get_by_text("Pruning", exact=True)).to_be_visible()
        shown = page.evaluate("() => window.__navigation")
        context.close()
    assert shown, "the navigation was never recorded"
    raw = [text for text in shown if "language model" in text or "quantize" in text.split()]
    assert not raw, f"file-name navigation shown on a first visit: {raw}"
    assert all("Pruning" in text and "Language models" in text for text in shown), shown
