"""Load test of the online service: ``clickloop serve`` on loopback, driven from a separate process.

    .venv/bin/python benchmarks/bench_service_load.py                      # SQLite and PostgreSQL
    .venv/bin/python benchmarks/bench_service_load.py --stores sqlite --profile --wrk

For each store: 1,000 contexts with a live pool of 5 items each are written directly through the store
(no LLM is involved), a client key is made, and ``clickloop serve --workers 2`` starts on a free port
(its update worker threads on, access log off). The load generator (``_loadgen.py``, a closed-loop
asyncio client with a fixed concurrency, in its own process) warms up, then mixes suggestion requests
and click batches against random contexts for ``--duration`` seconds. The server is stopped and the
store is reconciled with what the client was told:

* every suggestion answered 200 is one stored impression (``impressions`` rows, ``impressions_total``);
* every event acknowledged ``accepted`` is stored: its idempotency key is in ``events``, and the accepted
  count equals the stored events, the click counters and ``event_counts``; duplicates likewise.

``--profile`` samples the server processes with py-spy (``pip install py-spy``) during the measured
run and reports where their time goes. ``--wrk`` adds a cross-check with ``wrk`` (``apt-get install
wrk``) running ``service_load.lua`` (suggestion, then a click on its first item). PostgreSQL:
``--pg-url`` (default ``postgresql://postgres@127.0.0.1:5432/test``); the run uses a schema of its own,
dropped at the end.

Writes benchmarks/results/service_load.json. Target (issue 3): >= 1,500 mixed requests/s with p99
under 25 ms on SQLite, nothing lost.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
from _common import machine, save

import clickloop
from clickloop.core.items import Item, ItemOrigin, Provenance
from clickloop.service.config import ContextConfig
from clickloop.service.keys import create_key
from clickloop.service.store import open_store

HERE = Path(__file__).parent
CLI = [sys.executable, "-c", "from clickloop.cli import main; main()"]
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
POOL_TEXTS = (
    "What should buyers know about the warranty of {t}?",
    "How does weight differ between kinds of {t}?",
    "Why does cleaning matter when choosing {t}?",
    "Which details of safety affect {t} most?",
    "How can I compare {t} on price?",
)


# --------------------------------------------------------------------------- store set-up


def populate(url: str, n_contexts: int, prefix: str) -> str:
    """Create the contexts with their initial pool IP_0 through the store; the client key's secret."""
    config = ContextConfig(
        topic="placeholder",
        llm="scripted",
        schedule={"every_n_impressions": 0, "min_impressions_per_item": 0},
    ).model_dump(mode="json")
    store = open_store(url)
    try:
        for i in range(n_contexts):
            context_id = f"{prefix}{i:04d}"
            topic = f"Product line {i}"
            store.create_context(context_id, {**config, "topic": topic})
            items = [
                Item.create(context_id, text.format(t=topic), Provenance(ItemOrigin.MANUAL, 0, template="bench"))
                for text in POOL_TEXTS
            ]
            store.apply_iteration(context_id, None, items, [])
        return create_key(store, "client", label="bench_service_load")[1]
    finally:
        store.close()


@contextmanager
def database(kind: str, pg_url: str) -> Iterator[str]:
    """A fresh store URL of ``kind``, removed afterwards."""
    if kind == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="clickloop-load-"))
        try:
            yield f"sqlite:///{folder / 'service.db'}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    import psycopg

    schema = f"clickloop_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in pg_url else "?"
    try:
        yield f"{pg_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def sql(url: str, query: str) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite:///"):
        import sqlite3
        from contextlib import closing

        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            return conn.execute(query).fetchall()
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


# --------------------------------------------------------------------------- server and generator


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server(url: str, workers: int, log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKLOOP_")}
    args = ["serve", "--db", url, "--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    with log.open("wb") as out:
        process = subprocess.Popen([*CLI, *args], stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        time.sleep(1.0)  # every worker process up
        yield base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def generate(base: str, key: str, args: argparse.Namespace, duration: float, seed: int, out: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        str(HERE / "_loadgen.py"),
        "--url",
        base,
        "--key",
        key,
        "--contexts",
        str(args.contexts),
        "--concurrency",
        str(args.concurrency),
        "--duration",
        str(duration),
        "--click-probability",
        str(args.click_probability),
        "--seed",
        str(seed),
        "--out",
        str(out),
    ]
    subprocess.run(command, check=True, timeout=duration + 120)
    return json.loads(out.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- CPU accounting


def cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU seconds so far of the server's processes (the supervisor and its workers) and of PostgreSQL's."""
    ticks = os.sysconf("SC_CLK_TCK")
    server, postgres = 0.0, 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        pid, ppid, used = int(stat.parent.name), int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks
        if pid == server_pid or ppid == server_pid:
            server += used
        elif name in ("postgres", "postmaster"):
            postgres += used
    return {"server": server, "postgres": postgres}


def cores_used(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    return {name: round((after[name] - before[name]) / seconds, 2) for name in before}


# --------------------------------------------------------------------------- profile (py-spy)


def start_profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy not found: pip install py-spy", file=sys.stderr)
        return None
    command = [spy, "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--rate", "250"]
    command += ["--duration", str(int(seconds)), "--format", "raw", "--output", str(out)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


# where a sample of a server thread was, by its innermost frame (first match wins)
CATEGORIES = (
    ("idle: event loop waiting for requests", ("runners.py:118",)),
    ("idle: thread-pool thread waiting for work", ("threading.py:327", "threading.py:331", "Event.wait")),
    ("thread pool hand-offs", ("threading.py", "queue.py", "anyio/")),
    ("store: SQLite and SQL glue", ("clickloop/service/store/",)),
    ("store: psycopg, pool and PostgreSQL round trips", ("psycopg",)),
    ("uvicorn + httptools: HTTP parsing, socket writes", ("uvicorn/", "httptools")),
    (
        "FastAPI/Starlette/pydantic: routing, dependencies, validation",
        ("fastapi/", "starlette/", "pydantic", "contextlib.py", "inspect.py", "typing.py", "_collections"),
    ),
    ("json encode/decode", ("json/",)),
    ("prometheus counters", ("prometheus_client/",)),
    ("clickloop: routes, auth, caches", ("clickloop/",)),
    ("asyncio", ("asyncio/",)),
)
WORKER_THREADS = ("Runner.run", "WorkerThread.run")  # event loops and the thread pool; not the update worker


def summarize_profile(raw: Path, top: int = 15) -> dict[str, Any]:
    """Where the server processes' request-serving threads (event loops and thread pools) were, by
    category, from py-spy's collapsed stacks; and the innermost lines seen most. A thread waiting for
    SQLite's lock or for PostgreSQL counts in the store's category."""
    by_category: Counter[str] = Counter()
    by_line: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or not any(marker in stack for marker in WORKER_THREADS):
            continue
        n, leaf = int(count), stack.split(";")[-1].strip()
        total += n
        by_line[leaf] += n
        category = next((name for name, marks in CATEGORIES if any(m in leaf for m in marks)), "other")
        by_category[category] += n

    def shares(counter: Counter[str], most: int | None = None) -> list[list[Any]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(most)]

    return {"samples": total, "percent_of_samples": shares(by_category), "top_lines": shares(by_line, top)}


# --------------------------------------------------------------------------- wrk cross-check


def run_wrk(base: str, key: str, args: argparse.Namespace) -> dict[str, Any] | None:
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return None
    env = {**os.environ, "CLICKLOOP_KEY": key, "CONTEXTS": str(args.contexts)}
    command = ["wrk", f"-t{args.concurrency}", f"-c{args.concurrency}", f"-d{int(args.wrk_duration)}s", "--latency"]
    command += ["-s", str(HERE / "service_load.lua"), base]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=args.wrk_duration + 60)
    text = done.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    latency = dict(re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)$", text, re.MULTILINE))
    counts = dict(re.findall(r"^clickloop (\w+)=(\d+)$", text, re.MULTILINE))
    return {
        "command": " ".join(command),
        "requests_per_s": float(rate.group(1)) if rate else None,
        "latency_percentiles": latency,
        "counts": {k: int(v) for k, v in counts.items()},
        "output": text.strip().splitlines(),
    }


# --------------------------------------------------------------------------- reconciliation


def store_totals(url: str, client_key_id: str) -> dict[str, Any]:
    counts = dict(sql(url, "SELECT outcome, SUM(n) FROM event_counts GROUP BY outcome"))
    item_impressions, item_clicks = sql(url, "SELECT SUM(impressions), SUM(clicks) FROM pool_items")[0]
    return {
        "impression_rows": int(sql(url, "SELECT COUNT(*) FROM impressions")[0][0]),
        "impressions_total": int(sql(url, "SELECT SUM(impressions_total) FROM contexts")[0][0]),
        "pool_item_impressions": int(item_impressions),
        "event_rows": {
            str(row[0]) for row in sql(url, f"SELECT idempotency_key FROM events WHERE client_id = '{client_key_id}'")
        },
        "accepted": int(counts.get("accepted", 0)),
        "duplicate": int(counts.get("duplicate", 0)),
        "pool_item_clicks": int(item_clicks),
    }


def reconcile(url: str, runs: list[dict[str, Any]], client_key_id: str) -> dict[str, Any]:
    """What the generator was told (every run, warm-up included) against what the store holds. The
    generator waits for every answer before it stops, so everything must match exactly."""
    served = sum(r["by_type"]["suggestions"]["statuses"].get("200", 0) for r in runs)
    told: Counter[str] = Counter()
    for r in runs:
        told.update(r["event_outcomes"])
    accepted_keys = {k for r in runs for k in r["accepted_keys"]}
    stored = store_totals(url, client_key_id)
    checks = {
        "impressions_answered_200": served,
        "impressions_stored": stored["impression_rows"],
        "impressions_total_counter": stored["impressions_total"],
        "pool_item_impressions": stored["pool_item_impressions"],
        "events_acknowledged_accepted": told["accepted"],
        "events_stored": len(stored["event_rows"]),
        "event_counts_accepted": stored["accepted"],
        "pool_item_clicks": stored["pool_item_clicks"],
        "events_acknowledged_duplicate": told["duplicate"],
        "event_counts_duplicate": stored["duplicate"],
        "acknowledged_accepted_missing_from_store": len(accepted_keys - stored["event_rows"]),
        "double_counted": told["double_counted"],
    }
    checks["ok"] = bool(
        checks["acknowledged_accepted_missing_from_store"] == 0
        and checks["double_counted"] == 0
        and served == stored["impression_rows"] == stored["impressions_total"]
        and told["accepted"] == len(stored["event_rows"]) == stored["accepted"] == stored["pool_item_clicks"]
        and told["duplicate"] == stored["duplicate"]
    )
    return checks


def reconcile_wrk(url: str, counts: dict[str, int], client_key_id: str, connections: int) -> dict[str, Any]:
    """wrk counts its acknowledged answers (its Lua script) but not the requests in flight when it
    stops, which the server may still have stored: at most one per connection may be stored unseen."""
    stored = store_totals(url, client_key_id)
    unseen_impressions = stored["impression_rows"] - counts.get("suggestions_ok", 0)
    unseen_clicks = len(stored["event_rows"]) - counts.get("accepted", 0)
    checks = {
        "impressions_answered_200": counts.get("suggestions_ok", 0),
        "impressions_stored": stored["impression_rows"],
        "events_acknowledged_accepted": counts.get("accepted", 0),
        "events_stored": len(stored["event_rows"]),
        "event_counts_accepted": stored["accepted"],
        "pool_item_clicks": stored["pool_item_clicks"],
        "stored_in_flight_at_stop": unseen_impressions + unseen_clicks,
    }
    checks["ok"] = bool(
        0 <= unseen_impressions
        and 0 <= unseen_clicks
        and unseen_impressions + unseen_clicks <= connections
        and stored["impression_rows"] == stored["impressions_total"]
        and len(stored["event_rows"]) == stored["accepted"] == stored["pool_item_clicks"]
        and counts.get("failed", 0) == 0
    )
    return checks


def key_id_of(url: str) -> str:
    return str(sql(url, "SELECT key_id FROM api_keys WHERE label = 'bench_service_load'")[0][0])


# --------------------------------------------------------------------------- main


@contextmanager
def prepared(kind: str, args: argparse.Namespace) -> Iterator[tuple[str, str, float]]:
    """A fresh database of ``kind`` with the contexts: (url, client secret, seconds it took)."""
    with database(kind, args.pg_url) as url:
        started = time.perf_counter()
        secret = populate(url, args.contexts, "ctx-")
        yield url, secret, time.perf_counter() - started


def run_store(kind: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"store": kind}
    with prepared(kind, args) as (url, secret, setup_s):
        print(f"[{kind}] {args.contexts} contexts ready in {setup_s:.1f} s", file=sys.stderr)
        result["setup_s"] = round(setup_s, 1)
        log = work / f"serve-{kind}.log"
        with server(url, args.workers, log) as (base, process):
            warmup = generate(base, secret, args, args.warmup, 99, work / f"warmup-{kind}.json")
            profiler = start_profile(process.pid, args.duration, work / f"profile-{kind}.txt") if args.profile else None
            cpu_before = cpu_seconds(process.pid)
            measured = generate(base, secret, args, args.duration, 1, work / f"measured-{kind}.json")
            measured["cores_used"] = {
                **cores_used(cpu_before, cpu_seconds(process.pid), measured["duration_s"]),
                "generator": measured["generator_cpu_share"],
            }
            if profiler is not None:
                profiler.wait(60)
                raw = work / f"profile-{kind}.txt"
                if raw.exists():
                    result["profile"] = summarize_profile(raw)
        reconciliation = reconcile(url, [warmup, measured], key_id_of(url))
        measured.pop("accepted_keys")
        result.update({"url": _redact(url), "measured": measured, "reconciliation": reconciliation})
        result["server_errors"] = _errors(log)
    if args.wrk:  # on a database of its own, so that each reconciliation is exact
        with prepared(kind, args) as (url, secret, _):
            with server(url, args.workers, work / f"serve-wrk-{kind}.log") as (base, _process):
                wrk = run_wrk(base, secret, args)
            if wrk is not None:
                wrk["reconciliation"] = reconcile_wrk(url, wrk["counts"], key_id_of(url), args.concurrency)
            result["wrk"] = wrk
    return result


def _errors(log: Path) -> list[str]:
    lines = log.read_text(errors="replace").splitlines()
    return [line for line in lines if "Traceback" in line or "ERROR" in line][:20]


def _redact(url: str) -> str:
    return re.sub(r"options=.*$", "options=-csearch_path%3D<run schema>", url)


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| store | req/s | suggestions p50 / p99 (ms) | events p50 / p99 (ms) | all p99 (ms) | errors | reconciled |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m = r["measured"]
        s, e = m["by_type"]["suggestions"], m["by_type"]["events"]
        errors = (
            sum(n for t in (s, e) for status, n in t["statuses"].items() if not status.startswith("2"))
            + s["transport_errors"]
            + e["transport_errors"]
        )
        rows.append(
            f"| {r['store']} | {m['requests_per_s']:.0f} | {s['p50_ms']} / {s['p99_ms']} | "
            f"{e['p50_ms']} / {e['p99_ms']} | {m['all']['p99_ms']} | {errors} | "
            f"{'yes' if r['reconciliation']['ok'] else 'NO'} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--contexts", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--concurrency", type=int, default=16, help="connections of the load generator")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds per store")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--click-probability", type=float, default=0.5)
    parser.add_argument("--profile", action="store_true", help="sample the server with py-spy")
    parser.add_argument("--wrk", action="store_true", help="also run the wrk cross-check")
    parser.add_argument("--wrk-duration", type=float, default=15.0)
    parser.add_argument("--pg-url", default=os.environ.get("CLICKLOOP_TEST_PG_URL", PG_URL))
    parser.add_argument("--save", default="service_load", help="result name under benchmarks/results/")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="clickloop-bench-") as tmp:
        for kind in args.stores.split(","):
            results.append(run_store(kind.strip(), args, Path(tmp)))
    versions = {p: _version(p) for p in ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "psycopg")}
    settings = {k: v for k, v in vars(args).items() if k not in ("pg_url", "save")}
    out = {"benchmark": "service_load", "machine": machine(), "versions": versions, "settings": settings}
    out["clickloop_source"] = str(Path(clickloop.__file__).parent)  # a baseline runs with PYTHONPATH=<old>/src
    out["results"] = results
    path = save(args.save, out)
    print(table(results))
    print(f"\nwritten: {path}")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
