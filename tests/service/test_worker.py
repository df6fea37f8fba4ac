"""The update worker: failures leave the live pool alone and back off; leases keep iterations single."""

import threading
import time
from collections import Counter

import pytest

from clickloop.errors import ModelError, StorageError, TransportError
from clickloop.llm.scripted import ScriptedLLM, canned_responder
from clickloop.service import worker as worker_module
from clickloop.service.metrics import ServiceMetrics
from clickloop.service.store import IterationFailure, open_store
from clickloop.service.worker import Worker
from clickloop.strategies import ItemWriter


def snapshot(store):
    return store.pool_history("shop"), store.list_items("shop"), store.get_context("shop").iteration


def outcomes(metrics):
    return {
        label: metrics.registry.get_sample_value("clickloop_iterations_total", {"outcome": label}) or 0
        for label in ("applied", "failed", "conflict", "interrupted")
    }


def test_llm_failure_keeps_the_pool_and_backs_off(api):
    api.ready_context("shop")
    api.store.request_iteration("shop")
    before = snapshot(api.store)

    def unreachable(_spec):
        def fail(_request):
            raise TransportError("connection refused")

        return ScriptedLLM(fail)

    metrics = ServiceMetrics()
    failing = Worker(api.store, unreachable, "w1", backoff_seconds=30, metrics=metrics)
    assert failing.run_once()
    assert snapshot(api.store) == before
    context = api.store.get_context("shop")
    assert context.leased_by is None and context.iteration_requested_at is not None
    assert context.lease_until == pytest.approx(api.db.clock.now + 30)
    assert api.store.claim_due("w2", 60) is None  # held back for 30 s
    assert failing.run_once() is False and outcomes(metrics)["failed"] == 1
    api.db.clock.advance(31)
    assert failing.run_once()  # still failing: the back-off doubles
    assert api.store.get_context("shop").lease_until == pytest.approx(api.db.clock.now + 60)
    api.db.clock.advance(61)
    assert api.iterate()
    assert api.store.get_context("shop").iteration == 1


def test_failures_are_recorded_for_the_api_and_cleared_by_the_next_applied_iteration(api):
    api.put_context("shop")

    def unloadable(spec):
        raise ModelError(f"the model of {spec!r} is missing; run 'clickloop models prepare'")

    metrics = ServiceMetrics()
    first = Worker(api.store, unloadable, "w1", backoff_seconds=30, metrics=metrics)
    assert first.run_once()
    message = "ModelError: the model of 'scripted' is missing; run 'clickloop models prepare'"
    assert api.store.get_context("shop").last_error == IterationFailure(message, api.db.clock.now, 1)
    shown = api.http.get("/v1/contexts/shop", headers=api.admin).json()["last_error"]
    assert (shown["message"], shown["attempts"]) == (message, 1)
    answer = api.http.get("/v1/contexts/shop/suggestions", headers=api.client).json()["error"]
    assert "failed 1 time(s) in a row" in answer["message"] and message not in answer["message"]
    answer = api.http.get("/v1/contexts/shop/suggestions", headers=api.admin).json()["error"]
    assert "failed 1 time(s) in a row" in answer["message"] and message in answer["message"]
    api.db.clock.advance(31)
    # another worker (another process, after a restart) goes on from the stored count: back-off and seeds
    second = Worker(api.store, unloadable, "w2", backoff_seconds=30, metrics=metrics)
    assert second.run_once()
    context = api.store.get_context("shop")
    assert context.last_error.attempts == 2 and context.lease_until == pytest.approx(api.db.clock.now + 60)
    assert outcomes(metrics)["failed"] == 2
    api.db.clock.advance(61)
    assert api.iterate()
    assert api.store.get_context("shop").last_error is None
    assert api.http.get("/v1/contexts/shop", headers=api.admin).json()["last_error"] is None
    assert api.http.get("/v1/contexts/shop/suggestions", headers=api.client).status_code == 200


def test_a_failure_the_store_cannot_record_still_backs_off(sqlite_api, monkeypatch):
    sqlite_api.ready_context("shop")
    sqlite_api.store.request_iteration("shop")

    def down(*_args):
        raise StorageError("the database is unreachable")

    monkeypatch.setattr(sqlite_api.store, "record_iteration_failure", down)
    failing = Worker(sqlite_api.store, lambda _spec: ScriptedLLM(_refuse), "w1", backoff_seconds=30)
    assert failing.run_once()
    context = sqlite_api.store.get_context("shop")
    assert context.iteration == 0 and context.lease_until == pytest.approx(sqlite_api.db.clock.now + 30)


def _refuse(_request):
    raise TransportError("connection refused")


def test_unusable_output_is_retried_with_fresh_samples(sqlite_api):
    sqlite_api.ready_context("shop")
    sqlite_api.store.request_iteration("shop")
    broken = threading.Event()
    broken.set()

    def responder(request):
        return "I cannot help with that." if broken.is_set() else canned_responder(request)

    runner = Worker(sqlite_api.store, lambda _spec: ScriptedLLM(responder), "w1", backoff_seconds=1)
    assert runner.run_once()
    assert sqlite_api.store.get_context("shop").iteration == 0
    usage = sqlite_api.store.llm_usage("shop")
    # the explore item was re-asked up to the bound, then the ParseError stopped the iteration
    assert [(u.iteration, u.calls) for u in usage if u.iteration == 1] == [(1, ItemWriter.max_attempts)]
    broken.clear()
    sqlite_api.db.clock.advance(2)
    assert runner.run_once()  # a replay of the cached answers would fail again
    assert sqlite_api.store.get_context("shop").iteration == 1


def test_two_workers_never_run_one_context_at_once(tmp_path, monkeypatch):
    store = open_store(str(tmp_path / "workers.db"))  # the real clock: leases expire in real time
    contexts = [f"ctx-{n}" for n in range(6)]
    config = {"topic": "Cookware Sets", "llm": "scripted", "schedule": {"every_n_impressions": 0}}
    for context_id in contexts:
        store.create_context(context_id, config)
    active, overlaps, lock = Counter(), [], threading.Lock()
    real = worker_module.run_iteration

    def tracked(store_, context, backend, attempt=0):
        with lock:
            active[context.context_id] += 1
            if active[context.context_id] > 1:
                overlaps.append(context.context_id)
        try:
            time.sleep(0.005)
            return real(store_, context, backend, attempt)
        finally:
            with lock:
                active[context.context_id] -= 1

    monkeypatch.setattr(worker_module, "run_iteration", tracked)
    metrics = [ServiceMetrics(), ServiceMetrics()]
    workers = [
        Worker(store, worker_id=f"w{n}", lease_seconds=2, poll_seconds=0.01, metrics=m) for n, m in enumerate(metrics)
    ]
    threads = [threading.Thread(target=w.run_forever) for w in workers]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(4):
            if round_:
                for context_id in contexts:
                    store.request_iteration(context_id)
            deadline = time.monotonic() + 20
            while any(store.get_context(c).iteration != round_ for c in contexts):
                assert time.monotonic() < deadline, [store.get_context(c).iteration for c in contexts]
                time.sleep(0.01)
    finally:
        for w in workers:
            w.stop()
        for thread in threads:
            thread.join(10)
        store.close()
    assert overlaps == []
    totals = Counter()
    for m in metrics:
        totals.update(outcomes(m))
    assert totals["applied"] == 24 and totals["failed"] == 0 and totals["conflict"] == 0


class Gate:
    """A backend whose calls wait until ``go`` is set."""

    def __init__(self):
        self.entered, self.go = threading.Event(), threading.Event()

    def factory(self, _spec):
        def responder(request):
            self.entered.set()
            assert self.go.wait(10)
            return canned_responder(request)

        return ScriptedLLM(responder, backend_id="gated")  # its own cache keys: every call reaches it


def test_a_lost_lease_abandons_the_iteration(sqlite_api):
    sqlite_api.ready_context("shop")
    sqlite_api.store.request_iteration("shop")
    gate, metrics = Gate(), ServiceMetrics()
    slow = Worker(sqlite_api.store, gate.factory, "slow", lease_seconds=0.3, metrics=metrics)
    thread = threading.Thread(target=slow.run_once)
    thread.start()
    assert gate.entered.wait(10)
    sqlite_api.db.clock.advance(1)  # the slow worker's lease runs out; its heartbeat notices
    time.sleep(0.3)
    assert Worker(sqlite_api.store, worker_id="fast").run_once()
    assert sqlite_api.store.get_context("shop").iteration == 1
    time.sleep(0.3)  # heartbeats every 0.1 s: the slow worker knows before its next call
    gate.go.set()
    thread.join(10)
    assert outcomes(metrics)["interrupted"] == 1
    assert sqlite_api.store.get_context("shop").iteration == 1 and len(sqlite_api.store.pool_history("shop")) == 2


def test_stop_abandons_before_the_next_llm_call_and_frees_the_context(sqlite_api):
    sqlite_api.ready_context("shop")
    sqlite_api.store.request_iteration("shop")
    gate = Gate()
    stopping = Worker(sqlite_api.store, gate.factory, "stopping")
    thread = threading.Thread(target=stopping.run_forever)
    thread.start()
    assert gate.entered.wait(10)
    stopping.stop()
    gate.go.set()
    thread.join(10)
    context = sqlite_api.store.get_context("shop")
    assert (context.iteration, context.leased_by, context.lease_until) == (0, None, None)
    assert sqlite_api.iterate()  # free at once, and still requested


def test_background_worker_of_the_app_makes_the_initial_pool(tmp_path):
    from fastapi.testclient import TestClient

    from clickloop.service.app import create_app
    from clickloop.service.keys import create_key

    url = f"sqlite:///{tmp_path / 'app.db'}"
    with TestClient(create_app(url, run_worker=True, worker_poll_seconds=0.02, env={})) as http:
        store = http.app.state.store
        admin = {"Authorization": f"Bearer {create_key(store, 'admin')[1]}"}
        body = {"topic": "Cookware Sets", "llm": "scripted"}
        assert http.put("/v1/contexts/shop", json=body, headers=admin).status_code == 201
        deadline = time.monotonic() + 10
        while (response := http.get("/v1/contexts/shop/suggestions", headers=admin)).status_code == 503:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert response.status_code == 200 and len(response.json()["items"]) == 3
        # the worker counts the iteration after it has recorded LLM use and released the lease, which can
        # be after the new pool is already served
        while 'clickloop_iterations_total{outcome="applied"} 1.0' not in (text := http.get("/metrics").text):
            assert time.monotonic() < deadline, text
            time.sleep(0.02)


def test_guided_ee_runs_in_the_service_on_real_clicks(api):
    api.ready_context(
        "shop",
        strategy="guided-ee",
        strategy_options={"min_impressions": 5, "drop_confidence": 0.6},
        schedule={"every_n_impressions": 0, "min_impressions_per_item": 0},
    )
    pool = [e.item.item_id for e in api.store.live_pool("shop").entries]
    favourite = pool[0]
    for n in range(60):  # users click one item whenever it is shown
        shown = api.suggest()
        ids = [item["item_id"] for item in shown["items"]]
        if favourite in ids:
            api.post_events(
                [{"idempotency_key": f"k{n}", "impression_id": shown["impression_id"], "item_id": favourite}]
            )
    assert api.http.post("/v1/contexts/shop/iterations", headers=api.admin).status_code == 202
    assert api.iterate()
    after = api.store.live_pool("shop")
    assert after.iteration == 1 and len(after.entries) == 5
    assert favourite in {e.item.item_id for e in after.entries}  # the clicked item is never the one dropped
    new = [e.item for e in after.entries if e.item.item_id not in pool]
    assert new and all(dict(i.provenance.notes)["strategy"] == "guided-ee" for i in new)
    exploit = [i for i in new if i.provenance.origin.value == "exploit"]
    assert exploit and dict(exploit[0].provenance.notes)["target"] == favourite
