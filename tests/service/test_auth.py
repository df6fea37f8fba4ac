"""Access control through the app: 401 for no, unknown or revoked keys, 403 for the wrong role or scope."""

import pytest

from clickloop.service.keys import SECRET_PREFIX, create_key, new_secret
from clickloop.service.store import secret_sha256

CONFIG = {"topic": "Cookware Sets", "llm": "scripted"}
CLIENT_ROUTES = [("GET", "/v1/contexts/shop/suggestions", None), ("POST", "/v1/contexts/shop/events", None)]
ADMIN_ROUTES = [
    ("PUT", "/v1/contexts/shop", CONFIG),
    ("GET", "/v1/contexts", None),
    ("GET", "/v1/contexts/shop", None),
    ("POST", "/v1/contexts/shop/iterations", None),
    ("GET", "/v1/contexts/shop/review", None),
    ("POST", "/v1/contexts/shop/review", {"decision": "approve", "item_ids": ["x"]}),
]
EVENTS = {"events": [{"idempotency_key": "k1", "impression_id": "i" * 22, "item_id": "x"}]}


def call(api, method, path, body, headers):
    if body is None and method == "POST" and path.endswith("/events"):
        body = EVENTS
    return api.http.request(method, path, json=body, headers=headers)


def test_secrets_are_long_random_and_stored_hashed(sqlite_api):
    a, b = new_secret(), new_secret()
    assert a.startswith(SECRET_PREFIX) and len(a) >= 40 and a != b
    row, secret = create_key(sqlite_api.store, "client", ["shop"], "web")
    assert sqlite_api.store.find_api_key(secret_sha256(secret)) == row
    assert secret not in sqlite_api.db.raw_text()


@pytest.mark.parametrize(("method", "path", "body"), CLIENT_ROUTES + ADMIN_ROUTES)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer clk_not-a-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
    ],
    ids=["missing", "wrong", "not-bearer", "empty"],
)
def test_no_valid_key_is_401_everywhere(sqlite_api, method, path, body, headers):
    sqlite_api.put_context("shop")
    response = call(sqlite_api, method, path, body, headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["type"] == "unauthenticated" and error["field"] == "Authorization"
    assert sqlite_api.store.event_counts() == {}


def test_revoked_key_is_401_at_once(sqlite_api):
    sqlite_api.ready_context("shop")
    row, secret = create_key(sqlite_api.store, "client")
    assert sqlite_api.http.get("/v1/contexts/shop/suggestions", headers=sqlite_api.bearer(secret)).status_code == 200
    sqlite_api.store.revoke_api_key(row.key_id)
    response = sqlite_api.http.get("/v1/contexts/shop/suggestions", headers=sqlite_api.bearer(secret))
    assert response.status_code == 401 and "unknown or revoked" in response.json()["error"]["message"]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_client_key_on_admin_route_is_403(sqlite_api, method, path, body):
    sqlite_api.put_context("shop")
    before = sqlite_api.store.get_context("shop")
    response = call(sqlite_api, method, path, body, sqlite_api.client)
    assert response.status_code == 403
    assert (
        response.json()["error"]["type"] == "forbidden" and "needs an admin key" in response.json()["error"]["message"]
    )
    assert sqlite_api.store.get_context("shop") == before


@pytest.mark.parametrize(("method", "path", "body"), CLIENT_ROUTES)
def test_scoped_client_key_on_another_context_is_403(sqlite_api, method, path, body):
    sqlite_api.ready_context("shop")
    sqlite_api.ready_context("garden", topic="Garden Hoses")
    headers = sqlite_api.key("client", ["garden"])
    response = call(sqlite_api, method, path, body, headers)
    assert response.status_code == 403
    assert "may use the contexts [garden], not 'shop'" in response.json()["error"]["message"]
    assert sqlite_api.store.get_context("shop").impressions_total == 0 and sqlite_api.store.event_counts() == {}
    allowed = sqlite_api.http.get("/v1/contexts/garden/suggestions", headers=headers)
    assert allowed.status_code == 200


BODY_ROUTES = [("POST", "/v1/contexts/shop/events"), ("PUT", "/v1/contexts/shop"), ("POST", "/v1/contexts/shop/review")]


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
@pytest.mark.parametrize(
    ("content", "status_with_key"),
    [(b'{"events": [', 400), (b"[1, 2]", 422), (b"", 422)],
    ids=["malformed", "invalid", "empty"],
)
def test_the_key_and_its_scope_are_checked_before_the_body_is_read(sqlite_api, method, path, content, status_with_key):
    sqlite_api.put_context("shop")
    before = sqlite_api.store.get_context("shop")
    json_type = {"Content-Type": "application/json"}

    def send(headers):
        return sqlite_api.http.request(method, path, content=content, headers={**json_type, **headers})

    missing = send({})
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert missing.json()["error"]["type"] == "unauthenticated"
    assert send({"Authorization": "Bearer clk_not-a-key"}).status_code == 401
    other_scope = send(sqlite_api.key("client", ["garden"]))
    assert other_scope.status_code == 403 and other_scope.json()["error"]["field"] == "Authorization"
    expected = "may use the contexts [garden], not 'shop'" if path.endswith("/events") else "needs an admin key"
    assert expected in other_scope.json()["error"]["message"]
    allowed = send(sqlite_api.admin)
    assert allowed.status_code == status_with_key, allowed.text
    assert allowed.json()["error"]["field"] == "body"
    assert sqlite_api.store.get_context("shop") == before and sqlite_api.store.event_counts() == {}


def test_admin_key_may_use_client_routes_and_health_needs_none(sqlite_api):
    sqlite_api.ready_context("shop")
    assert sqlite_api.http.get("/v1/contexts/shop/suggestions", headers=sqlite_api.admin).status_code == 200
    assert sqlite_api.http.get("/healthz").json() == {"status": "ok", "schema_version": 3}
    metrics = sqlite_api.http.get("/metrics")
    assert metrics.status_code == 200 and "clickloop_store_contexts 1.0" in metrics.text
