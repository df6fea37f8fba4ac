"""Issue 4's comparison, from the committed runs: guided-ee against the paper's strategies and a bandit.

    .venv/bin/python benchmarks/issue4_report.py

Reads ``results/guided-{length,llm}-{5000,300}/summary.json`` (whichever exist; run them with
``bench_quality.py``) and writes ``results/issue4.md``, ``results/issue4.json`` and
``results/issue4.png``. Per run and strategy: Last and Avg CTR as the mean over cells (topic x persona x
seed) with a 95% t-interval over cells; the same for the *expected* CTR of the last pool under
uniform serving (Eq. 1 averaged over every persona and every K-subset of the pool's scores: the pool's
quality without the sampling noise of S sessions, which at S = 300 is about +-2.5 points); the
fraction of the known optimum on the length task (60.6%: every shown item scores 10); and the
generator's cost per cell (calls and tokens, cached answers included: a cache hit is a prompt the
strategy asked for) and per point of CTR gained over IP_0.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from clickloop.experiment.cell import slug
from clickloop.simulator.click_model import ClickModel, expected_pool_ctr, theoretical_ctr

RESULTS = Path(__file__).parent / "results"
RUNS = [
    "guided-length-5000",
    "guided-length-1000",
    "guided-length-300",
    "guided-length-300-thompson",
    "guided-llm-5000",
    "guided-llm-300",
    "guided-llm-300-thompson",
    "guided-llm-300-seeds5-7",
    "guided-llm-300-seeds5-7-thompson",
    "guided-llm-5000-seeds2-3",
    "guided-llm-300-pool20",
    "guided-llm-300-explore-pool",
    "guided-llm-5000-thompson",
    "guided-llm-5000-pool20",
    "guided-llm-300-explore-paper",
    "guided-llm-5000-pool20-explore-paper",
    "guided-llm-5000-pool20-shorten",
    "guided-llm-300-pool20-shorten",
]
# the committed arms of seeds 5-7 at S = 300, as (run, strategy, label)
SEEDS_5_7_ARMS = [
    ("guided-llm-300-seeds5-7", "explore-exploit", "explore-exploit, uniform (the paper)"),
    ("guided-llm-300-seeds5-7-thompson", "explore-exploit", "explore-exploit, thompson"),
    ("guided-llm-300-seeds5-7-thompson", "guided-ee", "guided-ee, thompson (pool of 5, explore lists the history)"),
    ("guided-llm-300-seeds5-7", "fixed-pool", "fixed-pool (20 items, thompson)"),
]
POOL20_PAPER = "guided-ee, thompson, pool of 20, the paper's explore prompt"


def beside_bandit(run: str, sample: str, label: str) -> list[tuple[str, str, str]]:
    """The two arms of a run of guided-ee beside the fixed-pool bandit on the same 20 items; ``sample``:
    which sample of the bandit this is (``rerun``, ``third sample``...)."""
    return [(run, "fixed-pool", f"fixed-pool (20 items, thompson), {sample}"), (run, "guided-ee", label)]


# (title, [(run or runs pooled, strategy, label)], [(run, arm, other arm) paired by cell], what to know of
# it): arms of different runs on the same topics, personas and seeds but other IP_0s, compared unpaired
# with the first arm (difference of means, Welch's interval); the named pairs of arms of one run also
# paired by cell
ARM_SETS = [
    (
        "guided-ee over a 20-item pool, LLM judge, S = 300, seeds 5-7",
        [
            *SEEDS_5_7_ARMS,
            *beside_bandit("guided-llm-300-pool20", "rerun", "guided-ee, thompson, pool of 20"),
            *beside_bandit("guided-llm-300-pool20-shorten", "third sample", f"{POOL20_PAPER}, shorten"),
        ],
        [
            ("guided-llm-300-pool20", "guided-ee", "fixed-pool"),
            ("guided-llm-300-pool20-shorten", "guided-ee", "fixed-pool"),
        ],
        "`guided-llm-300-pool20` runs guided-ee on a pool of 20 items, served by Thompson sampling, beside"
        " the fixed-pool bandit; both start from the same 20 items (one generation request, through the"
        " cache), and guided-ee replaces the items that are confidently worse. The other arms are those of"
        " the seeds 5-7 runs: the same topics, personas and seeds, other IP_0s (5 items), so unpaired."
        " `guided-llm-300-pool20-shorten` runs guided-ee on 20 items with the paper's explore prompt on the"
        " live pool and `shorten`, beside its own fixed-pool arm (staged a seed at a time; its cell count"
        " says how many seeds have run).",
    ),
    (
        "guided-ee with its explore prompt listing the live pool, LLM judge, S = 300, seeds 5-7",
        [
            *SEEDS_5_7_ARMS,
            ("guided-llm-300-explore-pool", "guided-ee", "guided-ee, thompson, explore lists the pool"),
        ],
        [],
        "`guided-llm-300-explore-pool` runs guided-ee with `explore_lists` `pool` (its explore prompt lists"
        " the live pool as the questions already covered, not the whole history; see `bench_explore.py`),"
        " served by Thompson sampling. The other arms are those of the seeds 5-7 runs: the same topics,"
        " personas and seeds, other IP_0s, so unpaired.",
    ),
]
ARM_SETS += [
    (
        "guided-ee with the paper's explore prompt, LLM judge, S = 300, seeds 5-7",
        [
            *SEEDS_5_7_ARMS,
            ("guided-llm-300-explore-pool", "guided-ee", "guided-ee, thompson, explore lists the pool"),
            ("guided-llm-300-explore-paper", "guided-ee", "guided-ee, thompson, the paper's explore prompt"),
        ],
        [],
        "`guided-llm-300-explore-paper` runs guided-ee with `explore_prompt` `paper`: its explore items come"
        " from explore-exploit's explore prompt (`iterate_plain` on the live pool, one question), the rest"
        " of guided-ee unchanged; served by Thompson sampling. The other arms are those of the seeds 5-7"
        " runs: the same topics, personas and seeds, other IP_0s, so unpaired.",
    ),
    (
        "The paper's budget served by Thompson sampling, LLM judge, S = 5000",
        [
            (
                ("guided-llm-5000", "guided-llm-5000-seeds2-3"),
                "explore-exploit",
                "explore-exploit, uniform (the paper)",
            ),
            (("guided-llm-5000", "guided-llm-5000-seeds2-3"), "guided-ee", "guided-ee, uniform"),
            (("guided-llm-5000", "guided-llm-5000-seeds2-3"), "fixed-pool", "fixed-pool (20 items, thompson)"),
            ("guided-llm-5000-thompson", "explore-exploit", "explore-exploit, thompson"),
            ("guided-llm-5000-thompson", "guided-ee", "guided-ee, thompson"),
            *beside_bandit("guided-llm-5000-pool20", "rerun", "guided-ee, thompson, pool of 20"),
            *beside_bandit("guided-llm-5000-pool20-explore-paper", "third sample", POOL20_PAPER),
            *beside_bandit("guided-llm-5000-pool20-shorten", "fourth sample", f"{POOL20_PAPER}, shorten"),
        ],
        [
            ("guided-llm-5000-thompson", "guided-ee", "explore-exploit"),
            ("guided-llm-5000-pool20", "guided-ee", "fixed-pool"),
            ("guided-llm-5000-pool20-explore-paper", "guided-ee", "fixed-pool"),
            ("guided-llm-5000-pool20-shorten", "guided-ee", "fixed-pool"),
        ],
        "`guided-llm-5000-thompson` runs explore-exploit and guided-ee served by Thompson sampling (the same"
        " IP_0 per cell); `guided-llm-5000-pool20` runs guided-ee on a 20-item pool beside the fixed-pool"
        " bandit on the same 20 items, both Thompson-served (seeds 1-2 and 1-3);"
        " `guided-llm-5000-pool20-explore-paper` the same with guided-ee's explore items from the paper's"
        " explore prompt on the live pool, beside its own fixed-pool arm; `guided-llm-5000-pool20-shorten`"
        " that again with `shorten` (an over-long question is shortened by a request of its own, not"
        " re-asked with the whole prompt), beside its own fixed-pool arm. The uniform-served arms"
        " pool seeds 1-3 of `guided-llm-5000` and `guided-llm-5000-seeds2-3`, run in an earlier session:"
        " other IP_0s, so unpaired.",
    ),
]
# (title, runs with the same settings on disjoint seeds, what to know of it): their cells pooled
POOLS = [
    (
        "LLM judge, S = 5000, served uniformly, seeds 1-3",
        ["guided-llm-5000", "guided-llm-5000-seeds2-3"],
        "Seed 1 from `guided-llm-5000` (all five arms), seeds 2-3 from `guided-llm-5000-seeds2-3` (the three"
        " arms of the targets). guided-ee's drop floor changed between them (100 then 20 impressions); at"
        " S = 5000 served uniformly every item has about 3,000 impressions an iteration, past either floor.",
    ),
]
# (uniform-served run, Thompson-served run on the same seeds through the same cache, what to know of it)
SERVING_PAIRS = [
    (
        "guided-llm-300",
        "guided-llm-300-thompson",
        "Seed 3. guided-ee ran with its old drop floor (`min_impressions` 100, and a rule for starved items).",
    ),
    (
        "guided-llm-300-seeds5-7",
        "guided-llm-300-seeds5-7-thompson",
        "Seeds 5 to 7. guided-ee ran with its current drop floor (`min_impressions` 20).",
    ),
]
# two-sided 95% t quantiles by degrees of freedom (no scipy in the core dependencies)
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (nan for one value)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()), math.nan
    t = T95.get(len(x) - 1, 1.96)
    return float(x.mean()), float(t * x.std(ddof=1) / math.sqrt(len(x)))


def expected_last(run: Path, population: str, strategy: str, model: ClickModel) -> list[float]:
    """Per finished cell of ``population`` and ``strategy``: the expected uniform-serving CTR of its last pool."""
    out = []
    for cell in sorted((run / "cells" / slug(population) / strategy).glob("*/seed-*")):
        files = sorted(cell.glob("iter-*.json"))
        if files:
            rows = json.loads(files[-1].read_text())["pool"]
            scores = np.array([[row["scores"][p] for row in rows] for p in rows[0]["scores"]])
            out.append(expected_pool_ctr(scores, model))
    return out


def strategy_rows(name: str, summary: dict[str, Any]) -> list[dict[str, Any]]:
    config = summary["config"]
    model = ClickModel(config["temperature"], config["rejection_score"], config["k_shown"])
    optimum = theoretical_ctr(10, model)
    rows = []
    for population, strategies in summary["results"].items():
        for strategy, entry in strategies.items():
            cells = entry["cells"]
            if not cells:
                continue
            expected_mean, expected_ci = mean_ci(expected_last(RESULTS / name, population, strategy, model))
            last = [c["ctr"][-1] for c in cells]
            avg = [float(np.mean(c["ctr"][1:])) for c in cells]
            gain = float(np.mean([c["ctr"][-1] - c["ctr"][0] for c in cells]))
            usage = entry["llm"].get("generator", {})
            n = len(cells)
            tokens = (usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)) / n
            last_mean, last_ci = mean_ci(last)
            avg_mean, avg_ci = mean_ci(avg)
            rows.append(
                {
                    "run": name,
                    "judge": config["judge"],
                    "n_sessions": config["n_sessions"],
                    "population": population,
                    "strategy": strategy,
                    "cells": n,
                    "complete": entry["complete"],
                    "iterations": len(entry["ctr"]) - 1,
                    "last_ctr": last_mean,
                    "last_ci": last_ci,
                    "avg_ctr": avg_mean,
                    "avg_ci": avg_ci,
                    "expected_last_ctr": expected_mean,
                    "expected_last_ci": expected_ci,
                    "fraction_of_optimum": last_mean / optimum if config["judge"].startswith("length") else None,
                    "calls_per_cell": usage.get("calls", 0) / n,
                    "tokens_per_cell": tokens,
                    "tokens_per_point": tokens / (100 * gain) if gain > 0.005 else None,
                    "ctr_curve": entry["ctr"],
                    "last_by_cell": {f"{c['topic']}|{c['seed']}": c["ctr"][-1] for c in cells},
                    "avg_by_cell": {f"{c['topic']}|{c['seed']}": float(np.mean(c["ctr"][1:])) for c in cells},
                }
            )
    return rows


def pct(value: float, ci: float) -> str:
    return f"{100 * value:.1f}" + ("" if math.isnan(ci) else f" ± {100 * ci:.1f}")


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "# Issue 4: guided-ee against the paper's strategies and a fixed-pool bandit",
        "",
        "Generated by `benchmarks/issue4_report.py` from `results/guided-*/summary.json`. CTR in percent:",
        "mean over cells (topic x persona x seed) ± the half-width of a 95% t-interval over cells.",
        "Cost: generator calls and tokens (prompt + completion) per cell; per point: tokens per percentage",
        "point of CTR gained from IP_0 to the last pool. Expected Last: the CTR Eq. 1 expects of the last pool",
        "under uniform serving (its quality without the noise of S sessions; fixed-pool's users are served by",
        "Thompson sampling, so they see its observed CTR, not this).",
        "",
    ]
    for run in dict.fromkeys(r["run"] for r in rows):
        group = [r for r in rows if r["run"] == run]
        head = group[0]
        done = "" if all(r["complete"] for r in group) else " (partial: some cells unfinished)"
        lines += [
            f"## {run}: judge {head['judge']}, S = {head['n_sessions']}, {head['iterations']} iterations{done}",
            "",
            "| population | strategy | cells | Last CTR | Avg CTR | expected Last | of optimum | calls / cell "
            "| tokens / cell | tokens / CTR point |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in group:
            fraction = "" if r["fraction_of_optimum"] is None else f"{100 * r['fraction_of_optimum']:.0f}%"
            per_point = "" if r["tokens_per_point"] is None else f"{r['tokens_per_point']:,.0f}"
            lines.append(
                f"| {r['population']} | {r['strategy']} | {r['cells']} | {pct(r['last_ctr'], r['last_ci'])} "
                f"| {pct(r['avg_ctr'], r['avg_ci'])} | {pct(r['expected_last_ctr'], r['expected_last_ci'])} "
                f"| {fraction} | {r['calls_per_cell']:.1f} "
                f"| {r['tokens_per_cell']:,.0f} | {per_point} |"
            )
        lines.append("")
    lines += [
        "## guided-ee minus each other arm, paired by cell",
        "",
        "Last CTR of guided-ee minus that of the other arm on the same topic, persona and seed (the same",
        "IP_0, except against fixed-pool, whose IP_0 has 20 items, and the same click noise stream), in",
        "points: mean ± 95% t-interval over cells.",
        "",
        "| run | population | vs | cells | Δ Last CTR (points) | ratio of mean Last CTR |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        if r["strategy"] == "guided-ee":
            continue
        guided = next(
            (
                g
                for g in rows
                if g["strategy"] == "guided-ee" and (g["run"], g["population"]) == (r["run"], r["population"])
            ),
            None,
        )
        if guided is None:
            continue
        keys = sorted(set(guided["last_by_cell"]) & set(r["last_by_cell"]))
        delta, ci = mean_ci([guided["last_by_cell"][k] - r["last_by_cell"][k] for k in keys])
        ratio = guided["last_ctr"] / r["last_ctr"] if r["last_ctr"] else math.nan
        lines.append(
            f"| {r['run']} | {r['population']} | {r['strategy']} | {len(keys)} | {pct(delta, ci)} | {ratio:.2f} |"
        )
    lines += pooled_section(rows)
    lines += arm_set_section(rows)
    lines += turnover_section()
    lines += origin_section()
    lines += answers_section()
    lines += headroom_section(rows)
    lines += serving_section(rows)
    lines += ["", "![CTR per iteration, every run](issue4.png)", ""]
    return "\n".join(lines)


def pooled_section(rows: list[dict[str, Any]]) -> list[str]:
    """Each of :data:`POOLS`: its runs' cells together, per arm, and guided-ee paired against each arm."""
    lines: list[str] = []
    for title, runs, note in POOLS:
        group = [r for r in rows if r["run"] in runs]
        if not {r["run"] for r in group} >= set(runs[1:]):
            continue
        lines += [
            "",
            f"## Pooled: {title}",
            "",
            note,
            "",
            "| population | strategy | cells | Last CTR | Avg CTR | ratio of Last to explore-exploit (same cells) "
            "| tokens / cell | guided-ee − arm, paired (points) |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for population in dict.fromkeys(r["population"] for r in group):
            arms: dict[str, dict[str, Any]] = {}
            for r in group:
                if r["population"] != population:
                    continue
                arm = arms.setdefault(r["strategy"], {"last": {}, "avg": {}, "tokens": 0.0, "cells": 0})
                arm["last"].update({f"{r['run']}|{k}": v for k, v in r["last_by_cell"].items()})
                arm["avg"].update({f"{r['run']}|{k}": v for k, v in r["avg_by_cell"].items()})
                arm["tokens"] += r["tokens_per_cell"] * r["cells"]
                arm["cells"] += r["cells"]
            base = arms.get("explore-exploit")
            guided = arms.get("guided-ee")
            for strategy, arm in arms.items():
                last = list(arm["last"].values())
                ratio = math.nan
                if base is not None:  # on the cells both ran
                    both = sorted(set(base["last"]) & set(arm["last"]))
                    ratio = float(np.mean([arm["last"][k] for k in both]) / np.mean([base["last"][k] for k in both]))
                gap = ""
                if guided is not None and strategy != "guided-ee":
                    keys = sorted(set(guided["last"]) & set(arm["last"]))
                    gap = f"{pct(*mean_ci([guided['last'][k] - arm['last'][k] for k in keys]))} ({len(keys)} cells)"
                lines.append(
                    f"| {population} | {strategy} | {len(last)} | {pct(*mean_ci(last))} "
                    f"| {pct(*mean_ci(list(arm['avg'].values())))} | {ratio:.2f} "
                    f"| {arm['tokens'] / arm['cells']:,.0f} | {gap} |"
                )
    return lines


def welch(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of ``a`` minus mean of ``b`` and the half-width of Welch's 95% interval (unpaired)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 2 or len(y) < 2:
        return float(x.mean() - y.mean()), math.nan
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1)) if vx + vy > 0 else len(x) + len(y) - 2
    return float(x.mean() - y.mean()), float(T95.get(int(df), 1.96) * math.sqrt(vx + vy))


def _runs(run: str | tuple[str, ...]) -> tuple[str, ...]:
    return (run,) if isinstance(run, str) else run


def pooled_arm(
    rows: list[dict[str, Any]], runs: tuple[str, ...], population: str, strategy: str
) -> dict[str, Any] | None:
    """One arm's cells over ``runs`` (same settings, disjoint seeds) as one row: Last and Avg CTR by cell
    (keys prefixed by the run) and generator tokens and calls per cell over all of them; None where no
    run has the arm."""
    found = [r for r in rows if r["run"] in runs and (r["population"], r["strategy"]) == (population, strategy)]
    if not found:
        return None
    cells = sum(r["cells"] for r in found)
    return {
        "last_by_cell": {f"{r['run']}|{k}": v for r in found for k, v in r["last_by_cell"].items()},
        "avg_by_cell": {f"{r['run']}|{k}": v for r in found for k, v in r["avg_by_cell"].items()},
        "tokens_per_cell": sum(r["tokens_per_cell"] * r["cells"] for r in found) / cells,
        "calls_per_cell": sum(r["calls_per_cell"] * r["cells"] for r in found) / cells,
    }


def arm_set_section(rows: list[dict[str, Any]]) -> list[str]:
    """Each of :data:`ARM_SETS` whose runs exist: every arm against the first, unpaired."""
    index = {(r["run"], r["population"], r["strategy"]): r for r in rows}
    present = {r["run"] for r in rows}
    lines: list[str] = []
    for title, members, pairs, note in ARM_SETS:
        if not all(set(_runs(run)) <= present for run, _, _ in members):
            continue
        lines += [
            "",
            f"## {title}",
            "",
            note,
            "",
            f"| population | arm | cells | Last CTR | Avg CTR | ratio of Last to {members[0][2]} "
            "| Δ Last (points, unpaired) | tokens / cell | calls / cell |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        first = _runs(members[0][0])
        populations = list(dict.fromkeys(r["population"] for r in rows if r["run"] in first))
        for population in populations:
            found = {label: pooled_arm(rows, _runs(run), population, s) for run, s, label in members}
            base = found[members[0][2]]
            if base is None:
                continue
            base_last = list(base["last_by_cell"].values())
            for label, row in found.items():
                if row is None:
                    continue
                last = list(row["last_by_cell"].values())
                lines.append(
                    f"| {population} | {label} | {len(last)} | {pct(*mean_ci(last))} "
                    f"| {pct(*mean_ci(list(row['avg_by_cell'].values())))} "
                    f"| {float(np.mean(last)) / float(np.mean(base_last)):.2f} | {pct(*welch(last, base_last))} "
                    f"| {row['tokens_per_cell']:,.0f} | {row['calls_per_cell']:.1f} |"
                )
        for (run, arm, other), population in itertools.product(pairs, populations):
            a, b = index.get((run, population, arm)), index.get((run, population, other))
            if a is None or b is None:
                continue
            keys = sorted(set(a["last_by_cell"]) & set(b["last_by_cell"]))
            gap = mean_ci([a["last_by_cell"][k] - b["last_by_cell"][k] for k in keys])
            lines += [
                "",
                f"{population}: {arm} − {other} in `{run}`, paired by cell ({len(keys)} cells, the same IP_0): "
                f"{pct(*gap)} points.",
            ]
    return lines


# (run, strategy) whose pools turnover_section follows: Thompson-served guided-ee and explore-exploit
TURNOVER = [
    ("guided-llm-300-seeds5-7-thompson", "explore-exploit"),
    ("guided-llm-300-seeds5-7-thompson", "guided-ee"),
    ("guided-llm-300-pool20", "guided-ee"),
]


def turnover(run: str, population: str, strategy: str) -> dict[str, float] | None:
    """What new items cost and bring, over every finished cell: per item written at iteration i, its
    impressions and CTR per impression in IP_i against the older items'; their share of IP_i's
    impressions (mean over iterations); the mean judge score of dropped items and of the items that
    came in; and the mean score of the 3 best items of IP_0 and of the last pool."""
    new_imp, new_clk, old_imp, old_clk, shares, gone, came, first, final = [], [], [], [], [], [], [], [], []
    for cell in sorted((RESULTS / run / "cells" / slug(population) / strategy).glob("*/seed-*")):
        pools = _cell_pools(cell)
        for i, pool in enumerate(pools[1:], start=1):
            new = [row for row in pool if row["provenance"]["iteration"] == i]
            old = [row for row in pool if row["provenance"]["iteration"] != i]
            new_imp += [row["impressions"] for row in new]
            new_clk += [row["clicks"] for row in new]
            old_imp += [row["impressions"] for row in old]
            old_clk += [row["clicks"] for row in old]
            shares.append(sum(row["impressions"] for row in new) / max(1, sum(row["impressions"] for row in pool)))
            before, after = ({row["item_id"]: row["mean_score"] for row in p} for p in (pools[i - 1], pool))
            gone += [score for item_id, score in before.items() if item_id not in after]
            came += [score for item_id, score in after.items() if item_id not in before]
        best = [sorted((row["mean_score"] for row in p), reverse=True)[:3] for p in (pools[0], pools[-1])]
        first.append(float(np.mean(best[0])))
        final.append(float(np.mean(best[1])))
    if not new_imp:
        return None
    return {
        "new_impressions": float(np.mean(new_imp)),
        "old_impressions": float(np.mean(old_imp)),
        "new_ctr": sum(new_clk) / sum(new_imp),
        "old_ctr": sum(old_clk) / sum(old_imp),
        "new_share": float(np.mean(shares)),
        "dropped_score": float(np.mean(gone)),
        "added_score": float(np.mean(came)),
        "top3_first": float(np.mean(first)),
        "top3_last": float(np.mean(final)),
    }


# (run, strategy) whose written items origin_section scores by origin: guided-ee's explore variants
ORIGINS = [
    ("guided-llm-300-seeds5-7-thompson", "guided-ee"),
    ("guided-llm-300-explore-pool", "guided-ee"),
    ("guided-llm-300-explore-paper", "guided-ee"),
    ("guided-llm-5000-pool20", "guided-ee"),
    ("guided-llm-5000-pool20-explore-paper", "guided-ee"),
    ("guided-llm-5000-pool20-shorten", "guided-ee"),
]


def origin_section() -> list[str]:
    """Mean judge score of the items each of :data:`ORIGINS` wrote, by origin (explore / exploit), each
    item once per cell, for each persona."""
    lines = [
        "",
        "## Judge scores of the items written, by origin",
        "",
        "Mean judge score (1-10) of every item the strategy wrote in the loop (IP_0 left out), each once",
        "per cell, with the count of items.",
        "",
        "| run | population | strategy | explore | exploit |",
        "|---|---|---|---:|---:|",
    ]
    for run, strategy in ORIGINS:
        for population in ("Quality", "Ethical Considerations"):
            found: dict[str, list[float]] = {}
            for cell in sorted((RESULTS / run / "cells" / slug(population) / strategy).glob("*/seed-*")):
                for row in _cell_rows(_cell_pools(cell)).values():
                    if row["provenance"]["origin"] != "initial":
                        found.setdefault(row["provenance"]["origin"], []).append(row["mean_score"])
            if not found:
                continue
            cells = [f"{np.mean(found[o]):.2f} ({len(found[o])})" if o in found else "" for o in ("explore", "exploit")]
            lines.append(f"| {run} | {population} | {strategy} | {' | '.join(cells)} |")
    return lines


# (run, strategy) whose written items answers_section counts the LLM answers of
ANSWERS = [
    ("guided-llm-300-seeds5-7-thompson", "explore-exploit"),
    ("guided-llm-300-seeds5-7-thompson", "guided-ee"),
    ("guided-llm-5000-thompson", "explore-exploit"),
    ("guided-llm-5000-thompson", "guided-ee"),
    ("guided-llm-5000-pool20", "guided-ee"),
    ("guided-llm-5000-pool20-explore-paper", "guided-ee"),
    ("guided-llm-5000-pool20-shorten", "guided-ee"),
    ("guided-llm-300-pool20-shorten", "guided-ee"),
]


def answers_section() -> list[str]:
    """Per prompt, the LLM answers each written item took (its provenance's ``attempts``: 1 when the
    first answer passed the checks), both personas, each item once per cell; and for guided-ee's
    exploit items, how many skipped their first target for the aspect cap."""
    lines = [
        "",
        "## LLM answers per item written, by prompt",
        "",
        "Answers per item: the mean of each written item's `attempts` (1 when the first answer passed",
        "the checks; each re-ask sends the conversation again). Target skipped: guided-ee's exploit items",
        "whose first Thompson-sampled target already had `max_per_aspect` live items on its aspect.",
        "Shortened: items kept from the shorten request (`shorten`; a shorten request counts as an answer).",
        "",
        "| run | strategy | prompt | items | answers per item | target skipped | shortened |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for run, strategy in ANSWERS:
        found: dict[str, list[int]] = {}
        shortened: dict[str, int] = {}
        skipped = 0
        for cell in sorted((RESULTS / run / "cells").glob(f"*/{strategy}/*/seed-*")):
            for row in _cell_rows(_cell_pools(cell)).values():
                provenance = row["provenance"]
                if provenance["origin"] == "initial":
                    continue
                found.setdefault(provenance["template"], []).append(provenance["attempts"])
                skipped += bool(provenance["notes"].get("skipped_targets"))
                if "shortened_from" in provenance["notes"]:
                    shortened[provenance["template"]] = shortened.get(provenance["template"], 0) + 1
        for template, attempts in sorted(found.items()):
            skip = f"{skipped} of {len(attempts)}" if template == "guided_exploit" else ""
            short = str(shortened.get(template, 0)) if shortened else ""
            lines.append(
                f"| {run} | {strategy} | `{template}` | {len(attempts)} | {np.mean(attempts):.2f} | {skip} | {short} |"
            )
    return lines


def turnover_section() -> list[str]:
    """:func:`turnover` for each of :data:`TURNOVER` and persona."""
    lines = [
        "",
        "## Turnover under Thompson serving: what new items cost and bring",
        "",
        "Per item written at iteration i: its impressions and its CTR per impression in IP_i, against the",
        "older items of IP_i; new items' share of IP_i's impressions; the mean judge score of the items",
        "dropped and of those that came in; the mean score of the 3 best items of IP_0 and of the last pool.",
        "",
        "| run | population | strategy | impressions new / old | CTR per impression new / old | new items' "
        "share | score dropped → added | 3 best, IP_0 → last |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for run, strategy in TURNOVER:
        for population in ("Quality", "Ethical Considerations"):
            t = turnover(run, population, strategy)
            if t is None:
                continue
            lines.append(
                f"| {run} | {population} | {strategy} | {t['new_impressions']:.0f} / {t['old_impressions']:.0f} "
                f"| {100 * t['new_ctr']:.1f}% / {100 * t['old_ctr']:.1f}% | {100 * t['new_share']:.0f}% "
                f"| {t['dropped_score']:.2f} → {t['added_score']:.2f} | {t['top3_first']:.2f} → {t['top3_last']:.2f} |"
            )
    return lines


def initial_pool(run: str, population: str, topic: str, seed: int) -> tuple[str, ...] | None:
    """The texts of IP_0 of a cell of ``run`` (any strategy but fixed-pool, whose IP_0 is larger)."""
    for path in sorted((RESULTS / run / "cells" / slug(population)).glob(f"*/{slug(topic)}/seed-{seed}/iter-000.json")):
        if path.parts[-4] != "fixed-pool":
            return tuple(row["text"] for row in json.loads(path.read_text())["pool"])
    return None


def best_set_ctr(scores: np.ndarray, model: ClickModel, candidates: int = 25) -> float:
    """The CTR (Eq. 1) of showing the same K items in every session, for the best such set of the items
    whose judge scores are the columns of ``scores`` (n_personas, n_items), personas weighted equally.

    A session showing items of weights w_i = exp(s_i / T) is clicked with probability
    W / (W + exp(RS / T)), W the sum of the shown w_i. The search is exhaustive over the ``candidates``
    items of highest mean weight over personas (all items when there are fewer).
    """
    k = model.k_shown
    weights = np.exp(np.asarray(scores, dtype=float) / model.temperature)
    top = np.argsort(-weights.mean(axis=0), kind="stable")[:candidates]
    if len(top) < k:
        return math.nan
    sets = np.array(list(itertools.combinations(top, k)))
    total = weights[:, sets].sum(axis=2)  # (personas, sets)
    ctr = (total / (total + math.exp(model.rejection_score / model.temperature))).mean(axis=0)
    return float(ctr.max())


def _cell_pools(cell: Path) -> list[list[dict[str, Any]]]:
    """The pool rows of each of a cell's iterations, IP_0 first."""
    return [json.loads(path.read_text())["pool"] for path in sorted(cell.glob("iter-*.json"))]


def _cell_rows(pools: list[list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Every item a cell ever had in one of ``pools``, once: item id -> its latest row."""
    return {row["item_id"]: row for pool in pools for row in pool}


def _cell_items(pools: list[list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Every item a cell ever had in one of ``pools``: text -> judge score per persona."""
    return {row["text"]: row["scores"] for pool in pools for row in pool}


def _score_matrix(items: list[dict[str, float]]) -> np.ndarray:
    personas = sorted(items[0])
    return np.array([[item[p] for item in items] for p in personas])


def headroom(run: str, population: str, strategy: str, model: ClickModel) -> dict[str, list[float]]:
    """Per finished cell: the CTR of always showing the best K items of its last pool, and of the best K
    items it ever wrote (what a server that knew every judge score could have reached with them), and
    how many items it ever had."""
    out: dict[str, list[float]] = {"last_pool": [], "ever": [], "items": []}
    for cell in sorted((RESULTS / run / "cells" / slug(population) / strategy).glob("*/seed-*")):
        pools = _cell_pools(cell)
        if not pools:
            continue
        items = _cell_items(pools)
        out["last_pool"].append(best_set_ctr(_score_matrix([row["scores"] for row in pools[-1]]), model))
        out["ever"].append(best_set_ctr(_score_matrix(list(items.values())), model))
        out["items"].append(len(items))
    return out


def writer_ceiling(population: str, model: ClickModel) -> dict[str, tuple[int, float]]:
    """Per topic: how many distinct items the committed LLM-judge runs wrote for it (``population``'s
    cells), and the CTR of always showing the best K of them (an item scored in several runs: its mean)."""
    union: dict[str, dict[str, list[dict[str, float]]]] = {}
    for run in RUNS:
        if not run.startswith("guided-llm"):
            continue
        for cell in sorted((RESULTS / run / "cells" / slug(population)).glob("*/*/seed-*")):
            seen = union.setdefault(cell.parts[-2], {})
            for text, scores in _cell_items(_cell_pools(cell)).items():
                seen.setdefault(text, []).append(scores)
    out = {}
    for topic, seen in union.items():
        items = [{p: float(np.mean([s[p] for s in scored])) for p in scored[0]} for scored in seen.values()]
        out[topic] = (len(items), best_set_ctr(_score_matrix(items), model))
    return out


def headroom_section(rows: list[dict[str, Any]]) -> list[str]:
    """Observed Last CTR against what the arms' own items allowed, and against the writer's best items."""
    llm = [r for r in rows if r["judge"] == "llm"]
    if not llm:
        return []
    config = json.loads((RESULTS / llm[0]["run"] / "summary.json").read_text())["config"]
    model = ClickModel(config["temperature"], config["rejection_score"], config["k_shown"])
    k = model.k_shown
    lines = [
        "",
        "## Headroom, LLM judge: what the written items allowed",
        "",
        f"Best {k} of the last pool: the CTR of showing, in every session, the {k} items of the last pool",
        "with the best judge scores (Eq. 1, personas weighted equally): what a server that knew the scores",
        "would get from it. Best ever written: the same over every item the cell ever had in a pool, a bound",
        "on what keeping the best items would have given. Means over cells ± 95% t-intervals, in percent.",
        "",
        f"| run | population | strategy | cells | Last CTR | best {k} of the last pool | best {k} ever written |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    sizes: list[float] = []
    for r in llm:
        h = headroom(r["run"], r["population"], r["strategy"], model)
        if not h["ever"]:
            continue
        sizes += h["items"]
        lines.append(
            f"| {r['run']} | {r['population']} | {r['strategy']} | {r['cells']} | {pct(r['last_ctr'], r['last_ci'])} "
            f"| {pct(*mean_ci(h['last_pool']))} | {pct(*mean_ci(h['ever']))} |"
        )
    lines += [
        "",
        "The writer's best: per topic, every distinct item the committed LLM-judge runs wrote for the persona",
        f"group, and the CTR of showing its best {k} in every session: a bound on any selection from that",
        f"many draws of the 1.5B writer (one cell has {min(sizes):.0f} to {max(sizes):.0f}).",
        "",
        f"| population | topic | distinct items | best {k} of them |",
        "|---|---|---:|---:|",
    ]
    for population in dict.fromkeys(r["population"] for r in llm):
        for topic, (n, ctr) in sorted(writer_ceiling(population, model).items()):
            lines.append(f"| {population} | {topic} | {n} | {100 * ctr:.1f} |")
    return lines


def serving_section(rows: list[dict[str, Any]]) -> list[str]:
    """Uniform against Thompson serving on the LLM judge, paired by cell across the runs of each pair."""
    lines: list[str] = []
    for uniform_run, thompson_run, note in SERVING_PAIRS:
        arms = {(r["run"], r["population"], r["strategy"]): r for r in rows if r["run"] in (uniform_run, thompson_run)}
        if not any(run == thompson_run for run, _, _ in arms):
            continue
        lines += [
            "",
            f"## Serving, LLM judge: `{uniform_run}` (uniform) against `{thompson_run}`, paired by cell",
            "",
            note,
            "",
            f"`{thompson_run}` runs explore-exploit and guided-ee with every session served by Thompson",
            f"sampling, on seeds that `{uniform_run}` also ran; its IP_0s and judge scores came from the same",
            "cache, so each cell pairs with the uniform-served cell of the same topic, persona and seed (pairs",
            "are kept only where both IP_0s are equal). Δ and ratio: against the paper's explore-exploit served",
            "uniformly, over the paired cells. fixed-pool is always served by Thompson sampling.",
            "",
            "| population | strategy | serving | cells | Last CTR | Avg CTR | Δ Last (points) | ratio of Last | "
            "tokens / cell |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        footer: list[str] = []
        for population in dict.fromkeys(p for _, p, _ in arms):
            base = arms.get((uniform_run, population, "explore-exploit"))
            thompson = [r for (run, p, _), r in arms.items() if run == thompson_run and p == population]
            if base is None or not thompson:
                continue
            keys = sorted(
                k
                for k in set(base["last_by_cell"]) & set(thompson[0]["last_by_cell"])
                if initial_pool(uniform_run, population, *_cell(k)) == initial_pool(thompson_run, population, *_cell(k))
            )
            if not keys:
                continue
            candidates = [
                (arms[(uniform_run, population, s)], "uniform")
                for s in ("explore-exploit", "full-ctr", "guided-ee")
                if (uniform_run, population, s) in arms
            ]
            candidates += [(r, "thompson") for r in thompson]
            if (uniform_run, population, "fixed-pool") in arms:
                candidates.append((arms[(uniform_run, population, "fixed-pool")], "thompson (its own)"))
            base_mean = float(np.mean([base["last_by_cell"][k] for k in keys]))
            for r, serving in candidates:
                last = [r["last_by_cell"][k] for k in keys]
                avg = [r["avg_by_cell"][k] for k in keys]
                delta = mean_ci([r["last_by_cell"][k] - base["last_by_cell"][k] for k in keys])
                lines.append(
                    f"| {population} | {r['strategy']} | {serving} | {len(keys)} | {pct(*mean_ci(last))} "
                    f"| {pct(*mean_ci(avg))} | {pct(*delta)} | {float(np.mean(last)) / base_mean:.2f} "
                    f"| {r['tokens_per_cell']:,.0f} |"
                )
            guided = arms.get((thompson_run, population, "guided-ee"))
            bandit = arms.get((uniform_run, population, "fixed-pool"))
            if guided and bandit:
                gap = mean_ci([guided["last_by_cell"][k] - bandit["last_by_cell"][k] for k in keys])
                footer.append(f"{population}: guided-ee (thompson) − fixed-pool, paired: {pct(*gap)} points.")
        lines += ["", *footer] if footer else []
    return lines


def _cell(key: str) -> tuple[str, int]:
    topic, seed = key.split("|")
    return topic, int(seed)


COLORS = {
    "no-drop": "tab:blue",
    "full-ctr": "tab:orange",
    "explore-exploit": "tab:green",
    "guided-ee": "tab:red",
    "fixed-pool": "tab:purple",
}


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys((r["run"], r["population"]) for r in rows))
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.6 * nrows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (run, population) in zip(axes.flat, panels, strict=False):
        for r in rows:
            if (r["run"], r["population"]) == (run, population):
                color = COLORS.get(r["strategy"], "black")  # one colour per strategy in every panel
                ax.plot(100 * np.asarray(r["ctr_curve"]), marker="o", markersize=3, label=r["strategy"], color=color)
        ax.set_title(f"{run}, {population}", fontsize=9)
        ax.set_xlabel("iteration i (pool IP_i)")
        ax.set_ylabel("pool CTR (%)")
        ax.grid(alpha=0.3)
    for ax in axes.flat[: len(panels)]:
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    rows: list[dict[str, Any]] = []
    for run in RUNS:
        path = RESULTS / run / "summary.json"
        if path.is_file():
            rows += strategy_rows(run, json.loads(path.read_text()))
    if not rows:
        raise SystemExit("no results/guided-*/summary.json yet; run bench_quality.py guided-length-5000 first")
    (RESULTS / "issue4.md").write_text(markdown(rows), encoding="utf-8")
    (RESULTS / "issue4.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    plot(rows, RESULTS / "issue4.png")
    print(markdown(rows))


if __name__ == "__main__":
    main()
