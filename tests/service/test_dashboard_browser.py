"""The dashboard in a real headless browser (Debian's chromium, driven by Playwright) against a real
uvicorn server on loopback, with a SQLite store and the ``scripted`` LLM backend.

Without chromium (``apt-get install chromium``) or the ``playwright`` package these tests are skipped,
or fail when ``CI=true``. Playwright uses the system browser; ``playwright install`` is never needed.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from clickloop.core.items import Item, ItemOrigin, Provenance
from clickloop.service.dashboard.charts import percent
from clickloop.service.keys import create_key
from clickloop.service.store import Store, open_store

CHROMIUM = os.environ.get("CLICKLOOP_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"
TOPIC = 'Pots & <i>Pans</i> "deluxe"'
CONTEXT = {"topic": "Cookware Sets", "llm": "scripted", "schedule": {"every_n_impressions": 0}}
TIMEOUT_MS = 20_000


def _browser_unavailable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright; no browser download needed)"
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _browser_unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI needs it")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def wait_for(check: Callable[[], Any], seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return result


@dataclass
class Served:
    """A uvicorn server for the app on loopback; ``admin``: an httpx client with an admin key."""

    url: str
    store: Store
    admin_secret: str
    client_secret: str
    admin: httpx.Client
    client: httpx.Client

    def context(self, context_id: str) -> dict[str, Any]:
        response = self.admin.get(f"/v1/contexts/{context_id}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def create(self, context_id: str, **config: Any) -> dict[str, Any]:
        """A context with its initial pool (built by the server's worker)."""
        assert self.admin.put(f"/v1/contexts/{context_id}", json={**CONTEXT, **config}).status_code == 201
        return wait_for(lambda: (c := self.context(context_id))["iteration"] is not None and c)  # type: ignore[no-any-return]

    def traffic(self, context_id: str, impressions: int, rng: random.Random) -> None:
        """Suggestions, and a click on the first item shown of about a third of them."""
        for n in range(impressions):
            shown = self.client.get(f"/v1/contexts/{context_id}/suggestions").json()
            if rng.random() < 0.35:
                event = {"idempotency_key": f"{context_id}-{n}-{shown['impression_id']}"}
                event |= {"impression_id": shown["impression_id"], "item_id": shown["items"][0]["item_id"]}
                outcome = self.client.post(f"/v1/contexts/{context_id}/events", json={"events": [event]})
                assert outcome.json()["accepted"] == 1, outcome.text

    def iterate(self, context_id: str) -> None:
        before = self.context(context_id)["iteration"]
        assert self.admin.post(f"/v1/contexts/{context_id}/iterations").status_code == 202
        wait_for(lambda: self.context(context_id)["iteration"] != before)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The server with five contexts: ``shop`` (four iterations of traffic), ``review`` (require_review,
    IP_0 pending), ``loop`` (for "Run iteration now"), ``xss`` (an item whose text is markup), ``odd``
    (a topic with markup)."""
    import uvicorn

    from clickloop.service.app import create_app

    store = open_store(str(tmp_path_factory.mktemp("dashboard") / "service.db"))
    app = create_app(store=store, run_worker=True, worker_poll_seconds=0.05, env={})
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started)
    url = f"http://127.0.0.1:{port}"
    admin_secret, client_secret = create_key(store, "admin")[1], create_key(store, "client")[1]
    with (
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_secret}"}, timeout=10) as admin,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {client_secret}"}, timeout=10) as client,
    ):
        made = Served(url, store, admin_secret, client_secret, admin, client)
        rng = random.Random(7)
        made.create("shop")
        for _ in range(3):
            made.traffic("shop", 40, rng)
            made.iterate("shop")
        made.traffic("shop", 40, rng)
        made.create("loop")
        made.traffic("loop", 10, rng)
        made.create("odd", topic=TOPIC)
        assert made.admin.put("/v1/contexts/review", json={**CONTEXT, "require_review": True}).status_code == 201
        wait_for(lambda: made.context("review")["pending_review"] == 5)
        xss = made.create("xss")
        parent = xss["pool"]["items"][0]["item_id"]
        injected = Item.create("xss", XSS, Provenance(ItemOrigin.MANUAL, 1, parents=(parent,)))
        child = Item.create(
            "xss", "A child of the markup item", Provenance(ItemOrigin.EXPLOIT, 1, parents=(injected.item_id,))
        )
        store.apply_iteration("xss", 0, [injected, child], [])
        yield made
    server.should_exit = True
    thread.join(10)
    store.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser profile (no cookies); alerts and console errors are recorded on it."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    tab.dialogs = []
    tab.console_errors = []
    tab.on("dialog", lambda dialog: (tab.dialogs.append(dialog.message), dialog.dismiss()))
    tab.on("console", lambda message: message.type == "error" and tab.console_errors.append(message.text))
    yield tab
    context.close()


def log_in(page: Any, served: Served, secret: str, path: str = "/dashboard") -> Any:
    page.goto(served.url + path)
    assert "/dashboard/login" in page.url
    page.fill("#key", secret)
    with page.expect_navigation():
        page.click("#login")
    return page


def test_pages_redirect_to_login_and_bad_keys_are_refused(page, served):
    page.goto(served.url + "/dashboard/contexts/shop")
    assert page.url == served.url + "/dashboard/login?next=%2Fdashboard%2Fcontexts%2Fshop"
    page.fill("#key", "clk_not-a-key")
    with page.expect_navigation() as wrong:
        page.click("#login")
    assert wrong.value.status == 401 and "unknown or revoked" in page.inner_text("#error")
    page.fill("#key", served.client_secret)
    with page.expect_navigation() as client:
        page.click("#login")
    assert client.value.status == 403 and "client key" in page.inner_text("#error")
    assert page.context.cookies() == []
    assert httpx.get(served.url + "/v1/contexts", timeout=10).status_code == 401


def test_contexts_list(page, served):
    log_in(page, served, served.admin_secret)
    assert page.url == served.url + "/dashboard"
    rows = {r.get_attribute("data-context-id"): r for r in page.locator("#contexts tbody tr").all()}
    assert {"shop", "loop", "odd", "review", "xss"} <= set(rows)
    shop = served.context("shop")
    cells = [c.inner_text() for c in rows["shop"].locator("td").all()]
    assert cells[:5] == ["shop", "Cookware Sets", "explore-exploit", "3", str(shop["impressions_total"])]
    assert cells[5].startswith(percent(shop["pool"]["stats"]["ctr"]))
    assert rows["review"].locator("td").nth(6).inner_text() == "5"
    assert rows["odd"].locator("td").nth(1).inner_text() == TOPIC  # shown literally, not as markup
    assert page.locator("#contexts i").count() == 0
    cookie = next(c for c in page.context.cookies() if c["name"] == "clickloop_admin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] == served.admin_secret
    with page.expect_navigation():
        rows["shop"].locator("a").click()
    assert page.url == served.url + "/dashboard/contexts/shop"


def test_context_page_shows_the_api_numbers_and_the_chart(page, served):
    log_in(page, served, served.admin_secret, "/dashboard/contexts/shop")
    detail = served.context("shop")
    rows = page.locator("#pool-table tbody tr")
    assert rows.count() == len(detail["pool"]["items"]) == 5
    for item in detail["pool"]["items"]:
        row = page.locator(f'#pool-table tr[data-item-id="{item["item_id"]}"]')
        stats = item["iteration"]
        assert row.locator(".item-text").inner_text() == item["text"]
        assert row.locator(".impressions").inner_text() == str(stats["impressions"])
        assert row.locator(".clicks").inner_text() == str(stats["clicks"])
        if stats["impressions"]:
            expected = f"{percent(stats['ctr'])} [{percent(stats['ctr_low'])}, {percent(stats['ctr_high'])}]"
            assert row.locator(".ctr-cell").inner_text() == expected
        assert row.locator("svg.bar rect").count() == 3
    points = page.locator("#ctr-chart circle.point")
    assert points.count() == len(detail["history"]) == 4
    assert [p.get_attribute("data-iteration") for p in points.all()] == ["0", "1", "2", "3"]
    ctrs = [float(p.get_attribute("data-ctr")) for p in points.all()]
    assert ctrs == pytest.approx([pool["stats"]["ctr"] for pool in detail["history"]])
    assert page.locator("#ctr-chart text", has_text="iteration").count() == 1
    assert page.locator("#lineage-table tbody tr").count() == len(detail["items"])
    exploit = next(i for i in detail["items"] if i["lineage"]["parents"])
    parent_link = page.locator(f"#item-{exploit['item_id']} .parents a").first
    assert parent_link.get_attribute("href") == f"#item-{exploit['lineage']['parents'][0]}"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-context.png"), full_page=True)
    assert page.dialogs == [] and page.console_errors == []


def test_approve_moves_an_item_into_the_live_pool(page, served):
    log_in(page, served, served.admin_secret, "/dashboard/contexts/review")
    assert page.locator("#pool-table").count() == 0 and page.locator("#run-iteration").is_disabled()
    first = page.locator("#review-table tbody tr").first.get_attribute("data-item-id")
    with page.expect_navigation():
        page.click(f'#review-table tr[data-item-id="{first}"] button.approve')
    assert page.locator(f'#pool-table tr[data-item-id="{first}"]').count() == 1
    assert page.locator("#review-table tbody tr").count() == 4
    second = page.locator("#review-table tbody tr").first.get_attribute("data-item-id")
    with page.expect_navigation():
        page.click(f'#review-table tr[data-item-id="{second}"] button.reject')
    assert page.locator(f'#lineage-table tr[data-item-id="{second}"] .badge.rejected').count() == 1
    pending = [i["item_id"] for i in served.admin.get("/v1/contexts/review/review").json()["pending"]]
    assert len(pending) == 3 and first not in pending and second not in pending
    assert [e["item_id"] for e in served.context("review")["pool"]["items"]] == [first]
    assert page.console_errors == []


def test_run_iteration_now(page, served):
    log_in(page, served, served.admin_secret, "/dashboard/contexts/loop")
    assert page.inner_text("#iteration") == "IP_0"
    assert page.locator("#ctr-chart circle.point").count() == 1
    page.click("#run-iteration")
    page.locator("#iteration", has_text="IP_1").wait_for()  # the page reloads once the worker is done
    assert page.locator("#ctr-chart circle.point").count() == 2
    assert served.context("loop")["iteration"] == 1
    assert page.console_errors == []


def test_item_text_is_shown_literally_and_never_runs(page, served):
    log_in(page, served, served.admin_secret, "/dashboard/contexts/xss")
    page.wait_for_load_state("load")
    assert page.locator("#pool-table .item-text", has_text="<script>").inner_text() == XSS
    assert page.locator("#lineage-table .item-text", has_text="<script>").first.inner_text().startswith(XSS)
    child = page.locator("#lineage-table tr", has_text="A child of the markup item")
    assert child.locator(".parents a").inner_text() == XSS
    assert page.locator("main img").count() == 0 and page.locator("main script").count() == 0
    page.wait_for_timeout(300)  # give an onerror handler time to fire, were there one
    assert page.dialogs == []
    assert not [e for e in page.console_errors if "Content Security Policy" in e]


def test_cookie_posts_need_the_dashboard_header(page, served):
    log_in(page, served, served.admin_secret, "/dashboard/contexts/shop")
    script = """([url, headers]) => fetch(url, {method: "POST", headers, credentials: "same-origin"})
        .then(async (r) => [r.status, await r.text()])"""
    status, body = page.evaluate(script, ["/v1/contexts/odd/iterations", {}])
    assert status == 403 and "X-Requested-With" in body
    status, _ = page.evaluate(script, ["/v1/contexts/odd/iterations", {"X-Requested-With": "clickloop-dashboard"}])
    assert status == 202


def test_logout_and_a_revoked_key_end_the_session(page, served):
    row, secret = create_key(served.store, "admin", label="revoked-in-test")
    log_in(page, served, secret)
    with page.expect_navigation():
        page.click("#logout")
    assert "/dashboard/login" in page.url and page.inner_text("#message") == "Logged out."
    page.goto(served.url + "/dashboard")
    assert re.search(r"/dashboard/login\?next=%2Fdashboard$", page.url)
    log_in(page, served, secret)
    served.store.revoke_api_key(row.key_id)
    page.goto(served.url + "/dashboard/contexts/shop")
    assert "/dashboard/login" in page.url and "session ended" in page.inner_text("#message")
    status = page.evaluate("fetch('/v1/contexts', {credentials: 'same-origin'}).then((r) => r.status)")
    assert status == 401
