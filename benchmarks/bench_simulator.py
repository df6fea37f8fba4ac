"""Simulator speed: the vectorised click model against a plain per-session Python loop, same run.

    .venv/bin/python benchmarks/bench_simulator.py

Writes benchmarks/results/simulator.json. Target (issue 2): one iteration of S = 5000 well under 2 ms.
"""

from __future__ import annotations

import time
from importlib import metadata

import numpy as np
from _common import machine, save

from clickloop.simulator.click_model import ClickModel, simulate, simulate_loop

S = 5000


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times))


def main() -> None:
    model = ClickModel()
    rows = []
    for n_personas, n_items in ((1, 5), (3, 5), (5, 20)):
        scores = np.random.default_rng(0).uniform(1, 10, size=(n_personas, n_items))
        rng = np.random.default_rng(1)
        fast_min, fast_med = best_of(lambda s=scores, r=rng: simulate(s, model, S, r), 200)
        slow_min, slow_med = best_of(lambda s=scores, r=rng: simulate_loop(s, model, S, r), 5)
        rows.append(
            {
                "personas": n_personas,
                "pool_size": n_items,
                "sessions": S,
                "vectorised_ms_median": round(fast_med * 1e3, 3),
                "vectorised_ms_best": round(fast_min * 1e3, 3),
                "loop_ms_median": round(slow_med * 1e3, 1),
                "vectorised_sessions_per_s": round(S / fast_med),
                "loop_sessions_per_s": round(S / slow_med),
                "speedup": round(slow_med / fast_med, 1),
            }
        )
    result = {"benchmark": "simulator", "machine": machine(), "numpy": metadata.version("numpy"), "rows": rows}
    path = save("simulator", result)
    print("| personas | pool | S | vectorised ms (median) | loop ms (median) | speed-up |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = [r["personas"], r["pool_size"], r["sessions"], r["vectorised_ms_median"], r["loop_ms_median"]]
        print("| " + " | ".join(map(str, cells)) + f" | {r['speedup']}x |")
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
