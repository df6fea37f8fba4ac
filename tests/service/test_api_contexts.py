"""Admin routes: create/update/read contexts, trigger iterations, and the errors they answer."""

import pytest

from clickloop.report.stats import wilson_interval


def test_put_creates_then_updates_and_keeps_the_pool(sqlite_api):
    created = sqlite_api.http.put(
        "/v1/contexts/shop", json={"topic": "Cookware Sets", "llm": "scripted"}, headers=sqlite_api.admin
    )
    assert created.status_code == 201
    body = created.json()
    assert (body["context_id"], body["topic"], body["iteration"], body["pool"]) == ("shop", "Cookware Sets", None, None)
    assert body["config"]["k_shown"] == 3 and body["config"]["schedule"]["every_n_impressions"] == 1000
    assert sqlite_api.iterate()
    updated = sqlite_api.http.put(
        "/v1/contexts/shop", json={"topic": "Cookware Sets", "llm": "scripted", "k_shown": 2}, headers=sqlite_api.admin
    )
    assert updated.status_code == 200
    assert updated.json()["config"]["k_shown"] == 2 and updated.json()["iteration"] == 0
    assert len(updated.json()["pool"]["items"]) == 5
    assert len(sqlite_api.suggest()["items"]) == 2


def test_detail_has_stats_intervals_history_and_lineage(api):
    api.ready_context("shop")
    shown = api.suggest()
    clicked = shown["items"][0]["item_id"]
    event = {"idempotency_key": "e1", "impression_id": shown["impression_id"], "item_id": clicked}
    assert api.post_events([event]).json()["accepted"] == 1
    detail = api.http.get("/v1/contexts/shop", headers=api.admin).json()
    by_id = {item["item_id"]: item for item in detail["pool"]["items"]}
    stats = by_id[clicked]["iteration"]
    low, high = wilson_interval(1, 1)
    assert (stats["impressions"], stats["clicks"], stats["ctr"]) == (1, 1, 1.0)
    assert stats["ctr_low"] == pytest.approx(low) and stats["ctr_high"] == pytest.approx(high)
    unseen = next(
        item for item in detail["pool"]["items"] if item["item_id"] not in {i["item_id"] for i in shown["items"]}
    )
    assert (unseen["total"]["ctr_low"], unseen["total"]["ctr_high"]) == (0.0, 1.0)
    assert detail["pool"]["stats"]["impressions"] == 3 and detail["pool"]["stats"]["clicks"] == 1
    assert detail["event_counts"] == {"accepted": 1} and detail["impressions_total"] == 1

    assert api.http.post("/v1/contexts/shop/iterations", headers=api.admin).status_code == 202
    assert api.iterate()
    detail = api.http.get("/v1/contexts/shop", headers=api.admin).json()
    assert detail["iteration"] == 1 and [p["iteration"] for p in detail["history"]] == [0, 1]
    assert detail["pool"] == detail["history"][1]
    assert by_id[clicked]["item_id"] in {i["item_id"] for i in detail["pool"]["items"]}  # the clicked item stays
    items = {item["item_id"]: item for item in detail["items"]}
    new = [i for i in detail["pool"]["items"] if items[i["item_id"]]["lineage"]["iteration_created"] == 1]
    assert {items[i["item_id"]]["lineage"]["origin"] for i in new} == {"explore", "exploit"}
    exploit = next(items[i["item_id"]] for i in new if items[i["item_id"]]["lineage"]["origin"] == "exploit")
    assert exploit["lineage"]["parents"][0] == clicked and exploit["lineage"]["template"] == "exploit"
    dropped = [i for i in items.values() if i["status"] == "dropped"]
    assert len(dropped) == 2 and all(i["lineage"]["dropped_at"] == 0 for i in dropped)
    assert {(u["iteration"], u["role"]) for u in detail["llm_usage"]} == {(0, "generator"), (1, "generator")}
    listed = api.http.get("/v1/contexts", headers=api.admin).json()
    assert [(c["context_id"], c["iteration"]) for c in listed] == [("shop", 1)]


@pytest.mark.parametrize(
    ("path", "body", "status", "kind", "field"),
    [
        ("/v1/contexts/shop", {"topic": "x", "k_shown": 9}, 422, "invalid_request", "k_shown"),
        ("/v1/contexts/shop", {"topic": "x", "pool_size": 2, "k_shown": 3}, 422, "invalid_request", "k_shown"),
        (
            "/v1/contexts/shop",
            {"topic": "x", "strategy_options": {"n_worst": 1}},
            422,
            "invalid_request",
            "strategy_options.n_worst",
        ),
        (
            "/v1/contexts/shop",
            {"topic": "x", "strategy_options": {"n_drop": "2"}},
            422,
            "invalid_request",
            "strategy_options.n_drop",
        ),
        (
            "/v1/contexts/shop",
            {"topic": "x", "strategy": "random-ctr", "strategy_options": {"low": "a"}},
            422,
            "invalid_request",
            "strategy_options.low",
        ),
        (
            "/v1/contexts/shop",
            {"topic": "x", "strategy_options": {"n_explore": 0, "n_exploit": 0}},
            422,
            "invalid_request",
            "strategy_options",
        ),
        ("/v1/contexts/shop", {"topic": "x", "pool_size": "5"}, 422, "invalid_request", "pool_size"),
        ("/v1/contexts/shop", {"topic": "x", "strategy": "greedy"}, 422, "invalid_request", "strategy"),
        ("/v1/contexts/shop", {"topic": "x", "schedule": {"every_minutes": -1}}, 422, "invalid_request", None),
        ("/v1/contexts/shop", {"pool_size": 5}, 422, "invalid_request", "topic"),
        ("/v1/contexts/shop", [1, 2], 422, "invalid_request", "body"),
        ("/v1/contexts/bad%20id", {"topic": "x"}, 422, "invalid_request", "context_id"),
        ("/v1/contexts/-x", {"topic": "x"}, 422, "invalid_request", "context_id"),
    ],
)
def test_invalid_context_puts_name_the_field_and_store_nothing(sqlite_api, path, body, status, kind, field):
    response = sqlite_api.http.put(path, json=body, headers=sqlite_api.admin)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == kind
    assert error["field"] == (field or "schedule.every_minutes")
    assert sqlite_api.store.list_contexts() == []


def test_malformed_json_is_400(sqlite_api):
    response = sqlite_api.http.put(
        "/v1/contexts/shop", content=b'{"topic": ', headers={**sqlite_api.admin, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "malformed_json",
        "message": response.json()["error"]["message"],
        "field": "body",
    }
    assert sqlite_api.store.list_contexts() == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/contexts/nope"),
        ("POST", "/v1/contexts/nope/iterations"),
        ("GET", "/v1/contexts/nope/review"),
    ],
)
def test_unknown_context_is_404(sqlite_api, method, path):
    response = sqlite_api.http.request(method, path, headers=sqlite_api.admin)
    assert response.status_code == 404
    assert response.json()["error"] == {
        "type": "not_found",
        "message": "no context 'nope'; create it first or check the id",
        "field": "context_id",
    }


def test_unknown_route_and_method_keep_the_error_shape(sqlite_api):
    missing = sqlite_api.http.get("/v1/nothing", headers=sqlite_api.admin)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
    wrong = sqlite_api.http.delete("/v1/contexts", headers=sqlite_api.admin)
    assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "method_not_allowed"


def test_trigger_is_202_and_makes_the_context_due(sqlite_api):
    sqlite_api.ready_context("shop")
    assert not sqlite_api.iterate()  # the schedule has not fired: nothing is due
    response = sqlite_api.http.post("/v1/contexts/shop/iterations", headers=sqlite_api.admin)
    assert response.status_code == 202
    assert response.json()["iteration"] == 0 and response.json()["iteration_requested_at"] is not None
    assert sqlite_api.iterate()
    assert sqlite_api.store.get_context("shop").iteration == 1


def test_detail_shows_the_last_iteration_failure_until_one_is_applied(api):
    api.put_context("shop")
    assert api.http.get("/v1/contexts/shop", headers=api.admin).json()["last_error"] is None
    api.store.record_iteration_failure("shop", "TransportError: connection refused")
    detail = api.http.get("/v1/contexts/shop", headers=api.admin).json()
    assert detail["last_error"] == {
        "message": "TransportError: connection refused",
        "failed_at": pytest.approx(api.db.clock.now),
        "attempts": 1,
    }
    assert api.http.get("/v1/contexts", headers=api.admin).json()[0]["last_error"] == detail["last_error"]
    assert api.iterate()
    assert api.http.get("/v1/contexts/shop", headers=api.admin).json()["last_error"] is None
