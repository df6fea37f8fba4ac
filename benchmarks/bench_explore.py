"""guided-ee's explore step against the paper's, on the same histories, judged by the same LLM judge.

    .venv/bin/python benchmarks/bench_explore.py            # 27 histories, about 10 min on 2 cores
    .venv/bin/python benchmarks/bench_explore.py --quick    # 3 histories, to try it

Over every LLM-judge run, guided-ee's explore items score 0.2-0.3 below explore-exploit's explore
items for both personas, while its exploit items score higher (:func:`origin_scores`, from the
committed runs, kept in ``results/explore.json``). This asks which part of the explore step does it.
The histories are the pools of the committed ``guided-llm-300-seeds5-7-thompson`` guided-ee cells
(Quality persona's run, 3 topics x seeds 5-7 x iterations 3, 6 and 9): the texts of every item so
far, and the live pool. On each, the embedded 1.5B writes one explore item four ways, with the
generator settings of the benchmarks (temperature 0.8, the cell's seed):

* ``guided, history``: guided-ee as it is. The ``guided_explore`` prompt lists the whole history and
  asks for 3 questions on aspects none of them covers; the most novel against the history is kept.
* ``guided, history, first``: the same answer, its first question (no novelty choice).
* ``guided, pool``: the same prompt listing only the live pool, as the paper's explore prompt does;
  the most novel against the whole history is kept.
* ``paper``: explore-exploit's ``iterate_plain`` prompt on the live pool, one question.

Each item is scored by the LLM judge for both personas (1-10, the expected score the simulator uses).
Mean ± 95% t-interval over histories, and each variant minus ``guided, history`` paired by history.
LLM answers are cached in ``benchmarks/.cache`` like the other quality benchmarks; writes
``results/explore.json``.
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
from issue4_report import mean_ci

from clickloop.core.items import ItemOrigin
from clickloop.core.pool import Context
from clickloop.domains import load_domain
from clickloop.experiment.cell import slug
from clickloop.judges import make_judge
from clickloop.llm.cache import Cached, ResponseCache
from clickloop.llm.registry import make_backend
from clickloop.strategies import ItemConstraints, ItemWriter
from clickloop.strategies.aspects import AspectGrouper

CACHE = Path(__file__).parent / ".cache"
SOURCE = RESULTS / "guided-llm-300-seeds5-7-thompson"
TOPICS = ["Cookware Sets", "Spray Bottles", "TV Antennas"]
SEEDS = [5, 6, 7]
ITERATIONS = [3, 6, 9]
PERSONAS = ["Quality", "Ethical Considerations"]
VARIANTS = ["guided, history", "guided, history, first", "guided, pool", "paper"]
N_CANDIDATES = 3


def options_of(run: Path) -> dict[str, Any]:
    """The ``strategy_options`` a committed run was configured with."""
    return dict(json.loads((run / "config.json").read_text())["config"]["strategy_options"])


def origin_scores() -> dict[str, dict[str, float]]:
    """Judge score of every item written in the committed LLM-judge runs, by persona, strategy and origin
    (each item once per cell): mean, 95% half-width and count. Strategies run with options of their own
    (``strategy_options``, e.g. ``explore_lists`` in ``guided-llm-300-explore-pool``) are left out, so
    each row is a strategy at its defaults."""
    scores: dict[str, dict[str, float]] = {}
    seen: set[tuple[str, ...]] = set()
    found: dict[str, list[float]] = {}
    for path in sorted(RESULTS.glob("guided-llm-*/cells/*/*/*/seed-*/iter-*.json")):
        record = json.loads(path.read_text())
        if record["strategy"] in options_of(path.parents[5]):
            continue
        for row in record["pool"]:
            origin = row["provenance"]["origin"]
            key = (*path.parts[-6:-1], row["item_id"])
            if origin == "initial" or key in seen:
                continue
            seen.add(key)
            found.setdefault(f"{record['population']} / {record['strategy']} / {origin}", []).append(row["mean_score"])
    for label, values in sorted(found.items()):
        mean, ci = mean_ci(values)
        scores[label] = {"mean": round(mean, 3), "ci": round(ci, 3), "n": len(values)}
    return scores


def histories(quick: bool) -> list[dict[str, Any]]:
    """(topic, seed, iteration, every text so far, live pool texts) from the committed cells."""
    out = []
    for topic in TOPICS[:1] if quick else TOPICS:
        for seed in SEEDS:
            cell = SOURCE / "cells" / slug("Quality") / "guided-ee" / slug(topic) / f"seed-{seed}"
            seen: list[str] = []
            for iteration in range(max(ITERATIONS) + 1):
                pool = [row["text"] for row in json.loads((cell / f"iter-{iteration:03d}.json").read_text())["pool"]]
                seen += [text for text in pool if text not in seen]
                if iteration in ITERATIONS:
                    out.append(
                        {"topic": topic, "seed": seed, "iteration": iteration, "history": list(seen), "pool": pool}
                    )
    return out[:3] if quick else out


def lines(texts: list[str]) -> str:
    return "\n".join(f"Question: {t}" for t in texts)


def explore_items(writer: ItemWriter, grouper: AspectGrouper, case: dict[str, Any]) -> dict[str, str]:
    context = Context(f"{slug(case['topic'])}-{case['seed']}", "ecommerce", case["topic"])
    history, pool, step = case["history"], case["pool"], case["iteration"] + 1
    out = {}
    for label, listed in (("guided, history", history), ("guided, pool", pool)):
        candidates = writer.write_candidates(
            context, "guided_explore", ItemOrigin.EXPLORE, step, history, N_CANDIDATES, questions=lines(listed)
        )
        novelty = [grouper.novelty(c.text, history, case["topic"]) for c in candidates]
        out[label] = candidates[int(np.argmax(novelty))].text
        if label == "guided, history":
            out["guided, history, first"] = candidates[0].text
    out["paper"] = writer.write_one(
        context, "iterate_plain", ItemOrigin.EXPLORE, step, history, questions=lines(pool)
    ).text
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 histories, not saved")
    args = parser.parse_args()
    by_origin = origin_scores()
    for label, entry in by_origin.items():
        print(f"{label:55s} {entry['mean']:.2f} ± {entry['ci']:.2f} ({entry['n']})")
    domain = load_domain("ecommerce")
    llm = Cached(make_backend("llamacpp", n_parallel=1), ResponseCache(CACHE / "llm-cache.sqlite"))
    judge = make_judge("llm", domain, llm, "auto", seed=0)
    personas = {name: domain.population(name).personas[0] for name in PERSONAS}
    grouper = AspectGrouper(None, "words")
    cases = histories(args.quick)
    started = time.perf_counter()
    rows = []
    for k, case in enumerate(cases):
        writer = ItemWriter(
            domain, llm, ItemConstraints(domain.max_words, banned_words=domain.banned_words), seed=case["seed"]
        )
        items = explore_items(writer, grouper, case)
        scores = {
            variant: {name: judge.score(text, persona, case["topic"]) for name, persona in personas.items()}
            for variant, text in items.items()
        }
        rows.append({**{key: case[key] for key in ("topic", "seed", "iteration")}, "items": items, "scores": scores})
        print(f"\r{k + 1}/{len(cases)} histories", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    summary: dict[str, Any] = {}
    for name in PERSONAS:
        base = [row["scores"]["guided, history"][name] for row in rows]
        for variant in VARIANTS:
            values = [row["scores"][variant][name] for row in rows]
            summary[f"{name} / {variant}"] = {
                "score": mean_ci(values),
                "minus_guided_history": mean_ci([v - b for v, b in zip(values, base, strict=True)]),
            }
            (m, c), (dm, dc) = summary[f"{name} / {variant}"].values()
            print(f"{name:24s} {variant:24s} {m:.2f} ± {c:.2f}   Δ {dm:+.2f} ± {dc:.2f}")
    if not args.quick:
        save_invocation(
            "explore",
            {
                "benchmark": "explore",
                "machine": machine(),
                "wall_seconds_this_invocation": round(time.perf_counter() - started, 1),
                "histories": len(rows),
                "summary": summary,
                "written_items_by_origin": by_origin,
                "rows": rows,
            },
            omit=("summary", "written_items_by_origin", "rows"),
        )


if __name__ == "__main__":
    main()
