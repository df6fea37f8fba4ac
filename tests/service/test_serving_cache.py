"""The serving path's caches and SQLite writer queueing: what they save, and that they never serve stale data
beyond what they promise (pools: never; API keys: at most ``key_cache_seconds``)."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from clickloop.core.items import Item, ItemOrigin, Provenance
from clickloop.errors import ConfigurationError, StorageError
from clickloop.service.keys import create_key
from clickloop.service.serving_cache import KeyCache, PoolCache
from clickloop.service.settings import resolve_settings
from clickloop.service.store import open_store

CONFIG = {"topic": "Cookware Sets", "k_shown": 2}


def items(texts, iteration=0):
    return [Item.create("shop", t, Provenance(ItemOrigin.INITIAL, iteration)) for t in texts]


class CountingStore:
    """A store whose ``live_pool`` reads are counted."""

    def __init__(self, store):
        self.store = store
        self.reads = 0

    def live_pool(self, context_id):
        self.reads += 1
        return self.store.live_pool(context_id)


def test_live_pool_size_follows_iterations_and_approvals(store):
    store.create_context("shop", CONFIG)
    assert store.get_context("shop").live_pool_size == 0
    store.apply_iteration("shop", None, items(["a?", "b?", "c?"]), [])
    assert store.get_context("shop").live_pool_size == 3
    pending = items(["d?", "e?"], 1)
    store.apply_iteration("shop", 0, pending, [items(["a?"])[0].item_id], pending=True)
    assert (store.get_context("shop").iteration, store.get_context("shop").live_pool_size) == (1, 2)
    store.approve_items("shop", [pending[0].item_id])
    assert store.get_context("shop").live_pool_size == 3
    assert [row.live_pool_size for row in store.list_contexts()] == [3]


def test_pool_cache_reads_a_pool_once_per_iteration_and_size(store):
    store.create_context("shop", CONFIG)
    store.apply_iteration("shop", None, items(["a?", "b?", "c?"]), [])
    counting, cache = CountingStore(store), PoolCache()
    first = cache.live_pool(counting, store.get_context("shop"))
    assert cache.live_pool(counting, store.get_context("shop")) is first and counting.reads == 1
    pending = items(["d?"], 1)
    store.apply_iteration("shop", 0, pending, [], pending=True)
    after = cache.live_pool(counting, store.get_context("shop"))
    assert (after.iteration, len(after.items), counting.reads) == (1, 3, 2)
    store.approve_items("shop", [pending[0].item_id])
    approved = cache.live_pool(counting, store.get_context("shop"))
    assert approved.items[-1] == (pending[0].item_id, "d?") and counting.reads == 3
    assert (cache.hits, cache.misses) == (1, 3)


def test_pool_cache_keeps_at_most_max_contexts(store):
    cache = PoolCache(max_contexts=2)
    for name in ("a", "b", "c"):
        store.create_context(name, CONFIG)
        store.apply_iteration(name, None, [Item.create(name, "q?", Provenance(ItemOrigin.INITIAL, 0))], [])
        cache.live_pool(store, store.get_context(name))
    assert list(cache._pools) == ["b", "c"]
    with pytest.raises(ValueError, match="max_contexts"):
        PoolCache(0)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_key_cache_trusts_a_found_key_for_its_seconds_only(store):
    clock = Clock()
    cache = KeyCache(1.0, clock=clock)
    row, secret = create_key(store, "client")
    assert cache.find(store, secret) == row and cache.cached(secret) == row
    store.revoke_api_key(row.key_id)
    clock.now += 0.99
    assert cache.find(store, secret) == row  # the documented window: at most ``seconds``
    clock.now += 0.02
    assert cache.cached(secret) is None and cache.find(store, secret) is None


def test_key_cache_does_not_cache_unknown_secrets_or_with_zero_seconds(store):
    cache = KeyCache(1.0, clock=Clock())
    assert cache.find(store, "clk_not_yet") is None
    row, secret = create_key(store, "admin")
    assert cache.find(store, secret) == row  # a key made after a failed try works at once
    uncached = KeyCache(0)
    assert uncached.find(store, secret) == row and uncached.cached(secret) is None
    store.revoke_api_key(row.key_id)
    assert uncached.find(store, secret) is None


@pytest.mark.parametrize("seconds", [-1, 61, True, "1"])
def test_key_cache_seconds_must_be_in_range(seconds):
    with pytest.raises(ValueError, match="key cache seconds"):
        KeyCache(seconds)


@pytest.mark.parametrize(
    ("argument", "env", "expected"),
    [
        (None, {}, 0.0),
        (None, {"CLICKLOOP_KEY_CACHE_SECONDS": "2.5"}, 2.5),
        (1.0, {"CLICKLOOP_KEY_CACHE_SECONDS": "5"}, 1.0),
    ],
)
def test_key_cache_seconds_precedence(argument, env, expected):
    assert resolve_settings("x.db", env=env, key_cache_seconds=argument).key_cache_seconds == expected


@pytest.mark.parametrize(
    ("argument", "env", "match"),
    [
        (None, {"CLICKLOOP_KEY_CACHE_SECONDS": "soon"}, "must be a number of seconds"),
        (None, {"CLICKLOOP_KEY_CACHE_SECONDS": "nan"}, r"in \[0, 60\]"),
        (-1.0, {}, r"key_cache_seconds \(-1.0\) must be a number of seconds in \[0, 60\]"),
    ],
)
def test_invalid_key_cache_seconds(argument, env, match):
    with pytest.raises(ConfigurationError, match=match):
        resolve_settings("x.db", env=env, key_cache_seconds=argument)


def test_app_with_a_key_cache_refuses_a_revoked_key_within_its_seconds(tmp_path):
    from fastapi.testclient import TestClient

    from clickloop.service.app import create_app
    from clickloop.service.config import ContextConfig

    store = open_store(str(tmp_path / "s.db"))
    try:
        store.create_context("shop", ContextConfig(topic="Cookware Sets", llm="scripted").model_dump(mode="json"))
        store.apply_iteration("shop", None, items(["a?", "b?", "c?", "d?", "e?"]), [])
        row, secret = create_key(store, "client")
        app = create_app(store=store, run_worker=False, env={}, key_cache_seconds=0.3)
        headers = {"Authorization": f"Bearer {secret}"}
        with TestClient(app) as http:
            assert http.get("/v1/contexts/shop/suggestions", headers=headers).status_code == 200
            store.revoke_api_key(row.key_id)
            time.sleep(0.35)
            assert http.get("/v1/contexts/shop/suggestions", headers=headers).status_code == 401
    finally:
        store.close()


def test_sqlite_writers_of_one_process_take_turns(tmp_path):
    store = open_store(str(tmp_path / "s.db"))
    try:
        store.create_context("shop", CONFIG)
        pool = items(["a?", "b?", "c?"])
        store.apply_iteration("shop", None, pool, [])
        errors: list[BaseException] = []

        def serve(n: int) -> None:
            try:
                for k in range(25):
                    store.record_impression("shop", 0, f"impression-{n:02d}-{k:04d}-x", [pool[k % 3].item_id], 60.0)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=serve, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors and store.get_context("shop").impressions_total == 200
    finally:
        store.close()


def test_sqlite_writer_waits_for_another_process_lock_then_times_out(tmp_path):
    from clickloop.service.store.sqlite import SqliteStore

    path = tmp_path / "s.db"
    store = SqliteStore(path, busy_timeout_s=0.3)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        store.create_context("shop", CONFIG)
        other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
        threading.Timer(0.1, lambda: other.execute("COMMIT")).start()
        started = time.monotonic()
        store.request_iteration("shop")  # retried in short steps: done soon after the lock is free
        assert 0.09 < time.monotonic() - started < 0.25
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageError, match="database is locked"):
            store.request_iteration("shop")
        other.execute("ROLLBACK")
        store.request_iteration("shop")  # the connection is usable again
    finally:
        other.close()
        store.close()


@pytest.mark.parametrize("checkpoint_seconds", [0.05, 0.0])
def test_sqlite_checkpoints_in_the_background(tmp_path, checkpoint_seconds):
    import shutil

    from clickloop.service.store.sqlite import SqliteStore

    path = tmp_path / "s.db"
    store = SqliteStore(path, checkpoint_seconds=checkpoint_seconds)
    try:
        with sqlite3.connect(path) as other:
            other.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the schema is in the file; what follows is not
        store.create_context("shop", CONFIG)
        time.sleep(0.3)
        shutil.copy(path, tmp_path / "copy.db")  # the database file alone, without its WAL
        with sqlite3.connect(tmp_path / "copy.db") as copy:
            in_file = copy.execute("SELECT COUNT(*) FROM contexts").fetchone()[0]
        assert in_file == (1 if checkpoint_seconds else 0)
    finally:
        store.close()
    assert not any(t.name == "clickloop-sqlite-checkpoint" for t in threading.enumerate())
