"""The Store contract: every test runs against SQLite and PostgreSQL (see conftest.py)."""

from __future__ import annotations

import math
import multiprocessing
import secrets
import threading
from collections.abc import Sequence

import pytest

from clickloop.core.items import Item, ItemOrigin, ItemStats, Provenance
from clickloop.errors import ConflictError, NotFoundError, StorageError, ValidationError
from clickloop.llm.base import Completion, RoleUsage, TokenChoice
from clickloop.service.store import (
    ApiKeyRole,
    EventIn,
    EventStatus,
    ItemStatus,
    IterationFailure,
    RejectReason,
    Store,
    open_store,
    secret_sha256,
)
from clickloop.service.store import migrate as migrate_module
from clickloop.service.store.queries import feedback

CTX = "cookware"
CONFIG = {"topic": "Cookware Sets", "domain": "ecommerce", "pool_size": 3, "k_shown": 2}
TEXTS = ("Is it durable?", "Is it nonstick?", "Is it oven safe?")
MIGRATIONS = [(1, "init"), (2, "iteration_errors"), (3, "impressions_gate")]


def make_items(texts: Sequence[str], iteration: int = 0, origin: ItemOrigin = ItemOrigin.INITIAL, parents=()):
    return [Item.create(CTX, t, Provenance(origin, iteration, "init", "1", tuple(parents))) for t in texts]


def seeded(store: Store, config: dict | None = None, texts: Sequence[str] = TEXTS) -> list[Item]:
    """A context with the initial pool IP_0 applied."""
    store.create_context(CTX, config or CONFIG)
    items = make_items(texts)
    store.apply_iteration(CTX, None, items, [])
    return items


def show(store: Store, items: Sequence[Item], iteration: int = 0, ttl: float = 60.0) -> str:
    impression_id = secrets.token_urlsafe(16)
    store.record_impression(CTX, iteration, impression_id, [i.item_id for i in items], ttl)
    return impression_id


def stats(store: Store) -> dict[str, ItemStats]:
    return {entry.item.item_id: entry.stats for entry in store.live_pool(CTX).entries}


# -- migrations ---------------------------------------------------------------------------------------


def test_migrations_are_recorded_and_idempotent(backend):
    assert isinstance(backend.store, Store)
    assert backend.store.applied_migrations() == MIGRATIONS
    again = backend.open()
    assert again.applied_migrations() == MIGRATIONS
    assert backend.sql("SELECT COUNT(*) FROM schema_migrations") == [(len(MIGRATIONS),)]


def test_a_v1_database_is_migrated_with_its_data(backend, monkeypatch):
    url = backend.fresh_url()
    shipped = migrate_module.load_migrations
    monkeypatch.setattr(migrate_module, "load_migrations", lambda dialect: shipped(dialect)[:1])
    old = backend.open(url)
    assert old.applied_migrations() == [(1, "init")]
    old.close()
    # the queries of today expect v2: write a v1 row as clickloop 1 did
    backend.sql(
        "INSERT INTO contexts (context_id, config, created_at, updated_at, iteration) "
        f"VALUES ('{CTX}', '{{\"topic\": \"Pans\"}}', 1.0, 2.0, 4), "
        '(\'served\', \'{"topic": "Pots", "serving": "thompson"}\', 1.0, 2.0, 0)',
        url,
    )
    monkeypatch.undo()
    upgraded = backend.open(url)
    assert upgraded.applied_migrations() == MIGRATIONS
    context = upgraded.get_context(CTX)
    assert (context.config, context.iteration, context.updated_at, context.last_error) == (
        {"topic": "Pans"},
        4,
        2.0,
        None,
    )
    assert upgraded.record_iteration_failure(CTX, "TransportError: connection refused") == 1
    # v3 reads each context's serving: Thompson-served contexts gate the schedule on the mean
    assert backend.sql("SELECT context_id, impressions_gate FROM contexts ORDER BY context_id", url) == [
        (CTX, "every"),
        ("served", "mean"),
    ]


def test_concurrent_openers_apply_migrations_once(backend):
    url = backend.fresh_url()
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def opener() -> None:
        barrier.wait()
        try:
            backend.open(url)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert backend.open(url).applied_migrations() == MIGRATIONS


def test_a_newer_schema_is_refused(backend):
    backend.sql("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)")
    with pytest.raises(StorageError, match="newer than this clickloop"):
        backend.open()


# -- contexts -----------------------------------------------------------------------------------------


def test_context_create_get_update_list(backend, store):
    created = store.create_context(CTX, {**CONFIG, "schedule": {"every_n_impressions": 10}})
    assert created.iteration is None and created.impressions_total == 0
    assert created.schedule.every_n_impressions == 10
    assert store.get_context(CTX) == created
    backend.clock.advance(5)
    updated = store.update_context(CTX, {**CONFIG, "k_shown": 3})
    assert updated.config["k_shown"] == 3 and updated.updated_at == created.updated_at + 5
    assert updated.created_at == created.created_at and updated.schedule.every_n_impressions == 0
    store.create_context("another", CONFIG)
    assert [c.context_id for c in store.list_contexts()] == ["another", CTX]


def test_unknown_context_is_not_found(store):
    with pytest.raises(NotFoundError, match="no context 'nope'"):
        store.get_context("nope")
    with pytest.raises(NotFoundError, match="no context 'nope'"):
        store.update_context("nope", CONFIG)
    with pytest.raises(NotFoundError, match="no context 'nope'"):
        store.request_iteration("nope")


@pytest.mark.parametrize(
    ("context_id", "config", "match"),
    [
        ("bad id", CONFIG, "context_id .* must be 1-100 characters"),
        ("-leading", CONFIG, "context_id"),
        ("x" * 101, CONFIG, "context_id"),
        (CTX, ["not", "a", "mapping"], "config must be a JSON object"),
        (CTX, {"topic": object()}, "JSON-serialisable"),
        (CTX, {"schedule": {"every_n_impressions": -1}}, r"every_n_impressions \(-1\) must be >= 0"),
        (CTX, {"schedule": {"every_minutes": math.inf}}, "every_minutes must be a finite number"),
        (CTX, {"schedule": {"every_n_impressions": "10"}}, "every_n_impressions must be an integer"),
        (CTX, {"schedule": {"every_hour": 1}}, r"unknown keys \['every_hour'\]"),
        (CTX, {"schedule": 5}, "config.schedule must be an object"),
    ],
)
def test_invalid_contexts_are_refused(store, context_id, config, match):
    with pytest.raises(ValidationError, match=match):
        store.create_context(context_id, config)
    assert store.list_contexts() == []


def test_duplicate_context_is_refused(store):
    store.create_context(CTX, CONFIG)
    with pytest.raises(ConflictError, match="already exists"):
        store.create_context(CTX, CONFIG)


# -- impressions --------------------------------------------------------------------------------------


def test_impressions_count_per_item_and_context(store):
    a, b, c = seeded(store)
    show(store, [a, b])
    show(store, [a, c])
    assert stats(store) == {a.item_id: ItemStats(2, 0), b.item_id: ItemStats(1, 0), c.item_id: ItemStats(1, 0)}
    context = store.get_context(CTX)
    assert (context.impressions_total, context.impressions_since_iteration) == (2, 2)
    assert store.metrics().impressions == 2


@pytest.mark.parametrize(
    ("impression_id", "pick", "ttl", "match"),
    [
        ("short", [0, 1], 60, "impression_id .* must be 16-128 URL-safe characters"),
        ("x" * 15 + "!", [0, 1], 60, "URL-safe"),
        (None, [], 60, "item_ids .* must be a non-empty list"),
        (None, [0, 0], 60, "must not repeat"),
        (None, [0, 9], 60, "are not all in pool IP_0"),
        (None, [0, 1], 0, r"ttl_seconds \(0\) must be a finite number > 0"),
        (None, [0, 1], math.nan, "ttl_seconds"),
    ],
)
def test_invalid_impressions_are_refused_and_count_nothing(store, impression_id, pick, ttl, match):
    items = seeded(store)
    ghost = make_items(["Not in the pool?"])[0]
    chosen = [(items + [ghost] * 7)[k].item_id for k in pick]
    with pytest.raises(ValidationError, match=match):
        store.record_impression(CTX, 0, impression_id or secrets.token_urlsafe(16), chosen, ttl)
    assert store.get_context(CTX).impressions_total == 0
    assert all(s == ItemStats() for s in stats(store).values())


def test_impression_of_unknown_context_or_reused_id(store):
    items = seeded(store)
    with pytest.raises(NotFoundError, match="no context 'nope'"):
        store.record_impression("nope", 0, secrets.token_urlsafe(16), [items[0].item_id], 60)
    impression_id = show(store, items[:1])
    with pytest.raises(ValidationError, match="already used"):
        store.record_impression(CTX, 0, impression_id, [items[1].item_id], 60)
    assert stats(store)[items[1].item_id] == ItemStats()


# -- events -------------------------------------------------------------------------------------------


def test_event_outcomes_and_counters(store):
    a, b, c = seeded(store)
    shown = show(store, [a, b])
    store.create_context("other", CONFIG)
    outcomes = store.record_events(
        CTX,
        [
            EventIn("k1", shown, a.item_id, dwell_ms=1200),
            EventIn("k2", shown, a.item_id),  # second click on the same shown item
            EventIn("k4", secrets.token_urlsafe(16), a.item_id),  # unknown impression
            EventIn("k5", shown, b.item_id),
        ],
    )
    assert [o.label for o in outcomes] == ["accepted", "duplicate", "rejected:unknown_impression", "accepted"]
    assert stats(store) == {a.item_id: ItemStats(1, 1), b.item_id: ItemStats(1, 1), c.item_id: ItemStats()}
    assert store.event_counts(CTX) == {"accepted": 2, "duplicate": 1, "rejected:unknown_impression": 1}
    # an impression of this context is unknown to another one
    assert store.record_events("other", [EventIn("k9", shown, a.item_id)])[0].reason is RejectReason.UNKNOWN_IMPRESSION
    assert store.metrics().clicks == 2 and store.metrics().event_outcomes["rejected:unknown_impression"] == 2


def _nothing_recorded(store: Store) -> None:
    assert store.event_counts() == {} and store.metrics().clicks == 0
    assert all(s.clicks == 0 for s in stats(store).values())


def test_a_key_repeated_inside_a_batch_refuses_it_whole(store):
    a, b, c = seeded(store)
    shown = show(store, [a, b])
    batch = [EventIn("k1", shown, a.item_id), EventIn("k2", shown, b.item_id), EventIn("k1", shown, b.item_id)]
    with pytest.raises(ValidationError, match=r"events\.2\.idempotency_key \('k1'\) repeats the key of events\.0") as e:
        store.record_events(CTX, batch)
    assert e.value.field == "events.2.idempotency_key"
    _nothing_recorded(store)
    assert [o.label for o in store.record_events(CTX, batch[:2])] == ["accepted", "accepted"]


def test_a_click_on_an_item_not_shown_refuses_the_batch_whole(store):
    a, b, c = seeded(store)
    shown = show(store, [a, b])
    ghost = make_items(["Never in any pool?"])[0]
    for bad in (c.item_id, ghost.item_id):  # in the pool but not shown; no item at all
        batch = [EventIn("k1", shown, a.item_id), EventIn("k2", shown, b.item_id), EventIn("k3", shown, bad)]
        with pytest.raises(ValidationError, match=rf"events\.2\.item_id \('{bad}'\) was not shown in impression") as e:
            store.record_events(CTX, batch)
        assert e.value.field == "events.2.item_id" and "Nothing was stored" in str(e.value)
        _nothing_recorded(store)


def test_only_known_live_impressions_check_what_they_showed(backend, store):
    a, b, c = seeded(store)
    store.create_context("other", CONFIG)
    shown, expiring = show(store, [a, b]), show(store, [a, b], ttl=10)
    assert store.record_events(CTX, [EventIn("k1", shown, a.item_id)])[0].status is EventStatus.ACCEPTED
    backend.clock.advance(10)
    outcomes = store.record_events(
        CTX,
        [
            EventIn("k1", shown, c.item_id),  # a key seen in an earlier batch: its retry, whatever it names
            EventIn("k2", expiring, c.item_id),  # expired: a race, counted
            EventIn("k3", secrets.token_urlsafe(16), c.item_id),  # unknown impression
        ],
    )
    assert [o.label for o in outcomes] == ["duplicate", "rejected:expired_impression", "rejected:unknown_impression"]
    other = store.record_events("other", [EventIn("k4", shown, c.item_id)])  # another context's impression
    assert other[0].label == "rejected:unknown_impression"
    assert stats(store)[c.item_id] == ItemStats()


def test_retried_batch_counts_once_even_after_expiry(backend, store):
    a, b, _ = seeded(store)
    shown = show(store, [a, b], ttl=10)
    batch = [EventIn("k1", shown, a.item_id), EventIn("k2", shown, b.item_id)]
    assert [o.status for o in store.record_events(CTX, batch)] == [EventStatus.ACCEPTED] * 2
    assert [o.status for o in store.record_events(CTX, batch)] == [EventStatus.DUPLICATE] * 2
    backend.clock.advance(60)
    assert [o.status for o in store.record_events(CTX, batch)] == [EventStatus.DUPLICATE] * 2
    assert stats(store)[a.item_id] == ItemStats(1, 1)
    assert store.event_counts(CTX) == {"accepted": 2, "duplicate": 4}


def test_idempotency_keys_are_per_client(store):
    a, b, _ = seeded(store)
    shown = show(store, [a, b])
    first = store.record_events(CTX, [EventIn("same", shown, a.item_id)], client_id="client-1")
    second = store.record_events(CTX, [EventIn("same", shown, b.item_id)], client_id="client-2")
    assert [first[0].status, second[0].status] == [EventStatus.ACCEPTED, EventStatus.ACCEPTED]


def test_expired_impression_is_rejected(backend, store):
    a, b, _ = seeded(store)
    shown = show(store, [a, b], ttl=30)
    backend.clock.advance(30)
    outcome = store.record_events(CTX, [EventIn("k1", shown, a.item_id)])[0]
    assert outcome.label == "rejected:expired_impression"
    assert stats(store)[a.item_id] == ItemStats(1, 0)
    assert store.purge_impressions(backend.clock.now + 1) == 1
    assert store.record_events(CTX, [EventIn("k2", shown, a.item_id)])[0].reason is RejectReason.UNKNOWN_IMPRESSION


def _fail_on_third_event(monkeypatch, failure: str) -> None:
    original = feedback._insert_event
    calls = []

    def flaky(tx, *args):
        calls.append(1)
        if len(calls) == 3:
            if failure == "database":
                tx.run("INSERT INTO no_such_table VALUES (1)")
            raise RuntimeError("crash in the middle of a batch")
        return original(tx, *args)

    monkeypatch.setattr(feedback, "_insert_event", flaky)


@pytest.mark.parametrize(("failure", "error"), [("database", StorageError), ("crash", RuntimeError)])
def test_a_failing_batch_stores_nothing(store, monkeypatch, failure, error):
    items = seeded(store)
    shown = show(store, items[:2])
    other = show(store, items[1:])
    batch = [
        EventIn("k1", shown, items[0].item_id),
        EventIn("k2", shown, items[1].item_id),
        EventIn("k3", other, items[2].item_id),
    ]
    _fail_on_third_event(monkeypatch, failure)
    with pytest.raises(error):
        store.record_events(CTX, batch)
    assert store.event_counts(CTX) == {}
    assert all(s.clicks == 0 for s in stats(store).values())
    monkeypatch.undo()
    assert [o.status for o in store.record_events(CTX, batch)] == [EventStatus.ACCEPTED] * 3


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: EventIn("", "i" * 16, "a"), "idempotency_key must be a string of 1-200"),
        (lambda: EventIn("k" * 201, "i" * 16, "a"), "idempotency_key"),
        (lambda: EventIn("k", "i" * 16, ""), "item_id"),
        (lambda: EventIn("k", "i" * 16, "a", dwell_ms=-1), "dwell_ms must be an integer"),
        (lambda: EventIn("k", "i" * 16, "a", dwell_ms=True), "dwell_ms"),
        (lambda: EventIn("k", "i" * 16, "a", dwell_ms=1.5), "dwell_ms"),  # type: ignore[arg-type]
    ],
)
def test_invalid_events_cannot_be_built(make, match):
    with pytest.raises(ValidationError, match=match):
        make()


def test_invalid_batches_are_refused(store):
    seeded(store)
    with pytest.raises(ValidationError, match="at most 1000 events"):
        store.record_events(CTX, [EventIn(f"k{i}", "i" * 16, "a") for i in range(1001)])
    with pytest.raises(ValidationError, match=r"events\[0\] must be an EventIn"):
        store.record_events(CTX, [{"idempotency_key": "k"}])  # type: ignore[list-item]
    with pytest.raises(NotFoundError, match="no context 'nope'"):
        store.record_events("nope", [EventIn("k", "i" * 16, "a")])
    assert store.event_counts() == {}


# -- schedule and leases ------------------------------------------------------------------------------


def test_what_is_due(backend, store):
    clock = backend.clock
    store.create_context(CTX, {**CONFIG, "schedule": {"every_n_impressions": 2, "every_minutes": 10}})
    assert store.claim_due("w1", 30).context_id == CTX  # no pool yet: due at once
    items = make_items(TEXTS)
    store.apply_iteration(CTX, None, items, [])
    store.release_lease(CTX, "w1")
    assert store.claim_due("w1", 30) is None
    show(store, items[:2])
    assert store.claim_due("w1", 30) is None
    show(store, items[1:])
    assert store.claim_due("w1", 30).context_id == CTX  # 2 impressions since the pool was applied
    store.release_lease(CTX, "w1")
    store.apply_iteration(CTX, 0, [], [])
    clock.advance(9 * 60)
    assert store.claim_due("w1", 30) is None
    clock.advance(60)
    assert store.claim_due("w1", 30).context_id == CTX  # 10 minutes since the last iteration


def test_min_impressions_per_item_holds_the_schedule_back(store):
    config = {**CONFIG, "schedule": {"every_n_impressions": 1, "min_impressions_per_item": 1}}
    items = seeded(store, config)
    show(store, items[:2])
    assert store.claim_due("w1", 30) is None  # the third item has not been shown yet
    show(store, items[2:])
    assert store.claim_due("w1", 30).context_id == CTX


def test_thompson_serving_gates_the_schedule_on_the_mean_impressions(store):
    # Thompson sampling starves an item it is sure is worse; the per-item gate would then never open
    config = {**CONFIG, "serving": "thompson", "schedule": {"every_n_impressions": 1, "min_impressions_per_item": 2}}
    a, b, _ = seeded(store, config)
    show(store, [a, b])
    show(store, [a, b])
    assert store.claim_due("w1", 30) is None  # mean 4/3 < 2
    show(store, [a, b])
    assert store.claim_due("w1", 30).context_id == CTX  # mean 6/3 = 2: due, with the third never shown
    store.release_lease(CTX, "w1")
    store.update_context(CTX, {**config, "serving": "uniform"})  # back to the per-item gate
    assert store.claim_due("w1", 30) is None


def test_updating_a_context_ends_its_back_off_but_not_a_worker_lease(store):
    store.create_context(CTX, CONFIG)
    assert store.claim_due("w1", 30).context_id == CTX
    store.release_lease(CTX, "w1", hold_seconds=600)  # the worker's back-off after a failed iteration
    assert store.claim_due("w1", 30) is None
    store.update_context(CTX, {**CONFIG, "llm": "scripted"})  # an admin fixes the cause
    assert store.claim_due("w2", 30).context_id == CTX  # retried at once
    store.update_context(CTX, CONFIG)  # while w2 holds the lease, it keeps it
    assert store.claim_due("w3", 30) is None
    assert store.get_context(CTX).leased_by == "w2"


def test_pending_review_holds_the_schedule_back_but_not_a_request(store):
    a, b, c = seeded(store, {**CONFIG, "schedule": {"every_n_impressions": 1}})
    store.apply_iteration(CTX, 0, make_items(["Pending?"], 1), [a.item_id], pending=True)
    show(store, [b, c], iteration=1)
    assert store.claim_due("w1", 30) is None
    store.request_iteration(CTX)
    assert store.claim_due("w1", 30).context_id == CTX


def test_requested_iteration_is_due_until_applied(store):
    seeded(store)
    assert store.claim_due("w1", 30) is None
    store.request_iteration(CTX)
    claimed = store.claim_due("w1", 30)
    assert claimed.iteration_requested_at is not None and claimed.leased_by == "w1"
    store.release_lease(CTX, "w1")
    applied = store.apply_iteration(CTX, 0, [], [])
    assert applied.iteration == 1 and applied.iteration_requested_at is None
    assert store.claim_due("w1", 30) is None


def test_initial_only_request_is_a_no_op_once_the_pool_exists(store):
    seeded(store)  # IP_0 applied, e.g. by a worker between a suggestion's read and its request
    store.request_iteration(CTX, initial_only=True)
    assert store.get_context(CTX).iteration_requested_at is None
    assert store.claim_due("w1", 30) is None
    with pytest.raises(NotFoundError):
        store.request_iteration("nope", initial_only=True)


def test_initial_only_request_marks_a_context_without_pool(store):
    store.create_context(CTX, CONFIG)
    store.request_iteration(CTX, initial_only=True)
    assert store.get_context(CTX).iteration_requested_at is not None


def test_lease_renew_release_and_expiry(backend, store):
    store.create_context(CTX, CONFIG)
    lease = store.claim_due("w1", 30)
    assert lease.lease_until == backend.clock.now + 30
    assert store.claim_due("w2", 30) is None
    assert store.renew_lease(CTX, "w1", 60) and not store.renew_lease(CTX, "w2", 60)
    backend.clock.advance(61)
    assert not store.renew_lease(CTX, "w1", 60)  # ran out
    assert store.claim_due("w2", 30).leased_by == "w2"
    store.release_lease(CTX, "w1")  # not the holder: no effect
    assert store.get_context(CTX).leased_by == "w2"
    store.release_lease(CTX, "w2", hold_seconds=20)
    assert store.claim_due("w1", 30) is None  # backing off
    backend.clock.advance(20)
    assert store.claim_due("w1", 30).leased_by == "w1"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.claim_due("", 30), "worker_id"),
        (lambda s: s.claim_due("w1", 0), r"lease_seconds \(0\) must be > 0"),
        (lambda s: s.claim_due("w1", math.inf), "lease_seconds"),
        (lambda s: s.renew_lease(CTX, "w1", -1), "lease_seconds"),
        (lambda s: s.release_lease(CTX, "w1", hold_seconds=-5), "hold_seconds"),
    ],
)
def test_invalid_lease_arguments(store, call, match):
    with pytest.raises(ValidationError, match=match):
        call(store)


def _claim_all(store: Store, worker_id: str, barrier, claimed: list[str]) -> None:
    barrier.wait()
    while (context := store.claim_due(worker_id, 300)) is not None:
        claimed.append(context.context_id)


def test_threads_never_claim_the_same_context(backend, store):
    for k in range(12):
        store.create_context(f"ctx-{k}", CONFIG)
    barrier = threading.Barrier(4)
    claimed: list[str] = []
    threads = [threading.Thread(target=_claim_all, args=(backend.open(), f"w{n}", barrier, claimed)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(f"ctx-{k}" for k in range(12))


def _claim_in_process(url: str, worker_id: str, barrier, queue) -> None:
    store = open_store(url)
    claimed: list[str] = []
    try:
        _claim_all(store, worker_id, barrier, claimed)
    finally:
        store.close()
        queue.put(claimed)


def test_processes_never_claim_the_same_context(backend, store):
    for k in range(20):
        store.create_context(f"ctx-{k}", CONFIG)
    spawn = multiprocessing.get_context("spawn")
    barrier, queue = spawn.Barrier(2), spawn.Queue()
    workers = [spawn.Process(target=_claim_in_process, args=(backend.url, f"p{n}", barrier, queue)) for n in range(2)]
    for p in workers:
        p.start()
    results = [queue.get(timeout=120) for _ in workers]
    for p in workers:
        p.join(timeout=30)
    assert [p.exitcode for p in workers] == [0, 0]
    assert sorted(results[0] + results[1]) == sorted(f"ctx-{k}" for k in range(20))


# -- iterations and review ----------------------------------------------------------------------------


def test_apply_iteration_drops_adds_and_resets(store):
    a, b, c = seeded(store)
    show(store, [a, b])
    new = make_items(["Is it dishwasher safe?"], iteration=1, origin=ItemOrigin.EXPLOIT, parents=[a.item_id])
    context = store.apply_iteration(CTX, 0, new, [b.item_id])
    assert (context.iteration, context.impressions_since_iteration) == (1, 0)
    pool = store.live_pool(CTX)
    assert pool.iteration == 1 and pool.item_ids == (a.item_id, c.item_id, new[0].item_id)
    assert pool.entries[0].stats == ItemStats() and pool.entries[0].total == ItemStats(1, 0)
    by_id = {row.item_id: row for row in store.list_items(CTX)}
    assert (by_id[b.item_id].status, by_id[b.item_id].dropped_at) == (ItemStatus.DROPPED, 0)
    assert by_id[new[0].item_id].iteration_created == 1
    assert by_id[new[0].item_id].item.provenance.parents == (a.item_id,)


def test_stale_apply_changes_nothing(store):
    a, b, _ = seeded(store)
    store.apply_iteration(CTX, 0, make_items(["Winner?"], 1), [a.item_id])
    before = (store.get_context(CTX), store.pool_history(CTX), store.list_items(CTX))
    with pytest.raises(ConflictError, match="at iteration 1, not the expected 0"):
        store.apply_iteration(CTX, 0, make_items(["Loser?"], 1), [b.item_id])
    with pytest.raises(ConflictError, match="not the expected None"):
        store.apply_iteration(CTX, None, make_items(["Loser?"]), [])
    assert (store.get_context(CTX), store.pool_history(CTX), store.list_items(CTX)) == before


@pytest.mark.parametrize(
    ("new_texts", "dropped", "match"),
    [
        ([], ["nope"], r"cannot drop \['nope'\]: not in the live pool"),
        (["Same?", "same?"], [], "new_items repeat an item id"),
        ([TEXTS[0]], [], "already in context"),
        ([], [0, 0], "dropped_item_ids repeat an id"),
    ],
)
def test_invalid_iterations_are_refused(store, new_texts, dropped, match):
    items = seeded(store)
    ids = [items[d].item_id if isinstance(d, int) else d for d in dropped]
    with pytest.raises(ValidationError, match=match):
        store.apply_iteration(CTX, 0, make_items(new_texts, 1), ids)
    assert store.get_context(CTX).iteration == 0 and len(store.list_items(CTX)) == 3


def test_unknown_context_cannot_iterate(store):
    with pytest.raises(NotFoundError, match="no context"):
        store.apply_iteration("nope", None, make_items(["A?"]), [])


def test_review_queue(store):
    a, b, c = seeded(store)
    new = make_items(["Pending one?", "Pending two?"], iteration=1, origin=ItemOrigin.EXPLORE)
    store.apply_iteration(CTX, 0, new, [a.item_id], pending=True)
    assert store.live_pool(CTX).item_ids == (b.item_id, c.item_id)
    assert [r.item_id for r in store.list_items(CTX, ItemStatus.PENDING)] == [n.item_id for n in new]
    assert store.metrics().pending_items == 2
    store.approve_items(CTX, [new[1].item_id])
    store.reject_items(CTX, [new[0].item_id])
    assert store.live_pool(CTX).item_ids == (b.item_id, c.item_id, new[1].item_id)
    assert [r.item_id for r in store.list_items(CTX, ItemStatus.REJECTED)] == [new[0].item_id]
    assert store.list_items(CTX, ItemStatus.PENDING) == []
    with pytest.raises(ValidationError, match="not pending review"):
        store.approve_items(CTX, [new[0].item_id])
    with pytest.raises(NotFoundError, match=r"no items \['nope'\]"):
        store.reject_items(CTX, ["nope"])


def test_initial_pool_awaiting_review_is_empty_until_approved(store):
    store.create_context(CTX, CONFIG)
    items = make_items(TEXTS)
    store.apply_iteration(CTX, None, items, [], pending=True)
    assert store.live_pool(CTX).entries == ()
    store.approve_items(CTX, [i.item_id for i in items])
    assert store.live_pool(CTX).item_ids == tuple(i.item_id for i in items)


def test_history_and_lineage_read_back(store):
    a, b, c = seeded(store)
    store.record_events(CTX, [EventIn("k0", show(store, [a, b]), a.item_id)])
    d = make_items(["Does it warp?"], 1, ItemOrigin.EXPLORE, parents=[a.item_id, c.item_id])[0]
    store.apply_iteration(CTX, 0, [d], [b.item_id])
    shown = show(store, [a, d], iteration=1)
    store.record_events(CTX, [EventIn("k1", shown, a.item_id), EventIn("k2", shown, d.item_id)])
    first, second = store.pool_history(CTX)
    assert [e.stats for e in first.entries] == [ItemStats(1, 1), ItemStats(1, 0), ItemStats()]
    assert [e.stats for e in second.entries] == [ItemStats(1, 1), ItemStats(), ItemStats(1, 1)]
    assert second.entries[0].total == ItemStats(2, 2) and first.entries[1].status is ItemStatus.DROPPED
    assert second.created_at >= first.created_at
    lineage = {row.item_id: row.item.provenance for row in store.list_items(CTX)}
    assert lineage[d.item_id] == d.provenance and lineage[a.item_id].origin is ItemOrigin.INITIAL
    store.create_context("empty", CONFIG)
    with pytest.raises(NotFoundError, match="has no pool yet"):
        store.live_pool("empty")


def test_iteration_failures_are_recorded_and_cleared_by_an_applied_iteration(backend, store):
    store.create_context(CTX, CONFIG)
    assert store.get_context(CTX).last_error is None
    assert store.record_iteration_failure(CTX, "ModelError: the model file is missing") == 1
    backend.clock.advance(5)
    assert store.record_iteration_failure(CTX, "ParseError: " + "x" * 5000) == 2
    failure = store.get_context(CTX).last_error
    assert failure == IterationFailure("ParseError: " + "x" * 1987 + "…", backend.clock.now, 2)
    assert len(failure.message) == 2000
    assert store.list_contexts()[0].last_error == failure and store.claim_due("w1", 30).last_error == failure
    store.release_lease(CTX, "w1")
    with pytest.raises(ConflictError):
        store.apply_iteration(CTX, 0, [], [])
    assert store.get_context(CTX).last_error == failure  # a refused iteration clears nothing
    store.apply_iteration(CTX, None, make_items(TEXTS), [])
    assert store.get_context(CTX).last_error is None
    assert store.record_iteration_failure(CTX, "TransportError: connection refused") == 1  # counted anew


@pytest.mark.parametrize(
    ("context_id", "message", "error", "match"),
    [
        ("nope", "TransportError: down", NotFoundError, "no context 'nope'"),
        (CTX, "", ValidationError, "message .* must be a non-empty string"),
        (CTX, "   ", ValidationError, "message"),
        (CTX, None, ValidationError, "message"),
    ],
)
def test_invalid_iteration_failures_are_refused(store, context_id, message, error, match):
    store.create_context(CTX, CONFIG)
    with pytest.raises(error, match=match):
        store.record_iteration_failure(context_id, message)
    assert store.get_context(CTX).last_error is None


# -- LLM cache and usage ------------------------------------------------------------------------------


def test_llm_cache_get_put(store):
    answer = Completion(
        "Score: 9",
        prompt_tokens=12,
        completion_tokens=3,
        seconds=1.5,
        tokens=(TokenChoice("9", -0.1, (("9", -0.1), ("8", -math.inf))),),
        model="m",
    )
    assert store.llm_cache_get("k") is None
    store.llm_cache_put("k", "scripted", answer)
    hit = store.llm_cache_get("k")
    assert hit is not None and hit.cached and hit.seconds == 0.0
    assert hit.text == "Score: 9" and hit.tokens[0].top[1] == ("8", -math.inf)
    store.llm_cache_put("k", "scripted", Completion("Score: 3"))
    assert store.llm_cache_get("k").text == "Score: 3"


def test_llm_usage_accumulates_per_iteration_and_role(store):
    seeded(store)
    store.add_llm_usage(CTX, 0, "generator", RoleUsage(calls=2, prompt_tokens=100, completion_tokens=20, seconds=1.5))
    store.add_llm_usage(CTX, 0, "generator", RoleUsage(calls=1, cache_hits=1, prompt_tokens=50))
    store.add_llm_usage(CTX, 0, "judge", RoleUsage(calls=5))
    rows = store.llm_usage(CTX)
    assert [(r.role, r.calls, r.cache_hits, r.prompt_tokens, r.seconds) for r in rows] == [
        ("generator", 3, 1, 150, 1.5),
        ("judge", 5, 0, 0, 0.0),
    ]
    with pytest.raises(NotFoundError):
        store.add_llm_usage("nope", 0, "judge", RoleUsage())


# -- API keys -----------------------------------------------------------------------------------------


def test_api_keys_are_stored_by_hash_only(backend, store):
    secret = secrets.token_urlsafe(32)
    created = store.create_api_key("ops", secret_sha256(secret), ApiKeyRole.ADMIN, label="operator")
    assert store.find_api_key(secret_sha256(secret)) == created
    assert store.find_api_key(secret_sha256("wrong")) is None
    assert secret not in backend.raw_text()
    assert secret_sha256(secret) in backend.raw_text()  # the check above looks where keys are


def test_api_key_scope_and_revocation(backend, store):
    secret = secrets.token_urlsafe(32)
    key = store.create_api_key("shop", secret_sha256(secret), ApiKeyRole.CLIENT, [CTX, "b-ctx", CTX])
    assert key.context_ids == ("b-ctx", CTX) and key.allows(CTX) and not key.allows("other")
    backend.clock.advance(1)
    revoked = store.revoke_api_key("shop")
    assert revoked.revoked_at == backend.clock.now and not revoked.allows(CTX)
    assert store.find_api_key(secret_sha256(secret)) is None
    assert [k.key_id for k in store.list_api_keys()] == ["shop"]
    with pytest.raises(NotFoundError, match="no API key 'nope'"):
        store.revoke_api_key("nope")


@pytest.mark.parametrize(
    ("key_id", "secret_hash", "role", "scope", "match"),
    [
        pytest.param("k", "plain-secret", "client", None, "64 lower-case hex digits", id="secret-not-hashed"),
        pytest.param("k", "A" * 64, "client", None, "secret_hash", id="upper-case-hash"),
        pytest.param("k", "a" * 64, "root", None, r"role \('root'\) must be one of", id="unknown-role"),
        pytest.param("k", "a" * 64, "admin", ["c"], "only client keys can be scoped", id="scoped-admin"),
        pytest.param("k", "a" * 64, "client", [], "context_ids must not be empty", id="empty-scope"),
        pytest.param("k", "a" * 64, "client", "ctx", "not one string", id="scope-string"),
        pytest.param("bad key", "a" * 64, "client", None, "key_id", id="bad-key-id"),
    ],
)
def test_invalid_api_keys_are_refused(store, key_id, secret_hash, role, scope, match):
    store.create_api_key("dup", "c" * 64, ApiKeyRole.CLIENT)
    with pytest.raises(ValidationError, match=match):
        store.create_api_key(key_id, secret_hash, role, scope)
    assert [k.key_id for k in store.list_api_keys()] == ["dup"]


@pytest.mark.parametrize(("key_id", "secret_hash"), [("dup", "b" * 64), ("other", "c" * 64)], ids=["id", "secret"])
def test_duplicate_api_keys_conflict(store, key_id, secret_hash):
    store.create_api_key("dup", "c" * 64, ApiKeyRole.CLIENT)
    with pytest.raises(ConflictError, match="exists"):
        store.create_api_key(key_id, secret_hash, ApiKeyRole.CLIENT)
    assert [k.key_id for k in store.list_api_keys()] == ["dup"]
