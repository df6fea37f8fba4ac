"""The load generator of ``bench_service_load.py``: a closed-loop asyncio HTTP/1.1 client in its own process.

    python benchmarks/_loadgen.py --url http://127.0.0.1:8000 --key clk_... --contexts 1000 \
        --concurrency 16 --duration 20 --out gen.json

Each of ``--concurrency`` connections (keep-alive) loops: GET the suggestions of a random context; then,
with probability ``--click-probability``, POST a batch clicking 1 to 3 of the shown items (distinct
idempotency keys). Now and then (``--retry-probability``) it sends its previous batch again, as a client
retrying after a lost answer: every event of it must come back ``duplicate``. Latency is measured per
request type from writing the request to reading the whole response. The client is written on raw
asyncio streams (uvloop when installed) rather than httpx so that it costs the 2-core machine as little
CPU as possible; its own CPU time is reported.

Writes ``--out`` (JSON): per request type the count, status counts, latency percentiles and transport
errors; the event outcomes the server acknowledged; and the idempotency keys it acknowledged as
``accepted`` (the reconciliation checks each of them is stored).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import time
from dataclasses import dataclass, field
from typing import Any

try:
    import orjson

    loads = orjson.loads
except ImportError:  # pragma: no cover - the service extra's environment has orjson only optionally
    loads = json.loads

SUGGEST, EVENTS = "suggestions", "events"
PERCENTILES = (50, 90, 99, 99.9)


@dataclass
class Tally:
    """What one request type saw."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0

    def add(self, status: int, seconds: float) -> None:
        self.latencies_ms.append(seconds * 1e3)
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def summary(self, duration: float) -> dict[str, Any]:
        values = sorted(self.latencies_ms)
        out: dict[str, Any] = {
            "requests": len(values),
            "per_s": round(len(values) / duration, 1),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "transport_errors": self.transport_errors,
        }
        for p in PERCENTILES:
            out[f"p{p:g}_ms"] = round(percentile(values, p), 2)
        out["mean_ms"] = round(sum(values) / len(values), 2) if values else None
        out["max_ms"] = round(values[-1], 2) if values else None
        return out


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (NaN when empty)."""
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


class Connection:
    """One keep-alive HTTP/1.1 connection; the server answers with Content-Length (uvicorn does)."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {key}\r\nHost: {host}:{port}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"{method} {path} HTTP/1.1\r\n{self.auth}"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        payload = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Shared:
    """State of the whole run (one event loop: no locks needed)."""

    contexts: list[str]
    click_probability: float
    retry_probability: float
    deadline: float
    tallies: dict[str, Tally] = field(default_factory=lambda: {SUGGEST: Tally(), EVENTS: Tally()})
    outcomes: dict[str, int] = field(default_factory=dict)
    accepted_keys: list[str] = field(default_factory=list)
    retried_batches: int = 0


async def session_loop(shared: Shared, connection: Connection, worker: int, seed: int) -> None:
    rng = random.Random(seed * 1_000_003 + worker)
    previous: tuple[str, bytes, list[str], bool] | None = None
    n = 0
    while time.perf_counter() < shared.deadline:
        if previous is not None and rng.random() < shared.retry_probability:
            path, body, keys, acknowledged = previous
            shared.retried_batches += 1
            await post_events(shared, connection, path, body, keys, retry_of_acknowledged=acknowledged)
            continue
        context_id = rng.choice(shared.contexts)
        started = time.perf_counter()
        try:
            status, payload = await connection.request("GET", f"/v1/contexts/{context_id}/suggestions")
        except (OSError, asyncio.IncompleteReadError, ValueError):
            shared.tallies[SUGGEST].transport_errors += 1
            connection.close()
            continue
        shared.tallies[SUGGEST].add(status, time.perf_counter() - started)
        if status != 200 or rng.random() >= shared.click_probability:
            continue
        shown = loads(payload)
        items = shown["items"]
        clicked = rng.sample(items, min(len(items), rng.choice((1, 1, 1, 2, 3))))
        keys = [f"w{worker}-s{seed}-{n}-{k}" for k in range(len(clicked))]
        n += 1
        events = [
            {"idempotency_key": key, "impression_id": shown["impression_id"], "item_id": item["item_id"]}
            for key, item in zip(keys, clicked, strict=True)
        ]
        path = f"/v1/contexts/{context_id}/events"
        body = json.dumps({"events": events}, separators=(",", ":")).encode()
        acknowledged = await post_events(shared, connection, path, body, keys, retry_of_acknowledged=False)
        previous = (path, body, keys, acknowledged)


async def post_events(
    shared: Shared, connection: Connection, path: str, body: bytes, keys: list[str], retry_of_acknowledged: bool
) -> bool:
    """POST one batch; whether the server acknowledged it (answered 200)."""
    started = time.perf_counter()
    try:
        status, payload = await connection.request("POST", path, body)
    except (OSError, asyncio.IncompleteReadError, ValueError):
        shared.tallies[EVENTS].transport_errors += 1
        connection.close()
        return False
    shared.tallies[EVENTS].add(status, time.perf_counter() - started)
    if status != 200:
        return False
    for key, result in zip(keys, loads(payload)["results"], strict=True):
        outcome = result["outcome"]
        shared.outcomes[outcome] = shared.outcomes.get(outcome, 0) + 1
        if outcome == "accepted":
            shared.accepted_keys.append(key)
            if retry_of_acknowledged:  # acknowledged once already: counting it again would be a bug
                shared.outcomes["double_counted"] = shared.outcomes.get("double_counted", 0) + 1
    return True


async def run(args: argparse.Namespace) -> dict[str, Any]:
    host, _, port = args.url.removeprefix("http://").rstrip("/").partition(":")
    contexts = [f"{args.prefix}{i:04d}" for i in range(args.contexts)]
    connections = [Connection(host, int(port or 80), args.key) for _ in range(args.concurrency)]
    for connection in connections:  # connect (and warm up) before the clock starts
        await connection.request("GET", "/healthz")
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    shared = Shared(contexts, args.click_probability, args.retry_probability, started + args.duration)
    await asyncio.gather(
        *(session_loop(shared, connection, worker, args.seed) for worker, connection in enumerate(connections))
    )
    duration = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    for connection in connections:
        connection.close()
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    total = sum(len(t.latencies_ms) for t in shared.tallies.values())
    everything = sorted(v for t in shared.tallies.values() for v in t.latencies_ms)
    return {
        "concurrency": args.concurrency,
        "duration_s": round(duration, 2),
        "requests": total,
        "requests_per_s": round(total / duration, 1),
        "all": {f"p{p:g}_ms": round(percentile(everything, p), 2) for p in PERCENTILES},
        "by_type": {name: tally.summary(duration) for name, tally in shared.tallies.items()},
        "event_outcomes": dict(sorted(shared.outcomes.items())),
        "retried_batches": shared.retried_batches,
        "generator_cpu_s": round(cpu, 2),
        "generator_cpu_share": round(cpu / duration, 3),
        "accepted_keys": shared.accepted_keys,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True, help="A client key's secret.")
    parser.add_argument("--contexts", type=int, default=1000)
    parser.add_argument("--prefix", default="ctx-")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--click-probability", type=float, default=0.5)
    parser.add_argument("--retry-probability", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(run(args))
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
