"""The optimizers' statistics alone: every strategy's real code, with a simulated writer instead of an LLM.

    .venv/bin/python benchmarks/bench_policies.py            # about 10 min on 2 cores
    .venv/bin/python benchmarks/bench_policies.py --quick    # 4 seeds, to try it
    .venv/bin/python benchmarks/bench_policies.py --sweep    # guided-ee's drop options at S = 300 (3 min)
    .venv/bin/python benchmarks/bench_policies.py --calibrate   # the 1.5B's exploit steps, from committed runs
    .venv/bin/python benchmarks/bench_policies.py --diagnose    # turnover and pool scores, Thompson, S = 300
    .venv/bin/python benchmarks/bench_policies.py --trace 3     # one seed's pools, iteration by iteration
    .venv/bin/python benchmarks/bench_policies.py --priors      # Thompson serving's prior: Beta(1, 1) or pooled

The LLM-judge benchmarks (``bench_quality.py``) cost 20 minutes a seed, so they cannot say which drop
rule, evidence window or serving policy is better: the noise of two or three seeds is as large as the
differences. Here the writer is a simulated one whose skill is known, so the runner, the strategies, the
click model and the serving policies run exactly as in those benchmarks, for 40 seeds a setting in
minutes. What it measures is the part of each optimizer that code decides: which items go, which one
is the exploit target, and what users are shown.

The task is the paper's length judge QS-w (Appendix E): a question of w words scores
(w - 4) * 9/11 + 1, clipped to [1, 10]; the optimum CTR is 60.6%. The simulated writer, calibrated on
what the embedded 1.5B wrote in the ``guided-length-*`` runs (``--calibrate`` measures it):

* initial pool and explore items: N(9.7, 3.0) words, rounded and clipped to 4..15 (the 1.5B's IP_0
  scored 5.7 ± 2.5 there), since exploring knows nothing of what users click;
* exploit items (``exploit``, ``iterate_ctr``, ``guided_exploit``): the target's length plus a rounded
  N(mu, sd) step, clipped to 4..15 words. Two writers: ``faithful`` (mu = 0, sd = 1.5: as good as the
  target on average) and ``regressing`` (mu = -1.3, sd = 1.8 words, i.e. 1.1 points below the target
  with a spread of 1.5: what the 1.5B's exploit items did against their targets, -0.98 to -1.55
  points). The target is what the prompt names: guided-ee's Thompson choice, or for the paper's
  prompts the question listed with the highest CTR. The simulated writer reads CTRs perfectly, as
  GPT-4 did in the paper and the 1.5B does not.

``--calibrate`` reads the committed ``guided-*`` runs: the score of each guided-ee exploit item minus
its target's (its notes name the target), and the scores of initial and explore items
(``results/policies_calibration.json``). ``--diagnose`` reruns explore-exploit and guided-ee at
S = 300 under Thompson serving (regressing writer, 8 seeds) and counts new items per iteration and the
mean scores of the pools' items, best first (``results/policies_diagnosis.json``).

``--trace SEED`` prints, for one seed at S = 300 under Thompson serving (regressing writer), every
pool of guided-ee with ``min_impressions`` 100 and 20 and of explore-exploit: each item's score,
clicks / impressions in that iteration and impressions in all, and the scores of the items dropped.

``--priors`` serves every session by Thompson sampling at S = 300 with the uniform Beta(1, 1) prior
(the default) and with the pool's empirical-Bayes prior of strength 10, 30 and 100 pseudo-impressions
(``ThompsonServing.prior_strength``): explore-exploit, guided-ee and fixed-pool with |IP| = 5, and
guided-ee with |IP| = 20, regressing writer, 40 seeds (``results/policies_priors.json``).

``--sweep`` instead varies guided-ee's drop rule (``min_impressions``, ``patience_impressions``,
``drop_confidence``, ``history_weight``, ``monotone_drops``) at S = 300, beside explore-exploit, for
the regressing writer, 40 seeds (``results/policies_sweep.{json,md}``).

Each question is made of random filler words, so no two collide. Answers are a function of the
request, the seed included, so every run is reproducible. Writes ``results/policies.json`` and
``results/policies.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import RESULTS, machine, save
from issue4_report import expected_last, mean_ci

from clickloop.experiment.config import build_config
from clickloop.experiment.runner import run_experiment
from clickloop.llm.base import ChatRequest
from clickloop.llm.scripted import ScriptedLLM
from clickloop.simulator.click_model import ClickModel
from clickloop.simulator.serving import ThompsonServing

STRATEGIES = ["no-drop", "full-ctr", "explore-exploit", "guided-ee", "fixed-pool"]
EXPLORE_WORDS = (9.7, 3.0)  # mean, sd
WRITERS = {"faithful": (0.0, 1.5), "regressing": (-1.3, 1.8)}  # exploit step in words: mean, sd
_CTR_PAIR = re.compile(r"Question: (.+)\nCTR: ([0-9.]+)%")


def _rng(request: ChatRequest) -> np.random.Generator:
    text = "\x1f".join(m.content for m in request.messages) + f"\x1f{request.seed}\x1f{request.sample_index}"
    return np.random.default_rng(int(hashlib.sha256(text.encode()).hexdigest()[:15], 16))


def _question(n_words: int, rng: np.random.Generator) -> str:
    filler = ["".join(rng.choice(list("bcdfghklmnprstvz"), 2)) + rng.choice(list("aeiou")) for _ in range(n_words - 1)]
    return "Is " + " ".join(filler) + "?"


def _explore_words(rng: np.random.Generator) -> int:
    return int(np.clip(round(rng.normal(*EXPLORE_WORDS)), 4, 15))


def make_writer(profile: str):  # noqa: ANN201 - a Responder
    """The simulated writer ``profile`` (``faithful`` or ``regressing``): a ScriptedLLM responder."""
    step_mean, step_sd = WRITERS[profile]

    def step(target: str, rng: np.random.Generator) -> int:
        return int(np.clip(len(target.split()) + round(rng.normal(step_mean, step_sd)), 4, 15))

    def answer(request: ChatRequest) -> str:
        prompt = request.messages[-1].content
        rng = _rng(request)
        listed = re.search(r"Write (\d+) ", prompt)
        if listed and "numbered 1 to" in prompt:  # init, guided_explore: a numbered list
            return "\n".join(f"{k + 1}. {_question(_explore_words(rng), rng)}" for k in range(int(listed.group(1))))
        if "Customers click this question often:" in prompt:  # guided_exploit
            target = prompt.split("Customers click this question often:")[1].split("Question: ")[1].split("\n")[0]
            return f"New Question: {_question(step(target, rng), rng)}"
        pairs = _CTR_PAIR.findall(prompt)
        if pairs:  # exploit, iterate_ctr: the highest CTR (the last of equals, as listed ascending)
            target = max(enumerate(pairs), key=lambda kp: (float(kp[1][1]), kp[0]))[1][0]
            return f"New Question: {_question(step(target, rng), rng)}"
        # iterate_plain (explore, partial-ctr, no-drop): no CTRs to go on
        return f"New Question: {_question(_explore_words(rng), rng)}"

    return answer


def run_setting(name: str, writer: str, options: dict[str, Any], seeds: list[int], out_root: Path) -> dict[str, Any]:
    config = build_config(
        {
            "domain": "ecommerce",
            "topics": ["Cookware Sets"],
            "populations": ["Quality"],
            "iterations": 15,
            "llm": "scripted",
            "judge": "length-words",
            "no_cache": True,
            "seeds": seeds,
            **options,
        }
    )
    out = out_root / re.sub(r"[^a-z0-9.=]+", "-", f"{writer}-{name}".lower())
    started = time.perf_counter()
    outcome = run_experiment(config, out, backend=ScriptedLLM(make_writer(writer), backend_id=f"simulated-{writer}"))
    seconds = time.perf_counter() - started
    model = ClickModel(config.temperature, config.rejection_score, config.k_shown)
    rows = {}
    for strategy, entry in outcome.summary["results"]["Quality"].items():
        last = [c["ctr"][-1] for c in entry["cells"]]
        avg = [float(np.mean(c["ctr"][1:])) for c in entry["cells"]]
        rows[strategy] = {
            "cells": len(last),
            "last_ctr": mean_ci(last),
            "avg_ctr": mean_ci(avg),
            "expected_last": mean_ci(expected_last(out, "Quality", strategy, model)),
            "per_seed_last": last,
            "per_seed_expected_last": expected_last(out, "Quality", strategy, model),
        }
    return {"name": name, "writer": writer, "options": options, "seconds": round(seconds, 1), "strategies": rows}


def paired(a: list[float], b: list[float]) -> tuple[float, float]:
    return mean_ci([x - y for x, y in zip(a, b, strict=True)])


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "# The optimizers' statistics with a simulated writer (`bench_policies.py`)",
        "",
        "Length judge QS-w (optimum 60.6%), 15 iterations, simulated writer (see the script). CTR in",
        "percent: mean over seeds ± 95% t-interval. Expected Last: what Eq. 1 expects of the last pool",
        "under uniform serving (its quality, free of click noise). Δ: an arm's value minus",
        "explore-exploit's, paired by seed (same IP_0).",
        "",
        "| writer | setting | strategy | seeds | Last CTR | Avg CTR | expected Last | of optimum |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        for strategy, row in result["strategies"].items():
            (lm, lc), (am, ac), (em, ec) = row["last_ctr"], row["avg_ctr"], row["expected_last"]
            lines.append(
                f"| {result['writer']} | {result['name']} | {strategy} | {row['cells']} | "
                f"{100 * lm:.1f} ± {100 * lc:.1f} | "
                f"{100 * am:.1f} ± {100 * ac:.1f} | {100 * em:.1f} ± {100 * ec:.1f} | {lm / 0.606:.0%} |"
            )
    lines += [
        "",
        "| writer | setting | arm | Δ expected Last, arm − explore-exploit (points) | Δ Last CTR (points) |",
        "|---|---|---|---:|---:|",
    ]
    for result in results:
        rows = result["strategies"]
        for arm in [a for a in rows if a.startswith("guided-ee")]:
            de = paired(rows[arm]["per_seed_expected_last"], rows["explore-exploit"]["per_seed_expected_last"])
            dl = paired(rows[arm]["per_seed_last"], rows["explore-exploit"]["per_seed_last"])
            lines.append(
                f"| {result['writer']} | {result['name']} | {arm} | {100 * de[0]:+.1f} ± {100 * de[1]:.1f} | "
                f"{100 * dl[0]:+.1f} ± {100 * dl[1]:.1f} |"
            )
    return "\n".join(lines) + "\n"


SETTINGS: list[tuple[str, dict[str, Any]]] = [
    (f"S={s} {serving}", {"n_sessions": s, "serving": serving, "strategies": STRATEGIES})
    for s in (300, 5000)
    for serving in ("uniform", "thompson")
]
# guided-ee with other options, run beside the defaults on the same seeds (so the same IP_0s)
VARIANTS: dict[str, dict[str, Any]] = {
    "guided-ee, history_weight 0.5": {"history_weight": 0.5},
    "guided-ee, history_weight 0": {"history_weight": 0.0},
}


def run_all(
    writer: str,
    name: str,
    options: dict[str, Any],
    seeds: list[int],
    out_root: Path,
    variants: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """One setting: its strategies at their defaults, then each guided-ee variant, merged."""
    result = run_setting(name, writer, options, seeds, out_root)
    for label, variant in variants.items():
        extra = run_setting(
            f"{name} {label}",
            writer,
            {**options, "strategies": ["guided-ee"], "strategy_options": {"guided-ee": variant}},
            seeds,
            out_root,
        )
        result["strategies"][label] = extra["strategies"]["guided-ee"]
        result["seconds"] += extra["seconds"]
    return result


SWEEP_ARMS = ["explore-exploit", "guided-ee"]
SWEEP: dict[str, dict[str, Any]] = {
    "guided-ee, min_impressions 100": {"min_impressions": 100},
    "guided-ee, min_impressions 50": {"min_impressions": 50},
    "guided-ee, patience_impressions 500": {"patience_impressions": 500},
    "guided-ee, drop_confidence 0.75": {"drop_confidence": 0.75},
    "guided-ee, drop_confidence 0.95": {"drop_confidence": 0.95},
    "guided-ee, history_weight 0.5": {"history_weight": 0.5},
    "guided-ee, monotone_drops": {"monotone_drops": True},
}


def calibrate() -> dict[str, Any]:
    """What the 1.5B wrote in the committed guided-* runs: exploit minus target score, and the scores
    of initial and explore items (mean, sd, n), per run."""
    out = {}
    for run in sorted(p.name for p in RESULTS.glob("guided-*") if (p / "cells").is_dir()):
        steps, explore, initial = [], [], []
        for cell in sorted((RESULTS / run / "cells").glob("*/guided-ee/*/seed-*")):
            score, provenance = {}, {}
            for path in sorted(cell.glob("iter-*.json")):
                for row in json.loads(path.read_text())["pool"]:
                    score[row["item_id"]], provenance[row["item_id"]] = row["mean_score"], row["provenance"]
            for item_id, origin in provenance.items():
                target = origin["notes"].get("target")
                if origin["origin"] == "exploit" and target in score:
                    steps.append(score[item_id] - score[target])
                elif origin["origin"] == "explore":
                    explore.append(score[item_id])
                elif origin["origin"] == "initial":
                    initial.append(score[item_id])
        out[run] = {
            name: {"mean": round(float(np.mean(v)), 2), "sd": round(float(np.std(v)), 2), "n": len(v)}
            for name, v in (("exploit_minus_target", steps), ("explore", explore), ("initial", initial))
            if v
        }
    return out


def diagnose(out_root: Path) -> dict[str, Any]:
    """New items per iteration and the pools' mean scores, best first, under Thompson serving at S = 300."""
    options = {"n_sessions": 300, "serving": "thompson", "strategies": ["explore-exploit", "guided-ee"]}
    run_setting("diagnosis", "regressing", options, list(range(1, 9)), out_root)
    out = {}
    for arm in options["strategies"]:
        new, pools = [], []
        for cell in sorted(out_root.glob(f"*/cells/*/{arm}/*/seed-*")):
            previous: set[str] | None = None
            for path in sorted(cell.glob("iter-*.json")):
                rows = json.loads(path.read_text())["pool"]
                ids = {row["item_id"] for row in rows}
                if previous is not None:
                    new.append(len(ids - previous))
                previous = ids
                pools.append(sorted((row["mean_score"] for row in rows), reverse=True))
        out[arm] = {
            "new_items_per_iteration": round(float(np.mean(new)), 2),
            "mean_scores_best_first": [round(float(x), 2) for x in np.mean(pools, axis=0)],
        }
    return out


def trace(seed: int, out_root: Path) -> str:
    """Every pool of one seed, as text (see the module docstring)."""
    options = {"n_sessions": 300, "serving": "thompson", "strategies": ["explore-exploit", "guided-ee"]}
    run_setting("trace", "regressing", options, [seed], out_root)
    old = {**options, "strategies": ["guided-ee"], "strategy_options": {"guided-ee": {"min_impressions": 100}}}
    run_setting("trace min100", "regressing", old, [seed], out_root)
    lines = []
    for label, pattern in (
        ("guided-ee, min_impressions 100", "*min100/cells/*/guided-ee/*/seed-*"),
        ("guided-ee, min_impressions 20 (default)", "*trace/cells/*/guided-ee/*/seed-*"),
        ("explore-exploit", "*trace/cells/*/explore-exploit/*/seed-*"),
    ):
        lines.append(f"== {label}: score:clicks/impressions(impressions in all), best first")
        totals: dict[str, int] = {}
        before: dict[str, float] = {}
        for path in sorted(next(out_root.glob(pattern)).glob("iter-*.json")):
            record = json.loads(path.read_text())
            rows = sorted(record["pool"], key=lambda row: -row["mean_score"])
            gone = [score for item_id, score in before.items() if item_id not in {r["item_id"] for r in rows}]
            if before:
                lines.append("    dropped: " + " ".join(f"{score:.1f}" for score in sorted(gone, reverse=True)))
            for row in rows:
                totals[row["item_id"]] = totals.get(row["item_id"], 0) + row["impressions"]
            cells = [f"{r['mean_score']:.1f}:{r['clicks']}/{r['impressions']}({totals[r['item_id']]})" for r in rows]
            lines.append(f"{record['iteration']:2d} CTR {100 * record['pool_ctr']:4.1f}%  " + "  ".join(cells))
            before = {r["item_id"]: r["mean_score"] for r in rows}
    return "\n".join(lines)


PRIOR_STRENGTHS = (None, 10, 30, 100)


def priors(seeds: list[int], out_root: Path) -> dict[str, Any]:
    """Last and Avg CTR under Thompson serving with each prior of :data:`PRIOR_STRENGTHS`, and each arm's
    Last CTR minus its own under Beta(1, 1), paired by seed (points)."""
    import clickloop.experiment.cell as cell

    plain = cell.make_serving
    rows: dict[str, dict[str, Any]] = {}
    try:
        for strength in PRIOR_STRENGTHS:

            def serving(name: str, strength: float | None = strength) -> Any:
                return ThompsonServing(prior_strength=strength) if name == "thompson" else plain(name)

            cell.make_serving = serving
            for pool_size, arms in ((5, ["explore-exploit", "guided-ee", "fixed-pool"]), (20, ["guided-ee"])):
                options = {"n_sessions": 300, "serving": "thompson", "pool_size": pool_size, "strategies": arms}
                result = run_setting(f"prior {strength} pool {pool_size}", "regressing", options, seeds, out_root)
                for arm, row in result["strategies"].items():
                    size = 20 if arm == "fixed-pool" else pool_size  # fixed-pool writes its own 20
                    rows[f"{arm}, |IP| = {size}, prior {strength or 'Beta(1, 1)'}"] = row
    finally:
        cell.make_serving = plain
    for label, row in rows.items():
        base = rows[label.rsplit(", prior ", 1)[0] + ", prior Beta(1, 1)"]
        row["delta_last_vs_uniform_prior"] = paired(row["per_seed_last"], base["per_seed_last"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 seeds instead of 40")
    parser.add_argument("--sweep", action="store_true", help="guided-ee's drop options at S = 300")
    parser.add_argument("--calibrate", action="store_true", help="the 1.5B's exploit steps in the committed runs")
    parser.add_argument("--diagnose", action="store_true", help="turnover and pool scores under Thompson serving")
    parser.add_argument("--trace", type=int, metavar="SEED", help="one seed's pools, iteration by iteration")
    parser.add_argument("--priors", action="store_true", help="Thompson serving's prior: Beta(1, 1) or pooled")
    args = parser.parse_args()
    if args.priors:
        seeds = list(range(1, 41))
        with tempfile.TemporaryDirectory(prefix="clickloop-policies-") as tmp:
            found = priors(seeds, Path(tmp))
        save(
            "policies_priors", {"benchmark": "policies_priors", "machine": machine(), "seeds": seeds, "results": found}
        )
        for label, row in found.items():
            (lm, lc), (am, _), (dm, dc) = row["last_ctr"], row["avg_ctr"], row["delta_last_vs_uniform_prior"]
            print(
                f"{label}: Last {100 * lm:.1f} ± {100 * lc:.1f}, Avg {100 * am:.1f}, "
                f"Last − Beta(1, 1) {100 * dm:+.1f} ± {100 * dc:.1f}"
            )
        return
    if args.trace is not None:
        with tempfile.TemporaryDirectory(prefix="clickloop-policies-") as tmp:
            print(trace(args.trace, Path(tmp)))
        return
    if args.calibrate or args.diagnose:
        with tempfile.TemporaryDirectory(prefix="clickloop-policies-") as tmp:
            name, found = (
                ("policies_calibration", calibrate()) if args.calibrate else ("policies_diagnosis", diagnose(Path(tmp)))
            )
        save(name, {"benchmark": name, "machine": machine(), "results": found})
        print(json.dumps(found, indent=1))
        return
    seeds = list(range(1, 5 if args.quick else 41))
    writers, settings, variants, name = list(WRITERS), SETTINGS, VARIANTS, "policies"
    if args.sweep:
        writers, variants, name = ["regressing"], SWEEP, "policies_sweep"
        settings = [
            (f"S=300 {serving}", {"n_sessions": 300, "serving": serving, "strategies": SWEEP_ARMS})
            for serving in ("uniform", "thompson")
        ]
    results = []
    with tempfile.TemporaryDirectory(prefix="clickloop-policies-") as tmp:
        for writer in writers:
            for setting, options in settings:
                print(f"{writer}, {setting} ...", file=sys.stderr, flush=True)
                results.append(run_all(writer, setting, options, seeds, Path(tmp), variants))
                print(f"  {results[-1]['seconds']} s", file=sys.stderr)
    record = {"benchmark": name, "machine": machine(), "seeds": seeds, "results": results}
    if not args.quick:
        save(name, record)
        (RESULTS / f"{name}.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))


if __name__ == "__main__":
    main()
