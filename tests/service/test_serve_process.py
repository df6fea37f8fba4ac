"""A real ``clickloop serve`` process on loopback with a SQLite file: the online loop end to end, and
``kill -9`` in the middle of traffic."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

CLI = [sys.executable, "-c", "from clickloop.cli import main; main()"]
CONTEXT = {"topic": "Cookware Sets", "llm": "scripted", "schedule": {"every_n_impressions": 0}}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clickloop(cwd: Path, *args: str) -> str:
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class Server:
    """``clickloop serve`` in a subprocess; ``log`` is its stderr."""

    def __init__(self, cwd: Path, db: str) -> None:
        self.cwd, self.db, self.port = cwd, db, free_port()
        self.log = cwd / f"serve-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKLOOP_")}
        with self.log.open("w") as log:
            args = ["serve", "--db", db, "--port", str(self.port), "--log-level", "warning"]
            self.process = subprocess.Popen([*CLI, *args], cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def client(self, secret: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {secret}"}, timeout=10)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(20)


def wait_for(check, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return result


def ready(server: Server, admin: httpx.Client, client: httpx.Client) -> dict:
    assert admin.put("/v1/contexts/shop", json=CONTEXT).status_code == 201
    response = wait_for(lambda: (r := client.get("/v1/contexts/shop/suggestions")).status_code == 200 and r)
    return response.json()


@pytest.fixture
def served(tmp_path):
    """A fresh server with an admin and a client key made by the CLI (while it runs)."""
    db = f"sqlite:///{tmp_path / 'service.db'}"
    server = Server(tmp_path, db)
    admin = clickloop(tmp_path, "keys", "create", "--role", "admin", "--db", db)
    client = clickloop(tmp_path, "keys", "create", "--role", "client", "--context", "shop", "--db", db)
    try:
        yield server, admin, client
    finally:
        server.stop(signal.SIGKILL)


def test_online_loop_end_to_end(served):
    server, admin_secret, client_secret = served
    log = server.log.read_text()
    assert (
        "No admin key exists yet" in log
        and f"clickloop keys create --role admin --label operator --db {server.db}" in log
    )
    with server.client(admin_secret) as admin, server.client(client_secret) as client:
        first = ready(server, admin, client)
        before = {i["item_id"] for i in admin.get("/v1/contexts/shop").json()["pool"]["items"]}
        for n in range(6):
            shown = first if n == 0 else client.get("/v1/contexts/shop/suggestions").json()
            event = {
                "idempotency_key": f"c{n}",
                "impression_id": shown["impression_id"],
                "item_id": shown["items"][0]["item_id"],
            }
            assert client.post("/v1/contexts/shop/events", json={"events": [event]}).json()["accepted"] == 1
        assert admin.post("/v1/contexts/shop/iterations").status_code == 202
        detail = wait_for(lambda: (d := admin.get("/v1/contexts/shop").json())["iteration"] == 1 and d)
        after = {i["item_id"] for i in detail["pool"]["items"]}
        assert len(after) == 5 and len(after - before) == 2
        assert detail["event_counts"] == {"accepted": 6} and detail["impressions_total"] == 6
        assert client.get("/v1/contexts/shop/suggestions").json()["iteration"] == 1
        assert client.get("/v1/contexts").status_code == 403
    # uvicorn shuts down gracefully, then re-raises SIGTERM so that the exit status tells how it ended
    assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert "Traceback" not in server.log.read_text()


def test_kill_9_mid_traffic_loses_no_acknowledged_event(served, tmp_path):
    server, admin_secret, client_secret = served
    with server.client(admin_secret) as admin, server.client(client_secret) as client:
        ready(server, admin, client)
    acknowledged: list[tuple[dict, str]] = []  # (event, outcome) for every batch the server answered
    served_impressions = 0
    stop = threading.Event()

    def traffic() -> None:
        nonlocal served_impressions
        with server.client(client_secret) as client:
            n = 0
            while not stop.is_set():
                try:
                    shown = client.get("/v1/contexts/shop/suggestions").json()
                    served_impressions += 1
                    batch = [
                        {
                            "idempotency_key": f"k{n}-{k}",
                            "impression_id": shown["impression_id"],
                            "item_id": item["item_id"],
                        }
                        for k, item in enumerate(shown["items"][:2])
                    ]
                    n += 1
                    results = client.post("/v1/contexts/shop/events", json={"events": batch}).json()["results"]
                except httpx.TransportError:
                    return
                acknowledged.extend(zip(batch, [r["outcome"] for r in results], strict=True))

    thread = threading.Thread(target=traffic)
    thread.start()
    wait_for(lambda: len(acknowledged) >= 40, 15)
    server.process.kill()  # SIGKILL, mid-traffic
    server.process.wait(10)
    stop.set()
    thread.join(15)
    assert acknowledged and all(outcome == "accepted" for _, outcome in acknowledged)

    restarted = Server(tmp_path, server.db)
    try:
        with restarted.client(admin_secret) as admin, restarted.client(client_secret) as client:
            detail = admin.get("/v1/contexts/shop").json()
            accepted = detail["event_counts"]["accepted"]
            assert accepted >= len(acknowledged)
            assert detail["pool"]["stats"]["clicks"] == accepted
            assert detail["impressions_total"] >= served_impressions
            events = [event for event, _ in acknowledged]
            for start in range(0, len(events), 500):
                replay = client.post("/v1/contexts/shop/events", json={"events": events[start : start + 500]}).json()
                assert {r["outcome"] for r in replay["results"]} == {"duplicate"}  # every one was stored
    finally:
        restarted.stop(signal.SIGKILL)
