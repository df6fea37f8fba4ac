"""What Thompson-sampling serving does to the CTR users see while a pool learns (issue 4, serving).

    .venv/bin/python benchmarks/bench_serving.py

No LLM: it replays the pools that committed runs actually had (``results/table5``: the 1.5B judge, five
strategies; ``results/guided-length-5000``: the length judge). For every iteration of every cell, the
pool's relevance scores are served S sessions by each policy in the same run: ``uniform`` (the
paper's) and ``thompson`` (:class:`~clickloop.simulator.serving.ThompsonServing`, starting from each
item's clicks and impressions of the earlier iterations, as the experiment runner does). Reported per
run and S: mean pool CTR over all pools for both policies, their ratio, and the share of pools where
Thompson's CTR was higher; three seeds each. Writes ``results/serving.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from _common import RESULTS, machine, save

from clickloop.core.items import ItemStats
from clickloop.simulator.click_model import ClickModel
from clickloop.simulator.serving import ThompsonServing, UniformServing, simulate_served

RUNS = ["table5", "guided-length-5000"]
BUDGETS = [300, 1000, 5000]
SEEDS = [1, 2, 3]


def pools(run: Path) -> list[tuple[np.ndarray, list[ItemStats]]]:
    """(scores, prior stats) of every iteration of every cell: scores[j, i] for persona j, item i."""
    out = []
    for cell in sorted(p for p in (run / "cells").glob("*/*/*/seed-*") if p.is_dir()):
        totals: dict[str, ItemStats] = {}
        for path in sorted(cell.glob("iter-*.json")):
            record = json.loads(path.read_text())
            rows = record["pool"]
            personas = list(rows[0]["scores"])
            scores = np.array([[row["scores"][p] for row in rows] for p in personas])
            out.append((scores, [totals.get(row["item_id"], ItemStats()) for row in rows]))
            for row in rows:
                totals[row["item_id"]] = totals.get(row["item_id"], ItemStats()) + ItemStats(
                    row["impressions"], row["clicks"]
                )
    return out


def main() -> None:
    model = ClickModel()
    rows = []
    for name in RUNS:
        replay = pools(RESULTS / name)
        for budget in BUDGETS:
            uniform, thompson = [], []
            for seed in SEEDS:
                for k, (scores, prior) in enumerate(replay):
                    rng = np.random.default_rng([seed, budget, k])
                    uniform.append(simulate_served(scores, model, budget, rng, UniformServing()).pool_ctr)
                    thompson.append(simulate_served(scores, model, budget, rng, ThompsonServing(), prior).pool_ctr)
            u, t = np.array(uniform), np.array(thompson)
            rows.append(
                {
                    "run": name,
                    "n_sessions": budget,
                    "pools": len(replay),
                    "seeds": len(SEEDS),
                    "uniform_ctr": round(float(u.mean()), 4),
                    "thompson_ctr": round(float(t.mean()), 4),
                    "ratio": round(float(t.mean() / u.mean()), 3),
                    "thompson_higher_share": round(float(np.mean(t > u)), 3),
                }
            )
    save("serving", {"benchmark": "serving", "machine": machine(), "rows": rows})
    print(f"{'run':20} {'S':>5} {'pools':>5} {'uniform':>8} {'thompson':>8} {'ratio':>6} {'T higher':>8}")
    for r in rows:
        print(
            f"{r['run']:20} {r['n_sessions']:5} {r['pools']:5} {100 * r['uniform_ctr']:7.1f}% "
            f"{100 * r['thompson_ctr']:7.1f}% {r['ratio']:6.2f} {100 * r['thompson_higher_share']:7.0f}%"
        )


if __name__ == "__main__":
    main()
