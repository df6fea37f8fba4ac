"""The online loop raising CTR: ``clickloop simulate-traffic`` against ``clickloop serve``, per iteration.

    .venv/bin/python benchmarks/bench_traffic.py

A fresh service on a SQLite file serves three contexts (Cookware Sets, explore-exploit, an iteration
after every 150 impressions once each item has 30) whose items the ``scripted`` backend writes, so no
model is needed; ``simulate-traffic`` plays the Quality persona judged by the length judge QS-w
(Appendix E: longer questions score higher, up to 15 words), for 6,000 sessions at 300 per second. It
shows the mechanics end to end (serve -> click -> scheduled iteration -> new pool): what the loop keeps
and writes is chosen by the clicks. How far CTR can climb depends on the generator; the scripted one
writes from a fixed set of phrasings, so it is a floor, not the paper's result.

Writes benchmarks/results/traffic_trend.json (per context: CTR and mean score per iteration, first vs
the mean of the last three) and benchmarks/results/traffic_trend.png.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
from _common import RESULTS, machine, save
from bench_service_load import CLI, server

CONTEXTS = ("shop-1", "shop-2", "shop-3")
CONTEXT = {
    "topic": "Cookware Sets",
    "llm": "scripted",
    "strategy": "explore-exploit",
    "schedule": {"every_n_impressions": 150, "min_impressions_per_item": 30},
}
TRAFFIC = ["--judge", "length-words", "--population", "Quality", "--sessions", "6000", "--rate", "300"]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="clickloop-traffic-") as tmp:
        work = Path(tmp)
        db = f"sqlite:///{work / 'service.db'}"
        admin = subprocess.run(
            [*CLI, "keys", "create", "--role", "admin", "--db", db], capture_output=True, text=True, check=True
        ).stdout.strip()
        with server(db, 1, work / "serve.log") as (base, _process):
            headers = {"Authorization": f"Bearer {admin}"}
            for context_id in CONTEXTS:
                httpx.put(f"{base}/v1/contexts/{context_id}", json=CONTEXT, headers=headers).raise_for_status()
            args = ["simulate-traffic", "--url", base, "--out", str(work / "out"), "--seed", "1", *TRAFFIC]
            for context_id in CONTEXTS:
                args += ["--context", context_id]
            env = {**os.environ, "CLICKLOOP_KEY": admin}
            done = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=600)
            if done.returncode != 0:
                raise SystemExit(done.stderr)
        traffic = json.loads((work / "out" / "traffic.json").read_text(encoding="utf-8"))
        shutil.copy(work / "out" / "traffic.png", RESULTS / "traffic_trend.png")
    rows = {}
    for context_id, context in traffic["contexts"].items():
        served = [r for r in context["iterations"] if r["sessions"]]
        last = served[-3:]
        rows[context_id] = {
            "iterations": len(served),
            "ctr": [round(r["ctr"], 4) for r in served],
            "mean_score": [round(r["mean_score"], 3) for r in served],
            "sessions": [r["sessions"] for r in served],
            "first_ctr": served[0]["ctr"],
            "last3_ctr": sum(r["clicks"] for r in last) / sum(r["sessions"] for r in last),
            "first_mean_score": served[0]["mean_score"],
            "last_mean_score": served[-1]["mean_score"],
        }
    result = {
        "benchmark": "traffic_trend",
        "machine": machine(),
        "context": CONTEXT,
        "command": "clickloop simulate-traffic " + " ".join(TRAFFIC),
        "contexts": rows,
        "traffic": {k: traffic[k] for k in ("sessions", "clicks", "ctr", "elapsed_s", "click_outcomes", "users")},
    }
    path = save("traffic_trend", result)
    print("| context | iterations | CTR IP_0 | CTR last 3 | score IP_0 | score last |")
    print("|---|---|---|---|---|---|")
    for context_id, r in rows.items():
        print(
            f"| {context_id} | {r['iterations']} | {100 * r['first_ctr']:.1f}% | {100 * r['last3_ctr']:.1f}% | "
            f"{r['first_mean_score']:.2f} | {r['last_mean_score']:.2f} |"
        )
    print(f"\nwritten: {path} and {RESULTS / 'traffic_trend.png'}", file=sys.stderr)


if __name__ == "__main__":
    main()
