"""``kill -9`` of a worker or a server mid-work, on SQLite and PostgreSQL: no acknowledged event is lost
and no iteration is half applied; after the dead worker's lease runs out another worker applies the
iteration, exactly once.

The killed worker is this file run as a script (see ``doomed_worker``): a real
:class:`~clickloop.service.worker.Worker` in its own process that stops for good at a chosen point of an
iteration and writes a marker file, so that the test kills it exactly there.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_serve_process import CLI, Server, clickloop, wait_for
from test_serve_process import test_kill_9_mid_traffic_loses_no_acknowledged_event as kill_9_mid_traffic

from clickloop.service.store import EventIn, EventStatus, ItemStatus, Store, open_store
from clickloop.service.worker import Worker

CTX = "shop"
CONFIG = {
    "topic": "Cookware Sets",
    "llm": "scripted",
    "strategy": "explore-exploit",  # IP_0 -> IP_1: two LLM calls (explore, exploit), two items dropped
    "schedule": {"every_n_impressions": 0},
}
DOOMED, LEASE_SECONDS = "doomed", 1.0
KILL_POINTS = {
    "llm": "in the second LLM call, after the first answer was cached",
    "apply": "inside apply_iteration's transaction, after its last statement, before the commit",
}


# -- the killed worker (a separate process) --------------------------------------------------------


def doomed_worker(url: str, marker: Path, kill_point: str) -> None:
    """Run one iteration of the due context and stop for good at ``kill_point``, after writing ``marker``."""
    from clickloop.llm.scripted import ScriptedLLM, canned_responder
    from clickloop.service.store.queries import iterations

    assert kill_point in KILL_POINTS, kill_point
    logging.basicConfig(level="INFO")  # into the log that start_doomed_worker shows on failure

    def halt() -> None:
        marker.write_text(kill_point)
        time.sleep(600)

    calls = 0

    def responder(request: Any) -> str:
        nonlocal calls
        calls += 1
        if kill_point == "llm" and calls == 2:
            halt()
        return canned_responder(request)

    if kill_point == "apply":
        real_apply = iterations.apply

        def apply_then_halt(*args: Any) -> Any:
            applied = real_apply(*args)
            halt()
            return applied

        iterations.apply = apply_then_halt  # SqlStore.apply_iteration looks it up inside its transaction

    # backend id "scripted", as the context's own: the cache keys are those a `clickloop worker` uses
    store = open_store(url)
    worker = Worker(store, lambda _spec: ScriptedLLM(responder), DOOMED, lease_seconds=LEASE_SECONDS)
    assert worker.run_once(), "nothing was due"
    raise SystemExit(f"the iteration finished without reaching the kill point {kill_point!r}")


def start_doomed_worker(url: str, tmp_path: Path, kill_point: str) -> tuple[subprocess.Popen[bytes], Path]:
    marker, log = tmp_path / f"halted-{kill_point}", tmp_path / f"doomed-{kill_point}.log"
    with log.open("w") as out:
        args = [sys.executable, __file__, url, str(marker), kill_point]
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=_env())
    deadline = time.monotonic() + 20
    while not marker.exists():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)
    return process, log


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CLICKLOOP_")}


# -- what the store holds ----------------------------------------------------------------------------


def serve_and_click(store: Store, n: int, prefix: str) -> list[EventIn]:
    """``n`` impressions of the live pool with one click each; the clicks, all acknowledged as accepted."""
    pool = store.live_pool(CTX)
    events = []
    for k in range(n):
        shown = [pool.item_ids[(k + j) % len(pool.item_ids)] for j in range(3)]
        impression_id = secrets.token_urlsafe(16)
        store.record_impression(CTX, pool.iteration, impression_id, shown, 600)
        events.append(EventIn(f"{prefix}{k}", impression_id, shown[k % 3]))
    outcomes = store.record_events(CTX, events, client_id="site")
    assert [o.status for o in outcomes] == [EventStatus.ACCEPTED] * n
    return events


def snapshot(store: Store) -> dict[str, Any]:
    context = store.get_context(CTX)
    return {
        "iteration": context.iteration,
        "impressions": (context.impressions_total, context.impressions_since_iteration),
        "requested": context.iteration_requested_at,
        "pools": store.pool_history(CTX),
        "items": store.list_items(CTX),
        "events": store.event_counts(CTX),
    }


def rows_of_iteration(db: Any, iteration: int) -> dict[str, int]:
    """Rows that belong to IP_``iteration``, read with raw SQL (the store's reads might hide some)."""
    queries = {
        "iterations": f"SELECT COUNT(*) FROM iterations WHERE context_id = '{CTX}' AND iteration = {iteration}",
        "pool_items": f"SELECT COUNT(*) FROM pool_items WHERE context_id = '{CTX}' AND iteration = {iteration}",
        "items": f"SELECT COUNT(*) FROM items WHERE context_id = '{CTX}' AND iteration_created = {iteration}",
        "dropped": f"SELECT COUNT(*) FROM items WHERE context_id = '{CTX}' AND dropped_at = {iteration - 1}",
    }
    return {name: int(db.sql(query)[0][0]) for name, query in queries.items()}


def pools(state: dict[str, Any]) -> list[tuple[int, tuple[str, ...]]]:
    return [(pool.iteration, pool.item_ids) for pool in state["pools"]]


def counters(pool: Any) -> list[tuple[Any, ...]]:
    return [(entry.item, entry.stats, entry.total) for entry in pool.entries]


def all_stored(store: Store, events: list[EventIn]) -> bool:
    """Whether every event is in the store: a replay of each one is a duplicate."""
    replay = store.record_events(CTX, events, client_id="site")
    return all(o.status is EventStatus.DUPLICATE for o in replay)


def run_rescuer(url: str, tmp_path: Path, until: Any) -> str:
    """Run a real ``clickloop worker`` until ``until()`` holds, then a little longer, then stop it; its log."""
    log = tmp_path / "rescuer.log"
    args = ["worker", "--db", url, "--worker-id", "rescuer", "--lease-seconds", "5", "--poll-seconds", "0.05"]
    with log.open("w") as out:
        rescuer = subprocess.Popen([*CLI, *args], stdout=out, stderr=subprocess.STDOUT, env=_env(), cwd=tmp_path)
    try:
        wait_for(until, 20)
        time.sleep(0.3)  # had the step left the context due, the next iteration would start now
    finally:
        rescuer.send_signal(signal.SIGTERM)
        code = rescuer.wait(10)
    assert code == 0, log.read_text()
    return log.read_text()


# -- tests -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kill_point", list(KILL_POINTS))
def test_worker_killed_mid_iteration_applies_nothing_and_another_worker_finishes_it(backend, tmp_path, kill_point):
    store = backend.store
    store.create_context(CTX, CONFIG)
    setup = Worker(store, worker_id="setup")
    assert setup.run_once() and store.get_context(CTX).iteration == 0
    setup.close()
    acknowledged = serve_and_click(store, 12, "before-")
    store.request_iteration(CTX)
    start = snapshot(store)

    doomed, doomed_log = start_doomed_worker(backend.url, tmp_path, kill_point)
    try:
        if kill_point == "llm":  # serving and clicks go on while a worker iterates
            acknowledged += serve_and_click(store, 6, "during-")
        before = snapshot(store)
    finally:
        doomed.kill()  # SIGKILL
        doomed.wait(10)
    assert doomed.returncode == -signal.SIGKILL, doomed_log.read_text()

    # the live pool, its iteration, items and counters are exactly as before; nothing of IP_1 exists
    assert snapshot(store) == before
    assert before["items"] == start["items"] and pools(before) == pools(start)
    assert before["iteration"] == 0 and before["requested"] is not None
    assert rows_of_iteration(backend, 1) == {"iterations": 0, "pool_items": 0, "items": 0, "dropped": 0}
    assert before["events"] == {"accepted": len(acknowledged)} and all_stored(store, acknowledged)
    # the dead worker holds its lease until it runs out (the test's clock, behind the real one, is not there)
    assert store.get_context(CTX).leased_by == DOOMED and store.claim_due("other", 60) is None

    log = run_rescuer(backend.url, tmp_path, until=lambda: store.get_context(CTX).iteration == 1)
    assert log.count(f"{CTX} is at iteration") == 1 and "Traceback" not in log, log

    # IP_1 applied exactly once: two items of IP_0 dropped, two new ones added, IP_0 itself untouched
    after = snapshot(store)
    iterations = backend.sql(f"SELECT iteration FROM iterations WHERE context_id = '{CTX}' ORDER BY iteration")
    assert iterations == [(0,), (1,)] and [pool.iteration for pool in after["pools"]] == [0, 1]
    assert rows_of_iteration(backend, 1) == {"iterations": 1, "pool_items": 5, "items": 2, "dropped": 2}
    # IP_0's items and counters are as they were (two of its items are now marked dropped, as they should)
    assert counters(after["pools"][0]) == counters(before["pools"][0])
    dropped = {row.item_id for row in after["items"] if row.status is ItemStatus.DROPPED}
    new = [row for row in after["items"] if row.iteration_created == 1]
    assert [row.status for row in new] == [ItemStatus.LIVE] * 2
    kept = tuple(i for i in before["pools"][0].item_ids if i not in dropped)
    assert after["pools"][1].item_ids == kept + tuple(row.item_id for row in new)
    assert after["requested"] is None and store.get_context(CTX).leased_by is None
    # the rescuer replayed what the dead worker had generated (the dead worker's LLM use died with it)
    usage = [(u.iteration, u.role, u.calls, u.cache_hits) for u in store.llm_usage(CTX) if u.iteration == 1]
    assert usage == [(1, "generator", 2, 1 if kill_point == "llm" else 2)]
    # every acknowledged click is still counted, on the pool it was shown in
    assert after["events"]["accepted"] == len(acknowledged) and all_stored(store, acknowledged)
    assert sum(entry.stats.clicks for entry in after["pools"][0].entries) == len(acknowledged)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_kill_9_mid_traffic_loses_no_acknowledged_event_on_postgres(backend, tmp_path):
    """test_serve_process's kill -9 story (SQLite there) with ``clickloop serve --db postgresql://...``."""
    server = Server(tmp_path, backend.url)
    try:
        admin = clickloop(tmp_path, "keys", "create", "--role", "admin", "--db", backend.url)
        client = clickloop(tmp_path, "keys", "create", "--role", "client", "--context", CTX, "--db", backend.url)
        kill_9_mid_traffic((server, admin, client), tmp_path)
    finally:
        server.stop(signal.SIGKILL)


if __name__ == "__main__":
    doomed_worker(sys.argv[1], Path(sys.argv[2]), sys.argv[3])
