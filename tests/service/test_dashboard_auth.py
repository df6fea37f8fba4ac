"""The dashboard's session and its guards, through the ASGI app (no browser): login, the cookie, CSRF,
redirects, escaping, security headers. The browser tests are in ``test_dashboard_browser.py``."""

import re

import pytest

from clickloop.core.items import Item, ItemOrigin, Provenance
from clickloop.service.app import create_app
from clickloop.service.auth import CSRF_HEADER, CSRF_VALUE, SESSION_COOKIE
from clickloop.service.keys import create_key

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def secret_of(headers):
    return headers["Authorization"].removeprefix("Bearer ")


def log_in(api, secret, next_path="/dashboard", **headers):
    return api.http.post(
        "/dashboard/login", data={"key": secret, "next": next_path}, headers=headers, follow_redirects=False
    )


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/contexts/shop"])
def test_pages_without_a_session_redirect_to_login(sqlite_api, path):
    response = sqlite_api.http.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/login?next=" + path.replace("/", "%2F")


def test_admin_login_sets_a_strict_httponly_cookie(sqlite_api):
    response = log_in(sqlite_api, secret_of(sqlite_api.admin), "/dashboard/contexts/shop")
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/contexts/shop"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}={secret_of(sqlite_api.admin)};")
    assert {"HttpOnly", "Path=/", "SameSite=strict", "Max-Age=43200"} <= {p.strip() for p in cookie.split(";")}
    assert "Secure" not in cookie  # plain http here; https requests get it
    assert sqlite_api.http.get("/dashboard").status_code == 200


@pytest.mark.parametrize(
    ("secret", "status", "message"),
    [
        ("clk_not-a-key", 401, "unknown or revoked"),
        ("", 401, "Paste an admin key"),
        ("x" * 500, 401, "Paste an admin key"),
        ("CLIENT", 403, "is a client key"),
    ],
)
def test_bad_logins_get_no_cookie(sqlite_api, secret, status, message):
    secret = secret_of(sqlite_api.client) if secret == "CLIENT" else secret
    response = log_in(sqlite_api, secret)
    assert response.status_code == status and message in response.text
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    "headers",
    [{"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "same-site"}],
)
def test_cross_site_login_and_logout_are_refused(sqlite_api, headers):
    response = log_in(sqlite_api, secret_of(sqlite_api.admin), **headers)
    assert response.status_code == 403 and "set-cookie" not in response.headers
    logout = sqlite_api.http.post("/dashboard/logout", headers=headers, follow_redirects=False)
    assert logout.status_code == 403 and "set-cookie" not in logout.headers


@pytest.mark.parametrize(
    ("next_path", "location"),
    [
        ("https://evil.example/dashboard", "/dashboard"),
        ("//evil.example/dashboard", "/dashboard"),
        ("/v1/contexts", "/dashboard"),
        ("/dashboard\\@evil.example", "/dashboard"),
        ("/dashboard/contexts/shop", "/dashboard/contexts/shop"),
    ],
)
def test_login_redirects_only_inside_the_dashboard(sqlite_api, next_path, location):
    response = log_in(sqlite_api, secret_of(sqlite_api.admin), next_path)
    assert response.headers["location"] == location


def test_cookie_authenticates_the_admin_api_and_posts_need_the_header(sqlite_api):
    sqlite_api.ready_context("shop")
    sqlite_api.http.cookies.set(SESSION_COOKIE, secret_of(sqlite_api.admin))
    assert sqlite_api.http.get("/v1/contexts/shop").status_code == 200
    refused = sqlite_api.http.post("/v1/contexts/shop/iterations")
    assert refused.status_code == 403 and refused.json()["error"]["field"] == CSRF_HEADER
    assert sqlite_api.store.get_context("shop").iteration_requested_at is None
    accepted = sqlite_api.http.post("/v1/contexts/shop/iterations", headers={CSRF_HEADER: CSRF_VALUE})
    assert accepted.status_code == 202


def test_a_bearer_header_wins_over_the_cookie(sqlite_api):
    sqlite_api.put_context("shop")
    sqlite_api.http.cookies.set(SESSION_COOKIE, secret_of(sqlite_api.admin))
    wrong = sqlite_api.http.get("/v1/contexts", headers={"Authorization": "Bearer clk_not-a-key"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
    client = sqlite_api.http.get("/v1/contexts", headers=sqlite_api.client)
    assert client.status_code == 403


def test_a_client_key_cookie_is_403_on_pages_and_admin_routes(sqlite_api):
    sqlite_api.http.cookies.set(SESSION_COOKIE, secret_of(sqlite_api.client))
    page = sqlite_api.http.get("/dashboard", follow_redirects=False)
    assert (
        page.status_code == 403 and "client key" in page.text and page.headers["content-type"].startswith("text/html")
    )
    assert sqlite_api.http.get("/v1/contexts").status_code == 403


def test_a_revoked_key_ends_the_session(sqlite_api):
    row, secret = create_key(sqlite_api.store, "admin")
    assert log_in(sqlite_api, secret).status_code == 303
    assert sqlite_api.http.get("/dashboard").status_code == 200
    sqlite_api.store.revoke_api_key(row.key_id)
    page = sqlite_api.http.get("/dashboard", follow_redirects=False)
    assert page.status_code == 303 and "message=Your+session+ended" in page.headers["location"]
    api = sqlite_api.http.get("/v1/contexts")
    assert api.status_code == 401 and "log in again" in api.json()["error"]["message"]


def test_logout_clears_the_cookie(sqlite_api):
    log_in(sqlite_api, secret_of(sqlite_api.admin))
    response = sqlite_api.http.post("/dashboard/logout", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/dashboard/login?")
    assert re.match(rf'{SESSION_COOKIE}=""; .*Max-Age=0', response.headers["set-cookie"])
    assert sqlite_api.http.get("/dashboard", follow_redirects=False).status_code == 303


def test_item_text_and_topics_are_escaped_and_pages_carry_a_strict_csp(sqlite_api):
    sqlite_api.ready_context("shop", topic='Pots & <i>Pans</i> "deluxe"')
    injected = Item.create("shop", XSS, Provenance(ItemOrigin.MANUAL, 1))
    sqlite_api.store.apply_iteration("shop", 0, [injected], [])
    log_in(sqlite_api, secret_of(sqlite_api.admin))
    for path in ("/dashboard", "/dashboard/contexts/shop"):
        page = sqlite_api.http.get(path)
        assert "<i>Pans" not in page.text and "&lt;i&gt;Pans&lt;/i&gt; &#34;deluxe&#34;" in page.text
        csp = page.headers["content-security-policy"]
        nonce = re.search(r"script-src 'nonce-([^']+)'", csp).group(1)
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert page.headers["cache-control"] == "no-store"
        assert set(re.findall(r"<script([^>]*)>", page.text)) <= {f' nonce="{nonce}"'}
    assert "<script>alert" not in page.text and "<img" not in page.text
    assert page.text.count("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;") == 2


def test_the_last_iteration_failure_is_shown_escaped(sqlite_api):
    sqlite_api.put_context("shop")
    log_in(sqlite_api, secret_of(sqlite_api.admin))
    assert 'id="last-error"' not in sqlite_api.http.get("/dashboard/contexts/shop").text
    sqlite_api.store.record_iteration_failure("shop", f"ParseError: bad output; raw output: {XSS!r}")
    sqlite_api.store.record_iteration_failure("shop", f"ParseError: bad output; raw output: {XSS!r}")
    page = sqlite_api.http.get("/dashboard/contexts/shop").text
    block = re.search(r'<div class="notice error" id="last-error".*?</div>', page, re.S).group(0)
    assert "The last iteration failed" in block and "2 time(s) in a row" in block
    assert "ParseError: bad output; raw output: &#39;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x" in block
    assert "<script>alert" not in page and "<img" not in page
    listing = sqlite_api.http.get("/dashboard").text
    assert 'class="badge failed"' in listing and "<script>alert" not in listing
    assert sqlite_api.iterate()
    assert 'id="last-error"' not in sqlite_api.http.get("/dashboard/contexts/shop").text


def test_unknown_context_is_a_404_page(sqlite_api):
    log_in(sqlite_api, secret_of(sqlite_api.admin))
    page = sqlite_api.http.get("/dashboard/contexts/nope")
    assert page.status_code == 404 and "nope" in page.text and page.headers["content-type"].startswith("text/html")


def test_dashboard_routes_stay_out_of_the_openapi_spec():
    spec = create_app(run_worker=False, env={}).openapi()
    assert not [path for path in spec["paths"] if path.startswith("/dashboard")]
