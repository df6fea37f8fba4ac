"""Client routes: suggestions and event batches, their outcomes, limits and what a 4xx leaves behind."""

import json
import random
import re

import pytest

from clickloop.service.routes import serving


def click(shown, key, item=0, **extra):
    return {
        "idempotency_key": key,
        "impression_id": shown["impression_id"],
        "item_id": shown["items"][item]["item_id"],
        **extra,
    }


def stored_events(api):
    return api.db.sql("SELECT idempotency_key FROM events ORDER BY idempotency_key")


def test_no_pool_yet_is_503_and_asks_for_one(api):
    api.put_context("shop")
    response = api.http.get("/v1/contexts/shop/suggestions", headers=api.client)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json()["error"]["type"] == "pool_not_ready"
    assert api.store.get_context("shop").iteration_requested_at is not None
    assert api.iterate()
    assert len(api.suggest()["items"]) == 3


def test_suggestions_are_k_distinct_live_items_and_count_an_impression(api):
    pool = {item["item_id"]: item["text"] for item in api.ready_context("shop", k_shown=3)["pool"]["items"]}
    seen = set()
    for _ in range(12):
        shown = api.suggest()
        ids = [item["item_id"] for item in shown["items"]]
        assert len(set(ids)) == 3 and set(ids) <= set(pool) and shown["iteration"] == 0
        assert all(item["text"] == pool[item["item_id"]] for item in shown["items"])
        assert len(shown["impression_id"]) >= 22
        seen.update(ids)
    assert seen == set(pool)  # uniform draws reach every item (P(miss one) < 5 * (2/5)^12 ~ 1e-4)
    context = api.store.get_context("shop")
    assert (context.impressions_total, context.impressions_since_iteration) == (12, 12)
    assert sum(e.stats.impressions for e in api.store.live_pool("shop").entries) == 36


def not_shown_in(api, shown):
    pool = [e.item.item_id for e in api.store.live_pool("shop").entries]
    return next(i for i in pool if i not in {item["item_id"] for item in shown["items"]})


def test_event_outcomes_and_counts(api):
    api.ready_context("shop", impression_ttl_seconds=60)
    old = api.suggest()
    api.db.clock.advance(61)  # ``old`` expires
    shown = api.suggest()
    pool = [e.item.item_id for e in api.store.live_pool("shop").entries]
    batch = [
        click(shown, "a", 0, dwell_ms=1200),
        click(shown, "b", 0),  # second click on the same shown item
        {"idempotency_key": "c", "impression_id": "x" * 22, "item_id": pool[0]},
        click(old, "e", 0),
        # an expired impression is a race, not a client bug: rejected whatever item it names
        {"idempotency_key": "g", "impression_id": old["impression_id"], "item_id": not_shown_in(api, old)},
        click(shown, "f", 1, type="click"),
    ]
    response = api.post_events(batch)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["outcome"] for r in body["results"]] == [
        "accepted",
        "duplicate",
        "rejected:unknown_impression",
        "rejected:expired_impression",
        "rejected:expired_impression",
        "accepted",
    ]
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (2, 1, 3)
    assert [r[0] for r in stored_events(api)] == ["a", "f"]  # rejected ones are counted, not stored
    retried = api.post_events(batch).json()  # a retry after a lost answer: idempotent
    assert retried["accepted"] == 0 and [r["outcome"] for r in retried["results"]][:2] == ["duplicate"] * 2
    counts = api.store.event_counts("shop")
    assert counts["accepted"] == 2 and counts["rejected:unknown_impression"] == 2
    assert counts["rejected:expired_impression"] == 4
    clicks = {e.item.item_id: e.stats.clicks for e in api.store.live_pool("shop").entries}
    assert sum(clicks.values()) == 2
    metrics = api.http.get("/metrics").text
    assert "clickloop_clicks_total 2.0" in metrics
    assert 'clickloop_events_total{outcome="rejected:expired_impression"} 4.0' in metrics


def _refused_whole(api, response, field, match):
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["type"], error["field"]) == ("invalid_value", field)
    assert re.search(match, error["message"]), error["message"]
    assert stored_events(api) == [] and api.store.event_counts() == {}
    assert all(e.stats.clicks == 0 for e in api.store.live_pool("shop").entries)
    assert "clickloop_clicks_total 0.0" in api.http.get("/metrics").text


def test_a_click_on_an_item_not_shown_fails_the_batch_whole(api):
    api.ready_context("shop")
    shown = api.suggest()
    hidden = not_shown_in(api, shown)
    bad = {"idempotency_key": "c", "impression_id": shown["impression_id"], "item_id": hidden}
    batch = [click(shown, "a", 0), click(shown, "b", 1), bad]
    response = api.post_events(batch)
    _refused_whole(api, response, "events.2.item_id", rf"events\.2\.item_id \('{hidden}'\) was not shown in impression")
    assert "Nothing was stored" in response.json()["error"]["message"]
    made_up = {**bad, "item_id": "no-such-item"}
    _refused_whole(api, api.post_events([made_up, *batch[:2]]), "events.0.item_id", "'no-such-item'")
    assert api.post_events(batch[:2]).json()["accepted"] == 2  # without the bad click it goes through


def test_the_same_key_twice_in_a_batch_fails_it_whole(api):
    api.ready_context("shop")
    shown = api.suggest()
    batch = [click(shown, "a", 0), click(shown, "b", 1), click(shown, "a", 2)]
    _refused_whole(api, api.post_events(batch), "events.2.idempotency_key", "repeats the key of events.0")
    assert api.post_events(batch[:2]).json()["accepted"] == 2


def test_events_on_another_contexts_impression_are_unknown(sqlite_api):
    sqlite_api.ready_context("shop")
    sqlite_api.ready_context("garden", topic="Garden Hoses")
    shown = sqlite_api.suggest("garden")
    outcome = sqlite_api.post_events([click(shown, "k")], context_id="shop").json()["results"][0]["outcome"]
    assert outcome == "rejected:unknown_impression"


def _too_many(shown):
    return {"events": [click(shown, f"k{n}") for n in range(1001)]}


def _one_bad(shown):
    return {"events": [click(shown, "good"), click(shown, "bad", dwell_ms="5")]}


@pytest.mark.parametrize(
    ("make_body", "status", "field"),
    [
        (_too_many, 422, "events"),
        (_one_bad, 422, "events.1.dwell_ms"),
        (
            lambda s: {"events": [{"idempotency_key": "k", "impression_id": s["impression_id"]}]},
            422,
            "events.0.item_id",
        ),
        (lambda s: {"events": [click(s, "k", type="view")]}, 422, "events.0.type"),
        (lambda s: {"events": [click(s, "k", dwell_ms=-1)]}, 422, "events.0.dwell_ms"),
        (lambda s: {"events": [click(s, "")]}, 422, "events.0.idempotency_key"),
        (lambda s: {"events": []}, 422, "events"),
        (lambda s: {"events": [click(s, "k")], "extra": 1}, 422, "extra"),
        (lambda s: [click(s, "k")], 422, "body"),
    ],
    ids=["too-many", "one-bad", "missing-field", "wrong-type-value", "negative", "empty-key", "empty", "extra", "list"],
)
def test_invalid_batches_are_refused_whole(api, make_body, status, field):
    api.ready_context("shop")
    shown = api.suggest()
    response = api.http.post("/v1/contexts/shop/events", json=make_body(shown), headers=api.client)
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field
    assert stored_events(api) == [] and api.store.event_counts() == {}


def test_malformed_json_and_unknown_context(sqlite_api):
    sqlite_api.ready_context("shop")
    headers = {**sqlite_api.client, "Content-Type": "application/json"}
    malformed = sqlite_api.http.post("/v1/contexts/shop/events", content=b'{"events": [', headers=headers)
    assert malformed.status_code == 400 and malformed.json()["error"]["type"] == "malformed_json"
    unknown = sqlite_api.post_events([{"idempotency_key": "k", "impression_id": "x" * 22, "item_id": "y"}], "nope")
    assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "context_id"
    assert sqlite_api.http.get("/v1/contexts/nope/suggestions", headers=sqlite_api.client).status_code == 404
    assert sqlite_api.store.event_counts() == {}


def test_oversized_bodies_are_413_before_anything_is_read(sqlite_api):
    sqlite_api.ready_context("shop")
    shown = sqlite_api.suggest()
    padding = "x" * 200
    events = [click(shown, f"{padding}{n}"[-200:]) for n in range(1000)]
    body = json.dumps({"events": events * 5}).encode()
    assert len(body) > 1024 * 1024
    headers = {**sqlite_api.client, "Content-Type": "application/json"}
    response = sqlite_api.http.post("/v1/contexts/shop/events", content=body, headers=headers)
    assert response.status_code == 413
    assert response.json()["error"] == {
        "type": "payload_too_large",
        "message": "the request body exceeds 1048576 bytes; send smaller batches",
        "field": "body",
    }

    def chunks():  # no Content-Length: the limit is enforced while reading
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    chunked = sqlite_api.http.post("/v1/contexts/shop/events", content=chunks(), headers=headers)
    assert chunked.status_code == 413
    assert sqlite_api.store.event_counts() == {}
    small = json.dumps({"events": [click(shown, "ok")]}).encode()
    accepted = sqlite_api.http.post("/v1/contexts/shop/events", content=iter([small[:10], small[10:]]), headers=headers)
    assert accepted.status_code == 200 and accepted.json()["accepted"] == 1


def test_item_text_is_returned_as_data(sqlite_api):
    from clickloop.core.items import Item, ItemOrigin, Provenance

    sqlite_api.put_context("shop")
    text = '<script>alert("x")</script> & "quotes"?'
    item = Item.create("shop", text, Provenance(ItemOrigin.MANUAL, 0))
    sqlite_api.store.apply_iteration("shop", None, [item], [])
    response = sqlite_api.http.get("/v1/contexts/shop/suggestions", headers=sqlite_api.client)
    assert response.headers["content-type"] == "application/json"
    assert response.json()["items"] == [{"item_id": item.item_id, "text": text}]


def test_no_pool_yet_after_failures_says_why(sqlite_api):
    sqlite_api.put_context("shop")
    sqlite_api.store.record_iteration_failure("shop", "ModelError: cannot load the model <qwen.gguf>")
    sqlite_api.store.record_iteration_failure("shop", "ModelError: cannot load the model <qwen.gguf>")
    response = sqlite_api.http.get("/v1/contexts/shop/suggestions", headers=sqlite_api.client)
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    error = response.json()["error"]
    assert error["type"] == "pool_not_ready"
    assert "generating it failed 2 time(s) in a row" in error["message"]
    assert "GET /v1/contexts/shop (last_error)" in error["message"]
    # the error itself (it may name server paths) only to an admin key
    assert "cannot load the model" not in error["message"]
    admin = sqlite_api.http.get("/v1/contexts/shop/suggestions", headers=sqlite_api.admin).json()["error"]
    assert "ModelError: cannot load the model <qwen.gguf>" in admin["message"]
    assert sqlite_api.iterate()
    assert sqlite_api.http.get("/v1/contexts/shop/suggestions", headers=sqlite_api.client).status_code == 200


@pytest.mark.parametrize(
    ("content", "content_type", "status", "field"),
    [
        (b"", "application/json", 422, "body"),
        (b'{"events": []}', "text/plain", 422, "body"),
        (b"\xff\xfe", "application/json", 400, "body"),
        (b'{"events": [', "application/vnd.api+json", 400, "body"),
    ],
    ids=["empty", "not-json-type", "not-utf8", "json-suffix-type"],
)
def test_bodies_that_are_not_json_objects(sqlite_api, content, content_type, status, field):
    sqlite_api.ready_context("shop")
    headers = {**sqlite_api.client, "Content-Type": content_type}
    response = sqlite_api.http.post("/v1/contexts/shop/events", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field
    assert response.json()["error"]["type"] == ("malformed_json" if status == 400 else "invalid_request")
    if content_type == "text/plain":
        assert "'Content-Type: application/json', not 'text/plain'" in response.json()["error"]["message"]
    assert sqlite_api.store.event_counts() == {}


def test_thompson_serving_learns_to_show_the_clicked_item(api, monkeypatch):
    # the serving draws are seeded, so the run is one fixed sample: unseeded, 3 of 260 seeds tried
    # failed a bound below by chance (it made CI flaky)
    monkeypatch.setattr(serving, "_pick", random.Random(0))
    api.ready_context("shop", k_shown=1, serving="thompson", serving_refresh_seconds=0)
    favourite = api.store.live_pool("shop").entries[0].item.item_id
    shown_favourite = []
    for n in range(120):
        shown = api.suggest()
        hit = shown["items"][0]["item_id"] == favourite
        shown_favourite.append(hit)
        if hit:  # users click the favourite, and nothing else
            assert api.post_events([click(shown, f"k{n}")]).json()["accepted"] == 1
    assert shown_favourite.count(False) >= 4  # it explores the others too
    assert sum(shown_favourite[-40:]) >= 36  # then shows what is clicked


def test_uniform_is_the_default_serving_and_bad_serving_is_named(api):
    context = api.put_context("shop")
    assert context["config"]["serving"] == "uniform"
    response = api.http.put(
        "/v1/contexts/shop", headers=api.admin, json={"topic": "Cookware Sets", "serving": "greedy"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "serving"
