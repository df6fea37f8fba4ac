"""The review queue: with ``require_review``, new items wait for a person before they go live."""

from clickloop.service.iteration import load_state
from clickloop.service.store import ItemStatus


def pending_ids(api):
    response = api.http.get("/v1/contexts/shop/review", headers=api.admin)
    assert response.status_code == 200
    return [item["item_id"] for item in response.json()["pending"]]


def decide(api, decision, item_ids):
    return api.http.post(
        "/v1/contexts/shop/review", json={"decision": decision, "item_ids": item_ids}, headers=api.admin
    )


def test_new_items_are_pending_until_approved(api):
    api.put_context("shop", require_review=True)
    assert api.iterate()
    waiting = api.http.get("/v1/contexts/shop/suggestions", headers=api.client)
    assert waiting.status_code == 503 and "wait for review" in waiting.json()["error"]["message"]
    initial = pending_ids(api)
    assert len(initial) == 5 and api.store.metrics().pending_items == 5

    approved = decide(api, "approve", initial[:3])
    assert approved.status_code == 200 and [i["item_id"] for i in approved.json()["pending"]] == initial[3:]
    shown = {item["item_id"] for item in api.suggest()["items"]}
    assert shown == set(initial[:3])
    assert decide(api, "reject", initial[3:]).json()["pending"] == []
    statuses = {row.item_id: row.status for row in api.store.list_items("shop")}
    assert [statuses[i] for i in initial] == [ItemStatus.LIVE] * 3 + [ItemStatus.REJECTED] * 2

    assert api.http.post("/v1/contexts/shop/iterations", headers=api.admin).status_code == 202
    assert api.iterate()
    new = pending_ids(api)
    assert len(new) == 2 and api.store.get_context("shop").iteration == 1
    assert len(api.store.live_pool("shop").entries) == 1  # two dropped, two new ones not yet live
    blocked = api.http.post("/v1/contexts/shop/iterations", headers=api.admin)
    assert blocked.status_code == 409 and "wait for review" in blocked.json()["error"]["message"]
    decide(api, "approve", new)
    assert {e.item.item_id for e in api.store.live_pool("shop").entries} >= set(new)


def test_review_errors(sqlite_api):
    sqlite_api.put_context("shop", require_review=True)
    sqlite_api.iterate()
    first, *_ = pending_ids(sqlite_api)
    decide(sqlite_api, "approve", [first])
    again = decide(sqlite_api, "reject", [first])
    assert again.status_code == 422 and "not pending review" in again.json()["error"]["message"]
    unknown = decide(sqlite_api, "approve", ["nope"])
    assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "item_ids"
    repeated = decide(sqlite_api, "approve", ["a", "a"])
    assert repeated.status_code == 422 and "must not repeat" in repeated.json()["error"]["message"]
    wrong = decide(sqlite_api, "maybe", ["a"])
    assert wrong.status_code == 422 and wrong.json()["error"]["field"] == "decision"


def test_items_never_live_are_kept_out_of_the_history_but_avoided(sqlite_api):
    sqlite_api.put_context("shop", require_review=True)
    sqlite_api.iterate()
    ids = pending_ids(sqlite_api)
    decide(sqlite_api, "approve", ids[:3])
    decide(sqlite_api, "reject", ids[3:4])
    context = sqlite_api.store.get_context("shop")
    state, never_live = load_state(sqlite_api.store, context, "ecommerce", "Cookware Sets")
    texts = {row.item_id: row.item.text for row in sqlite_api.store.list_items("shop")}
    assert state.pool == tuple(ids[:3]) and set(state.history) == set(ids[:3])
    assert set(never_live) == {texts[ids[3]], texts[ids[4]]}
