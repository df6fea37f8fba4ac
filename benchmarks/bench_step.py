"""One step of several strategies from the same states, judged by the same LLM judge.

    .venv/bin/python benchmarks/bench_step.py            # 36 states x 6 arms, about 35 min on 2 cores
    .venv/bin/python benchmarks/bench_step.py --quick    # 2 states, to try it, not saved
    .venv/bin/python benchmarks/bench_step.py --name step_shorten  # 4 arms: shorten, about 24 min

A loop run mixes everything: which items are dropped, what is written, how sessions are served, and
the click noise of S sessions compounded over 10 iterations; differences between strategies of 2-3
points stay inside the noise of 9 cells. This takes the states IP_i (items, clicks and impressions,
the whole history) that committed cells reached, and applies one ``step`` of each arm to every
state, with the same writer seed, so each arm is compared with the others on identical inputs:

* the mean judge score (1-10, the expected score the simulator uses, for the population's persona)
  of the items each arm writes, by origin (explore / exploit), and minus the first arm's item of that
  origin written from the same state;
* the CTR (Eq. 1) of the pool the step leaves, served uniformly (``expected``) and of its best 3
  items shown in every session (``best 3``), in percent;
* the generator calls and tokens (prompt + completion) of the step, re-asks included.

States: guided-ee's cells of ``guided-llm-5000-thompson`` (S = 5000, Thompson-served), both
personas, 3 topics x seeds 1-2 x iterations 3, 6 and 9. Paired differences against the first arm,
mean ± 95% t-interval over states (and, for an arm of :data:`TWINS`, against its twin). LLM answers
are cached in ``benchmarks/.cache`` like the other quality benchmarks; writes ``results/NAME.json``
with the arms :data:`SAVED` lists for NAME (``step`` by default).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import RESULTS, machine, save_invocation
from issue4_report import best_set_ctr, mean_ci

from clickloop.domains import load_domain
from clickloop.experiment.cell import slug
from clickloop.experiment.files import state_from_json
from clickloop.judges import make_judge
from clickloop.llm.base import Accounting
from clickloop.llm.cache import Accounted, Cached, ResponseCache
from clickloop.llm.registry import make_backend
from clickloop.simulator.click_model import ClickModel, expected_pool_ctr
from clickloop.strategies import ItemConstraints, ItemWriter, make_strategy

CACHE = Path(__file__).parent / ".cache"
SOURCE = RESULTS / "guided-llm-5000-thompson"
SOURCE_STRATEGY = "guided-ee"
TOPICS = ["Cookware Sets", "Spray Bottles", "TV Antennas"]
SEEDS = [1, 2]
ITERATIONS = [3, 6, 9]
PERSONAS = ["Ethical Considerations", "Quality"]
ARMS: dict[str, tuple[str, dict[str, Any]]] = {
    "guided-ee": ("guided-ee", {}),
    "guided-ee, no aspect cap": ("guided-ee", {"max_per_aspect": 5}),
    "guided-ee, the paper's exploit prompt": ("guided-ee", {"exploit_prompt": "paper"}),
    "guided-ee, the paper's prompts": (
        "guided-ee",
        {"exploit_prompt": "paper", "explore_prompt": "paper", "explore_lists": "pool"},
    ),
    "explore-exploit": ("explore-exploit", {}),
    "guided-ee, 3 exploit candidates": ("guided-ee", {"exploit_candidates": 3}),
    "guided-ee, shorten": ("guided-ee", {"shorten": True}),
    "guided-ee, the paper's explore prompt": ("guided-ee", {"explore_prompt": "paper", "explore_lists": "pool"}),
    "guided-ee, the paper's explore prompt, shorten": (
        "guided-ee",
        {"explore_prompt": "paper", "explore_lists": "pool", "shorten": True},
    ),
}
TWINS = {  # an arm that differs from another in one option: also paired with that one
    "guided-ee, the paper's explore prompt, shorten": "guided-ee, the paper's explore prompt",
}
SAVED = {  # which arms each results file holds (the first arm is in all: the others are paired with it)
    "step": [
        "guided-ee",
        "guided-ee, no aspect cap",
        "guided-ee, the paper's exploit prompt",
        "guided-ee, the paper's prompts",
        "explore-exploit",
        "guided-ee, 3 exploit candidates",
    ],
    "step_shorten": [
        "guided-ee",
        "guided-ee, shorten",
        "guided-ee, the paper's explore prompt",
        "guided-ee, the paper's explore prompt, shorten",
    ],
}
MODEL = ClickModel(1.5, 11, 3)  # the paper's T, RS and K, as in every run of the source


def states(quick: bool) -> list[dict[str, Any]]:
    """The committed iteration records to start from (their ``state`` is IP_i after its sessions)."""
    out = []
    for population in PERSONAS:
        for topic in TOPICS:
            for seed in SEEDS:
                cell = SOURCE / "cells" / slug(population) / SOURCE_STRATEGY / slug(topic) / f"seed-{seed}"
                for iteration in ITERATIONS:
                    out.append(json.loads((cell / f"iter-{iteration:03d}.json").read_text()))
    return [out[0], out[len(out) // 2]] if quick else out


def step_row(record: dict[str, Any], domain: Any, llm: Any, judges: dict[int, Any], arms: list[str]) -> dict[str, Any]:
    """Every arm's step from one record's state: the new items with their scores, and the pool's CTRs."""
    state = state_from_json(record["state"])
    seed, topic = int(record["seed"]), record["topic"]
    persona = domain.population(record["population"]).personas[0]
    known = {row["item_id"]: row["scores"][persona.name] for row in record["pool"]}
    judge = judges.setdefault(seed, make_judge("llm", domain, llm, "auto", seed=seed))
    constraints = ItemConstraints(domain.max_words, banned_words=domain.banned_words)
    out: dict[str, Any] = {"topic": topic, "seed": seed, "iteration": record["iteration"], "population": persona.name}
    for label in arms:
        name, options = ARMS[label]
        accounting = Accounting()
        writer = ItemWriter(domain, Accounted(llm, accounting), constraints, seed=seed)
        rng = np.random.default_rng([seed, int(record["iteration"]), 4])
        after = make_strategy(name, **options).step(state, writer, rng)
        usage = accounting.snapshot().get("generator", {})
        new = [i for i in after.pool if i not in state.history]
        for item_id in new:
            known[item_id] = judge.score(after.history[item_id].item.text, persona, topic)
        scores = np.array([[known[i] for i in after.pool]])
        out[label] = {
            "new": [
                {
                    "text": after.history[i].item.text,
                    "origin": after.history[i].item.provenance.origin.value,
                    "score": round(known[i], 3),
                    "answers": after.history[i].item.provenance.attempts,
                    "rejected": dict(after.history[i].item.provenance.notes).get("rejected", ""),
                    "shortened": "shortened_from" in dict(after.history[i].item.provenance.notes),
                }
                for i in new
            ],
            "dropped": len([i for i in state.pool if i not in after.pool]),
            "calls": int(usage.get("calls", 0)),
            "tokens": int(usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)),
            "expected": 100 * expected_pool_ctr(scores, MODEL),
            "best 3": 100 * best_set_ctr(scores, MODEL),
        }
    return out


def paired(rows: list[dict[str, Any]], label: str, reference: str) -> dict[str, Any]:
    """``label`` minus ``reference`` on the same states: judge score by origin, the pool's CTRs, tokens."""
    entry: dict[str, Any] = {}
    for origin in ("explore", "exploit"):
        pairs = [
            (np.mean(a), np.mean(b))
            for row in rows
            if (a := [n["score"] for n in row[label]["new"] if n["origin"] == origin])
            and (b := [n["score"] for n in row[reference]["new"] if n["origin"] == origin])
        ]
        differences = [a - b for a, b in pairs]
        entry[f"{origin} score minus {reference}"] = (*mean_ci(differences), len(pairs)) if pairs else None
    for measure in ("expected", "best 3", "tokens"):
        differences = [row[label][measure] - row[reference][measure] for row in rows]
        entry[f"{measure} minus {reference}"] = mean_ci(differences)
    return entry


def summarize(rows: list[dict[str, Any]], arms: list[str]) -> dict[str, Any]:
    """Per persona and arm: scores by origin, the pool's CTRs, and each minus the first arm, paired."""
    summary: dict[str, Any] = {}
    base_label = arms[0]
    for persona in PERSONAS:
        mine = [row for row in rows if row["population"] == persona]
        for label in arms:
            entry: dict[str, Any] = {}
            for origin in ("explore", "exploit"):
                values = [n["score"] for row in mine for n in row[label]["new"] if n["origin"] == origin]
                entry[f"{origin} score"] = (*mean_ci(values), len(values)) if values else None
            for measure in ("expected", "best 3"):
                entry[measure] = mean_ci([row[label][measure] for row in mine])
            for reference in (base_label, *([TWINS[label]] if label in TWINS else [])):
                entry.update(paired(mine, label, reference))
            entry["steps with no new item"] = sum(not row[label]["new"] for row in mine)
            for measure in ("calls", "tokens"):  # generator calls and tokens per step, cached answers included
                entry[f"{measure} per step"] = float(np.mean([row[label][measure] for row in mine]))
            written = [n for row in mine for n in row[label]["new"]]
            if written and "answers" in written[0]:  # recorded since the shorten arms were added
                entry["answers per item"] = float(np.mean([n["answers"] for n in written]))
                entry["items shortened"] = sum(n["shortened"] for n in written)
                reasons: dict[str, int] = {}
                for n in written:
                    for code in filter(None, n["rejected"].split(",")):
                        reasons[code] = reasons.get(code, 0) + 1
                entry["rejections by rule"] = dict(sorted(reasons.items()))
            summary[f"{persona} / {label}"] = entry
    for label in arms:  # both personas together: the totals benchmarks/README.md quotes
        written = [n for row in rows for n in row[label]["new"]]
        codes = [code for n in written for code in filter(None, n.get("rejected", "").split(","))]
        summary[f"all states / {label}"] = {
            "tokens": sum(row[label]["tokens"] for row in rows),
            "rejections": len(codes),
            "too-long rejections": codes.count("too-long"),
            "items shortened": sum(n.get("shortened", False) for n in written),
        }
    return summary


def report(summary: dict[str, Any], base_label: str) -> None:
    for key, entry in summary.items():
        if key.startswith("all states / "):
            print(f"{key:50s}  " + "  ".join(f"{k} {v:,}" for k, v in entry.items()))
            continue
        parts = [f"{key:50s}"]
        for origin in ("explore", "exploit"):
            value = entry[f"{origin} score"]
            delta = entry[f"{origin} score minus {base_label}"]
            parts.append(
                f"{origin} {value[0]:.2f} ± {value[1]:.2f} ({value[2]}, Δ {delta[0]:+.2f} ± {delta[1]:.2f})"
                if value and delta
                else f"{origin} -"
            )
        for measure in ("expected", "best 3"):
            (m, c), (dm, dc) = entry[measure], entry[f"{measure} minus {base_label}"]
            parts.append(f"{measure} {m:.1f} ± {c:.1f} (Δ {dm:+.1f} ± {dc:.1f})")
        parts.append(f"calls {entry['calls per step']:.2f}  tokens {entry['tokens per step']:,.0f}")
        if "answers per item" in entry:
            parts.append(f"answers/item {entry['answers per item']:.2f}  rejected {entry['rejections by rule']}")
        twin = TWINS.get(key.split(" / ", 1)[1])
        if twin:
            deltas = [entry[f"{m} minus {twin}"] for m in ("explore score", "exploit score", "tokens")]
            parts.append(f"minus {twin}: " + ", ".join(f"{d[0]:+.2f} ± {d[1]:.2f}" if d else "-" for d in deltas))
        print("  ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 states, not saved")
    parser.add_argument("--name", choices=sorted(SAVED), default="step", help="which arms, saved as results/NAME.json")
    args = parser.parse_args()
    arms = SAVED[args.name]
    domain = load_domain("ecommerce")
    llm = Cached(make_backend("llamacpp", n_parallel=1), ResponseCache(CACHE / "llm-cache.sqlite"))
    judges: dict[int, Any] = {}
    records = states(args.quick)
    started = time.perf_counter()
    rows = []
    for k, record in enumerate(records):
        rows.append(step_row(record, domain, llm, judges, arms))
        print(f"\r{k + 1}/{len(records)} states", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    summary = summarize(rows, arms)
    report(summary, arms[0])
    if not args.quick:
        save_invocation(
            args.name,
            {
                "benchmark": "step",
                "machine": machine(),
                "wall_seconds_this_invocation": round(time.perf_counter() - started, 1),
                "source": f"{SOURCE.name} / {SOURCE_STRATEGY}",
                "arms": {label: {"strategy": ARMS[label][0], "options": ARMS[label][1]} for label in arms},
                "states": len(rows),
                "summary": summary,
                "rows": rows,
            },
            omit=("summary", "rows"),
        )


if __name__ == "__main__":
    main()
