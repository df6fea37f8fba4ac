"""The LLM-judge task replayed: every strategy's real code on the items the 1.5B wrote, without the LLM.

    .venv/bin/python benchmarks/bench_replay.py              # 30 seeds a topic: 90 cells a persona and arm
    .venv/bin/python benchmarks/bench_replay.py --sweep      # guided-ee's options one at a time, S = 300
    .venv/bin/python benchmarks/bench_replay.py --quick      # 2 seeds a topic, nothing saved
    .venv/bin/python benchmarks/bench_replay.py --budget 300 # one feedback budget only
    .venv/bin/python benchmarks/bench_replay.py --hold-out RUN,RUN --arms "A;B"  # bank without those runs
    .venv/bin/python benchmarks/bench_replay.py --redraw     # the .md files and replay.png from the .json

``bench_quality.py`` costs 15 to 30 minutes a seed on 2 cores, so its arms carry intervals of 2 to 4
points of CTR over 9 cells, as wide as the differences the issue asks about. The simulated writer of
``bench_policies.py`` is cheap but writes for the length judge, whose optimum is far above the start.
This benchmark keeps the LLM-judge task itself: the writer draws its answers from the questions the 1.5B
wrote in the committed LLM-judge runs, and the judge gives each the score the 1.5B gave it
(``_replay.py`` says how, and what it cannot replay). The strategies, runner, click model (Eq. 1) and
serving policies are the real ones, on the same 3 categories x 2 personas x 10 iterations as
``bench_quality.py``'s ``guided-llm-*`` runs, at S = 300 and S = 5000.

Two checks come first in the output: the replay against the committed LLM runs, arm by arm (does it
reproduce their Last CTRs?), then the issue's comparison with many more cells: each arm's Last CTR, its
ratio to the paper's explore-exploit served uniformly, and its difference from the fixed-pool bandit,
paired by cell where both start from the same 20 items. Writes ``results/replay.{json,md,png}``
(``--sweep``: ``replay_sweep.{json,md}``; ``--hold-out``: ``replay_held_out.{json,md}``).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _replay
import numpy as np
from _common import RESULTS, machine, save
from issue4_report import mean_ci
from tqdm import tqdm

from clickloop.experiment.config import build_config
from clickloop.experiment.runner import run_experiment
from clickloop.llm.scripted import ScriptedLLM
from clickloop.simulator.click_model import ClickModel

TOPICS = ["Cookware Sets", "Spray Bottles", "TV Antennas"]
PERSONAS = ["Quality", "Ethical Considerations"]
REFERENCE = "explore-exploit, uniform"  # the paper's method and protocol: the issue's 1.2x is against it
BANDIT = "fixed-pool"
SHORTEN_OPTIONS = {"explore_prompt": "paper", "explore_lists": "pool", "shorten": True}

# label -> (strategy, run options); arms with |IP| = 20 start from fixed-pool's own 20 items
ARMS: dict[str, tuple[str, dict[str, Any]]] = {
    REFERENCE: ("explore-exploit", {"serving": "uniform"}),
    "explore-exploit, thompson": ("explore-exploit", {"serving": "thompson"}),
    "guided-ee, thompson": ("guided-ee", {"serving": "thompson"}),
    BANDIT: ("fixed-pool", {"serving": "thompson"}),
    "guided-ee, thompson, 20 items": ("guided-ee", {"serving": "thompson", "pool_size": 20}),
    "guided-ee, thompson, 20 items, shorten settings": (
        "guided-ee",
        {"serving": "thompson", "pool_size": 20, "strategy_options": {"guided-ee": SHORTEN_OPTIONS}},
    ),
}
# ``--sweep``: guided-ee's options, one at a time, on top of the arm the README recommends, at S = 300
SWEEP_BASE = "guided-ee, thompson, 20 items, shorten settings"
SWEEP: dict[str, dict[str, Any]] = {
    "1 new item an iteration, from the explore prompt": {"n_explore": 1, "n_exploit": 0},
    "1 new item an iteration, from the exploit prompt": {"n_explore": 0, "n_exploit": 1},
    "2 explore items, no exploit": {"n_explore": 2, "n_exploit": 0},
    "2 exploit items, no explore": {"n_explore": 0, "n_exploit": 2},
    "2 explore + 2 exploit items": {"n_explore": 2, "n_exploit": 2},
    "drop_confidence 0.8": {"drop_confidence": 0.8},
    "drop_confidence 0.95": {"drop_confidence": 0.95},
    "min_impressions 10": {"min_impressions": 10},
    "min_impressions 40": {"min_impressions": 40},
    "max_per_aspect 1": {"max_per_aspect": 1},
    "max_per_aspect 3": {"max_per_aspect": 3},
    "exploit_prompt paper": {"exploit_prompt": "paper"},
    "exploit_target mean": {"exploit_target": "mean"},
    "history_weight 0.5": {"history_weight": 0.5},
    "n_ranked 5": {"n_ranked": 5},
    "10 items": {"pool_size": 10},
    "30 items": {"pool_size": 30},
}


def sweep_arm(change: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """:data:`SWEEP_BASE` with one change: ``pool_size`` is a run option, the rest guided-ee options."""
    strategy, options = ARMS[SWEEP_BASE]
    guided = {**SHORTEN_OPTIONS, **{k: v for k, v in change.items() if k != "pool_size"}}
    run = {"pool_size": change["pool_size"]} if "pool_size" in change else {}
    return strategy, {**options, **run, "strategy_options": {"guided-ee": guided}}


ARMS.update({label: sweep_arm(change) for label, change in SWEEP.items()})

# the committed LLM runs each arm is checked against: run folder, strategy, served as
LLM_RUNS: dict[int, dict[str, list[tuple[str, str]]]] = {
    300: {
        REFERENCE: [("guided-llm-300", "explore-exploit"), ("guided-llm-300-seeds5-7", "explore-exploit")],
        "explore-exploit, thompson": [("guided-llm-300-seeds5-7-thompson", "explore-exploit")],
        "guided-ee, thompson": [("guided-llm-300-seeds5-7-thompson", "guided-ee")],
        BANDIT: [("guided-llm-300-seeds5-7", "fixed-pool"), ("guided-llm-300", "fixed-pool")],
        "guided-ee, thompson, 20 items": [("guided-llm-300-pool20", "guided-ee")],
        "guided-ee, thompson, 20 items, shorten settings": [("guided-llm-300-pool20-shorten", "guided-ee")],
    },
    5000: {
        REFERENCE: [("guided-llm-5000", "explore-exploit"), ("guided-llm-5000-seeds2-3", "explore-exploit")],
        "explore-exploit, thompson": [("guided-llm-5000-thompson", "explore-exploit")],
        "guided-ee, thompson": [("guided-llm-5000-thompson", "guided-ee")],
        BANDIT: [("guided-llm-5000-pool20-shorten", "fixed-pool"), ("guided-llm-5000-pool20", "fixed-pool")],
        "guided-ee, thompson, 20 items": [("guided-llm-5000-pool20", "guided-ee")],
        "guided-ee, thompson, 20 items, shorten settings": [("guided-llm-5000-pool20-shorten", "guided-ee")],
    },
}


def llm_cells(budget: int, arm: str, persona: str) -> list[float]:
    """Last CTRs of the committed LLM runs behind ``arm`` at ``budget`` (every cell of each run)."""
    last = []
    for run, strategy in LLM_RUNS[budget].get(arm, []):
        path = RESULTS / run / "summary.json"
        if path.is_file():
            entry = json.loads(path.read_text())["results"].get(persona, {}).get(strategy, {})
            last += [cell["ctr"][-1] for cell in entry.get("cells", [])]
    return last


def run_arm(
    bank: _replay.Bank, arm: str, budget: int, persona: str, seeds: list[int], out_root: Path
) -> dict[tuple[str, int], dict[str, float]]:
    """One arm for one persona: (topic, seed) -> its Last and Avg CTR."""
    strategy, options = ARMS[arm]
    config = build_config(
        {
            "domain": "ecommerce",
            "topics": TOPICS,
            "populations": [persona],
            "strategies": [strategy],
            "iterations": 10,
            "n_sessions": budget,
            "llm": "scripted",
            "judge": "_replay:judge",
            "no_cache": True,
            "skip_failed_steps": True,
            "seeds": seeds,
            **options,
        }
    )
    out = out_root / re.sub(r"[^A-Za-z0-9.]+", "-", f"{budget}-{persona}-{arm}")
    writer = ScriptedLLM(_replay.make_writer(bank, persona), backend_id="replay-1.5b")
    outcome = run_experiment(config, out, backend=writer)
    cells = outcome.summary["results"][persona][strategy]["cells"]
    return {(c["topic"], c["seed"]): {"last": c["ctr"][-1], "avg": float(np.mean(c["ctr"][1:]))} for c in cells}


def compare(arms: dict[str, dict[tuple[str, int], dict[str, float]]]) -> dict[str, dict[str, Any]]:
    """Per arm: Last and Avg CTR (mean, 95% half-width), the ratio of its mean Last CTR to the reference's,
    and its Last CTR minus the reference's and the bandit's, paired by (topic, seed)."""
    rows = {}
    for arm, cells in arms.items():
        keys = sorted(cells)
        last = [cells[k]["last"] for k in keys]
        row: dict[str, Any] = {
            "cells": len(keys),
            "last_ctr": mean_ci(last),
            "avg_ctr": mean_ci([cells[k]["avg"] for k in keys]),
        }
        for other, label in ((REFERENCE, "reference"), (BANDIT, "bandit"), (SWEEP_BASE, "base")):
            if other in arms and other != arm:
                shared = [k for k in keys if k in arms[other]]
                row[f"ratio_to_{label}"] = float(np.mean(last) / np.mean([arms[other][k]["last"] for k in shared]))
                row[f"minus_{label}"] = mean_ci([cells[k]["last"] - arms[other][k]["last"] for k in shared])
        rows[arm] = row
    return rows


def pct(pair: tuple[float, float], signed: bool = False) -> str:
    mean, half = pair
    return f"{100 * mean:+.1f} ± {100 * half:.1f}" if signed else f"{100 * mean:.1f} ± {100 * half:.1f}"


def markdown(record: dict[str, Any]) -> str:
    sweep = record["mode"] == "sweep"
    cells = 3 * record["seeds_per_topic"]
    lines = [
        "# The LLM-judge task replayed (`bench_replay.py" + (" --sweep`)" if sweep else "`)"),
        "",
        "The 1.5B's own questions and judge scores from the committed LLM-judge runs, drawn by a replay",
        "writer (`_replay.py`); the strategies, runner, click model and serving are the real code.",
        f"3 categories x {record['seeds_per_topic']} seeds = {cells} cells per persona and arm, 10 iterations.",
        "CTR in percent, mean ± 95% t-interval over cells. Differences are paired by (category, seed);",
        "arms on 20 items start from fixed-pool's own 20 items. EE uniform: the paper's explore-exploit",
        "served uniformly (the issue's 1.2x is against it).",
        "",
    ]
    if sweep:
        lines += [f"Each row changes one option of `{SWEEP_BASE}` (the base row).", ""]
    if record["bank"]["held_out"]:
        held = ", ".join(f"`{run}`" for run in record["bank"]["held_out"])
        lines += [f"Held out: the bank has no item of {held}, so their Last CTRs are predicted, not replayed.", ""]
    for budget, by_persona in record["budgets"].items():
        head = "| persona | arm | Last CTR | Avg CTR | ratio to EE uniform | − fixed-pool (points) |"
        rule = "|---|---|---:|---:|---:|---:|"
        if sweep:
            head, rule = head + " − base (points) |", rule + "---:|"
        else:
            head, rule = head + " Last CTR of the LLM runs (cells) |", rule + "---:|"
        lines += [f"## S = {budget}", "", head, rule]
        for persona, rows in by_persona.items():
            for arm, row in rows.items():
                cols = [
                    persona,
                    arm,
                    pct(row["last_ctr"]),
                    pct(row["avg_ctr"]),
                    f"{row['ratio_to_reference']:.2f}" if "ratio_to_reference" in row else "–",
                    pct(row["minus_bandit"], signed=True) if "minus_bandit" in row else "–",
                ]
                if sweep:
                    cols.append(pct(row["minus_base"], signed=True) if "minus_base" in row else "–")
                else:
                    llm = row.get("llm_last_ctr")
                    cols.append(f"{pct(llm)} ({row['llm_cells']})" if llm else "–")
                lines.append("| " + " | ".join(cols) + " |")
        lines.append("")
    if sweep:
        beyond = [
            f"{persona}, {arm}: {pct(row['minus_base'], signed=True)}"
            for by_persona in record["budgets"].values()
            for persona, rows in by_persona.items()
            for arm, row in rows.items()
            if arm in SWEEP and abs(row["minus_base"][0]) > row["minus_base"][1]
        ]
        compared = sum(arm in SWEEP for by in record["budgets"].values() for rows in by.values() for arm in rows)
        lines += [resolution(), ""]
        lines += [
            f"Differences from the base beyond their 95% interval: {len(beyond)} of {compared} "
            f"(about {0.05 * compared:.1f} expected by chance)" + (": " + "; ".join(beyond) if beyond else "."),
            "",
        ]
    else:
        inside, total = agreement(record)
        lines += [f"Replayed Last CTR inside the 95% interval of the LLM runs of its arm: {inside} of {total}.", ""]
    return "\n".join(lines)


def resolution(better: float = 8.1, worse: float = 7.9, beside: float = 8.0) -> str:
    """What telling two close items apart costs at the paper's T, RS and K (Eq. 1): each one's clicks per
    impression when shown beside K - 1 items scoring ``beside``, and the impressions each needs before
    the two are two standard errors apart."""
    model = ClickModel()
    others = (model.k_shown - 1) * math.exp(beside / model.temperature)
    reject = math.exp(model.rejection_score / model.temperature)
    p = [math.exp(s / model.temperature) / (reject + others + math.exp(s / model.temperature)) for s in (better, worse)]
    n = (p[0] * (1 - p[0]) + p[1] * (1 - p[1])) * (2 / (p[0] - p[1])) ** 2
    return (
        f"Eq. 1 (T = {model.temperature}, RS = {model.rejection_score}, K = {model.k_shown}): an item scoring "
        f"{better} is clicked {100 * p[0]:.1f}% of its impressions and one scoring {worse} {100 * p[1]:.1f}%, "
        f"each shown beside items scoring {beside}; they are two standard errors apart after about {n:,.0f} "
        "impressions each."
    )


def agreement(record: dict[str, Any]) -> tuple[int, int]:
    """How many arms' replayed mean Last CTR lies inside the 95% interval of their LLM runs, of how many
    arms have LLM runs."""
    inside = total = 0
    for by_persona in record["budgets"].values():
        for rows in by_persona.values():
            for row in rows.values():
                if "llm_last_ctr" in row:
                    mean, half = row["llm_last_ctr"]
                    total += 1
                    inside += abs(row["last_ctr"][0] - mean) <= half
    return inside, total


def plot(record: dict[str, Any], path: Path) -> None:
    """One panel per budget and persona: each arm's replayed Last CTR (bar, 95% interval) and the
    committed LLM runs' (dot, 95% interval)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = list(record["budgets"])
    fig, axes = plt.subplots(len(budgets), len(PERSONAS), figsize=(12, 3.2 * len(budgets)), squeeze=False)
    for row, budget in enumerate(budgets):
        for col, persona in enumerate(PERSONAS):
            ax = axes[row][col]
            rows = record["budgets"][budget][persona]
            labels = list(rows)
            y = np.arange(len(labels))
            means = [100 * rows[a]["last_ctr"][0] for a in labels]
            errors = [100 * rows[a]["last_ctr"][1] for a in labels]
            ax.errorbar(means, y - 0.12, xerr=errors, fmt="s", color="#3182bd", capsize=3, label="replay")
            for k, arm in enumerate(labels):
                if "llm_last_ctr" in rows[arm]:
                    mean, half = rows[arm]["llm_last_ctr"]
                    ax.errorbar(
                        100 * mean,
                        k + 0.12,
                        xerr=100 * half,
                        fmt="o",
                        color="black",
                        capsize=3,
                        label="LLM runs" if k == 0 else None,
                    )
            reference = 100 * rows[REFERENCE]["last_ctr"][0]
            ax.axvline(1.2 * reference, color="#d62728", linestyle="--", label="1.2 x EE uniform")
            ax.set_yticks(y, labels if col == 0 else [""] * len(labels), fontsize=8)
            ax.grid(axis="x", alpha=0.3)
            ax.invert_yaxis()
            ax.set_title(f"S = {budget}, {persona}", fontsize=10)
            ax.set_xlabel("Last CTR (%)")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=3, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds a topic, nothing saved")
    parser.add_argument("--seeds", type=int, default=30, help="seeds a topic (default 30)")
    parser.add_argument("--budget", type=int, choices=(300, 5000), action="append", help="S (default: both)")
    parser.add_argument("--sweep", action="store_true", help="guided-ee's options one at a time, S = 300")
    parser.add_argument(
        "--hold-out", help="comma-separated runs whose items the bank leaves out (writes replay_held_out)"
    )
    parser.add_argument("--arms", help="semicolon-separated arm labels (default: every arm of the mode)")
    parser.add_argument(
        "--redraw", action="store_true", help="only rewrite the .md files and replay.png from the .json"
    )
    args = parser.parse_args()
    if args.redraw:
        for done in ("replay", "replay_sweep", "replay_held_out"):
            if (RESULTS / f"{done}.json").is_file():
                record = json.loads((RESULTS / f"{done}.json").read_text())
                (RESULTS / f"{done}.md").write_text(markdown(record), encoding="utf-8")
                if done == "replay":
                    plot(record, RESULTS / "replay.png")
        return
    seeds = list(range(1, 1 + (2 if args.quick else args.seeds)))
    if args.sweep:
        name, budgets, arms = "replay_sweep", args.budget or [300], [REFERENCE, BANDIT, SWEEP_BASE, *SWEEP]
    else:
        name, budgets, arms = "replay", args.budget or [300, 5000], [a for a in ARMS if a not in SWEEP]
    held_out = args.hold_out.split(",") if args.hold_out else []
    if held_out:
        name += "_held_out"
    if args.arms:
        arms = args.arms.split(";")
    started = time.perf_counter()
    bank = _replay.load_bank(RESULTS, exclude=held_out)
    _replay.use(bank)
    record: dict[str, Any] = {
        "benchmark": name,
        "mode": "sweep" if args.sweep else "arms",
        "machine": machine(),
        "seeds_per_topic": len(seeds),
        "bank": {"runs": bank.runs, "held_out": held_out, **bank.counts(), "stats": bank.stats()},
        "arms": {arm: {"strategy": ARMS[arm][0], "options": ARMS[arm][1]} for arm in arms},
        "budgets": {},
    }
    with tempfile.TemporaryDirectory(prefix="clickloop-replay-") as tmp:
        for budget in budgets:
            record["budgets"][str(budget)] = {}
            for persona in PERSONAS:
                found = {}
                for arm in tqdm(arms, desc=f"S = {budget}, {persona}", unit="arm", file=sys.stderr):
                    found[arm] = run_arm(bank, arm, budget, persona, seeds, Path(tmp))
                rows = compare(found)
                for arm, row in rows.items():
                    llm = llm_cells(budget, arm, persona)
                    if llm and not args.sweep:
                        row["llm_last_ctr"], row["llm_cells"] = mean_ci(llm), len(llm)
                record["budgets"][str(budget)][persona] = rows
    record["seconds"] = round(time.perf_counter() - started, 1)
    text = markdown(record)
    if not args.quick:
        save(name, record)
        (RESULTS / f"{name}.md").write_text(text, encoding="utf-8")
        if name == "replay":
            plot(record, RESULTS / "replay.png")
    print(text)


if __name__ == "__main__":
    main()
