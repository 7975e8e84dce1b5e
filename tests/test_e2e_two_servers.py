"""Several servers, one class: two `streamlit run` servers (127.0.0.1 and 127.0.0.2, two sites to a browser, as two
machines behind a balancer are) share one PostgreSQL history and one Ray cluster, in shared mode. A sweep started
through one runs on the cluster's workers; its cells are seen through the other, and deleted there by their owner
only.

Owners are logged-in users: the servers share one cookie secret (as a balanced deployment must), and each browser
carries the signed `_streamlit_user` cookie that Streamlit's own st.login callback would set, for alice or for bob.
Without a login a visitor is a browser session, which a balancer cannot carry from one server to the other.
"""

import json
import re
import time

import pytest
from conftest import BROWSER_TIMEOUT_MS, ROOT, open_router, wait_idle
from databases import fresh_schema, postgres_url
from ray_cluster import RAY_ENV, ray_head

from compression.history import RunStore

pytestmark = pytest.mark.e2e
COOKIE_SECRET = "two-servers-one-class-test-secret"
ALICE, BOB = "alice@school.example", "bob@school.example"


@pytest.fixture(scope="module")
def servers(chromium_path, zoo, tmp_path_factory):
    """(server A's process and URL, server B's URL, the shared database URL)."""
    from bench._server import serve

    zoo("mlp")  # the Ray workers read the trained model from the test cache
    logs = ROOT / ".cache"
    with fresh_schema(postgres_url()) as db_url, ray_head(num_cpus=2) as ray_address:
        env = {**RAY_ENV, "COMPRESSION_LAB_DB_URL": db_url, "COMPRESSION_LAB_RAY_ADDRESS": ray_address,
               "COMPRESSION_LAB_SHARED": "1", "COMPRESSION_LAB_DATA": str(tmp_path_factory.mktemp("data")),
               "STREAMLIT_SERVER_COOKIE_SECRET": COOKIE_SECRET, "OMP_NUM_THREADS": "1"}
        stamp = time.time_ns()
        with serve(logs / f"e2e-two-servers-a-{stamp}.log", env, host="127.0.0.1") as (proc_a, url_a), \
                serve(logs / f"e2e-two-servers-b-{stamp}.log", env, host="127.0.0.2") as (_, url_b):
            yield proc_a, url_a, url_b, db_url


def _logged_in(browser, email: str, *urls: str):
    """A browser context whose user is logged in on each of these servers (their cookie, signed with the secret
    the servers share, holding the server's own origin, as st.login's callback writes it)."""
    from streamlit.web.server.starlette.starlette_app_utils import create_signed_value

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_cookies([{"name": "_streamlit_user", "url": url, "value": create_signed_value(
        COOKIE_SECRET, "_streamlit_user", json.dumps({"email": email, "origin": url, "is_logged_in": True}),
    ).decode("latin-1")} for url in urls])
    page = context.new_page()
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    return context, page


def _deletable(page) -> list[str]:
    """The run ids Compare's "Delete runs" offers this user."""
    box = page.get_by_test_id("stMultiSelect").filter(has_text="Delete runs")
    box.locator("input").click()
    listbox = page.get_by_role("listbox")
    page.wait_for_timeout(300)
    ids = listbox.get_by_role("option").all_inner_texts() if listbox.count() else []
    page.keyboard.press("Escape")
    return [i for i in ids if re.fullmatch("[0-9a-f]{12,16}", i)]  # not "Select all" or "No results"


def test_a_sweep_started_through_one_server_is_seen_and_deleted_by_its_owner_through_the_other(servers, browser):
    from playwright.sync_api import expect

    proc_a, url_a, url_b, db_url = servers
    alice, alice_page = _logged_in(browser, ALICE, url_a, url_b)
    open_router(alice_page, url_a)
    alice_page.goto(f"{url_a}/prune?model=mlp")
    alice_page.get_by_text("Sweep: a grid of settings").click()
    expect(alice_page.get_by_text("6 cells", exact=True)).to_be_visible()
    expect(alice_page.get_by_text("the Ray cluster at")).to_be_visible()
    alice_page.get_by_role("button", name="Start sweep").click()
    expect(alice_page.get_by_text("6 of 6 cells finished")).to_be_visible()

    runs = RunStore(db_url).runs()
    assert len(runs) == 6 and {r.owner for r in runs} == {f"user:{ALICE}"} and {r.status for r in runs} == {"done"}
    assert proc_a.pid not in {r.details["worker"]["pid"] for r in runs}  # the cells ran on the cluster's workers

    open_router(alice_page, url_b)
    alice_page.goto(f"{url_b}/compare")
    expect(alice_page.get_by_text("Classifier runs")).to_be_visible()
    wait_idle(alice_page)
    offered = _deletable(alice_page)
    assert sorted(offered) == sorted(r.id for r in runs)

    bob, bob_page = _logged_in(browser, BOB, url_a, url_b)
    open_router(bob_page, url_b)
    bob_page.goto(f"{url_b}/compare")
    expect(bob_page.get_by_text("Classifier runs")).to_be_visible()  # bob sees the class's runs...
    wait_idle(bob_page)
    assert _deletable(bob_page) == []  # ...and may delete none of alice's

    box = alice_page.get_by_test_id("stMultiSelect").filter(has_text="Delete runs")
    box.locator("input").click()
    alice_page.get_by_role("option", name=offered[0]).click()
    alice_page.keyboard.press("Escape")
    alice_page.get_by_role("button", name="Delete", exact=True).click()
    deadline = time.time() + 60
    while RunStore(db_url).count() != 5:
        assert time.time() < deadline, "alice's delete through server B did not reach the shared history"
        time.sleep(0.5)
    assert offered[0] not in {r.id for r in RunStore(db_url).runs()}
    alice.close()
    bob.close()
