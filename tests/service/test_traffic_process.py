"""``clickloop simulate-traffic`` against a real ``clickloop serve`` process: the whole online loop (serve ->
click -> scheduled iteration -> new pool), reconciled with what the service counted."""

import json
import os
import signal
import subprocess

from test_serve_process import CLI, Server, clickloop, wait_for

SCHEDULE = {"every_n_impressions": 40, "min_impressions_per_item": 10}
CONTEXT = {"topic": "Cookware Sets", "llm": "scripted", "strategy": "explore-exploit", "schedule": SCHEDULE}


def test_simulate_traffic_runs_the_online_loop(tmp_path):
    db = f"sqlite:///{tmp_path / 'service.db'}"
    server = Server(tmp_path, db)
    try:
        admin = clickloop(tmp_path, "keys", "create", "--role", "admin", "--db", db)
        with server.client(admin) as http:
            assert http.put("/v1/contexts/shop", json=CONTEXT).status_code == 201
            wait_for(lambda: http.get("/v1/contexts/shop").json()["iteration"] == 0)
            out = tmp_path / "traffic"
            args = ["simulate-traffic", "--url", server.url, "--context", "shop", "--judge", "length-words"]
            args += ["--sessions", "400", "--rate", "100", "--seed", "3", "--out", str(out)]
            env = {**os.environ, "CLICKLOOP_KEY": admin}
            done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            assert "shop (Cookware Sets):" in done.stdout and "400 sessions" in done.stdout
            detail = http.get("/v1/contexts/shop").json()

        result = json.loads((out / "traffic.json").read_text())
        rows = result["contexts"]["shop"]["iterations"]
        # an iteration the worker applied after the run's last look has no impressions yet
        history, later = detail["history"][: len(rows)], detail["history"][len(rows) :]
        assert all(pool["stats"]["impressions"] == 0 for pool in later)
        # the service ran several iterations on the run's clicks, and the pool changed
        assert len(rows) >= 3 and [row["iteration"] for row in rows] == list(range(len(rows)))
        first, last = ({item["item_id"] for item in pool["items"]} for pool in (history[0], history[-1]))
        assert first != last
        # what the simulator was told is what the service stored, iteration by iteration
        assert result["sessions"] == 400 == detail["impressions_total"]
        assert result["clicks"] == result["click_outcomes"]["accepted"] == detail["event_counts"]["accepted"]
        for row, pool in zip(rows, history, strict=True):
            assert row["iteration"] == pool["iteration"]
            assert row["clicks"] == pool["stats"]["clicks"] == row["server"]["clicks"]
            assert row["sessions"] * 3 == pool["stats"]["impressions"]
            assert row["ctr"] == (row["clicks"] / row["sessions"] if row["sessions"] else None)
            assert row["pool"] == [item["text"] for item in pool["items"]]
        assert (out / "traffic.png").read_bytes()[:4] == b"\x89PNG"
    finally:
        assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert "Traceback" not in server.log.read_text()
