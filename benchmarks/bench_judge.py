"""Judge latency: relevance by token probabilities against relevance by a generated answer.

    .venv/bin/python benchmarks/bench_judge.py [--model qwen2.5-coder-1.5b]

Same model, same process, same questions. Each mode judges every (persona, question) pair in one pass,
as the runner does (consecutive items share the instructions + persona prefix in llama.cpp's prompt
cache, the question tail is new); passes alternate logprobs, parse, logprobs, parse so both see the
same machine state. No response cache. Writes benchmarks/results/judge.json.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from _common import machine, save

from clickloop.domains import load_domain
from clickloop.judges import LLMJudge
from clickloop.llm.llamacpp import LlamaCppBackend

QUESTIONS = [
    "What materials are cookware sets made from?",
    "Does copper cookware tarnish over time?",
    "How many pieces come in a typical cookware set?",
    "Are nonstick cookware sets safe at high heat?",
    "Which cookware sets work on induction hobs?",
    "How long does the coating of a nonstick pan last?",
    "Are cookware sets made from recycled aluminium?",
    "What warranty do cookware sets usually include?",
    "Can cookware sets go in the dishwasher?",
    "How heavy is a cast iron cookware set?",
    "Do cookware brands test their pans for toxic chemicals?",
    "What colours do cookware sets come in?",
]
PERSONAS = ["Quality", "Ethical Considerations", "Price"]
PASSES = 2


def spearman(a: list[float], b: list[float]) -> float:
    ra = np.argsort(np.argsort(a))
    rb = np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    args = parser.parse_args()
    domain = load_domain("ecommerce")
    backend = LlamaCppBackend(args.model)
    started = time.perf_counter()
    backend.start()
    load_seconds = time.perf_counter() - started
    judges = {"logprobs": LLMJudge(domain, backend, mode="logprobs"), "parse": LLMJudge(domain, backend, mode="parse")}
    latencies: dict[str, list[float]] = {mode: [] for mode in judges}
    scores: dict[str, list[float]] = {mode: [] for mode in judges}
    pairs = [(domain.persona(name), question) for name in PERSONAS for question in QUESTIONS]
    for repeat in range(PASSES):
        for mode, judge in judges.items():
            for persona, question in pairs:
                t0 = time.perf_counter()
                value = judge.score(question, persona, "Cookware Sets")
                latencies[mode].append(time.perf_counter() - t0)
                if repeat == 0:
                    scores[mode].append(value)
    backend.close()
    rows = {
        mode: {
            "items": len(values),
            "mean_s": round(statistics.mean(values), 3),
            "median_s": round(statistics.median(values), 3),
            "p90_s": round(float(np.percentile(values, 90)), 3),
            "distinct_scores": len({round(s, 2) for s in scores[mode]}),
            "score_range": [round(min(scores[mode]), 2), round(max(scores[mode]), 2)],
        }
        for mode, values in latencies.items()
    }
    result = {
        "benchmark": "judge-latency",
        "machine": machine(),
        "model": args.model,
        "load_seconds": round(load_seconds, 2),
        "modes": rows,
        "ratio_parse_over_logprobs_median": round(rows["parse"]["median_s"] / rows["logprobs"]["median_s"], 2),
        "spearman_between_modes": round(spearman(scores["logprobs"], scores["parse"]), 3),
    }
    path = save("judge", result)
    print("| mode | items | mean s | median s | p90 s | distinct scores | range |")
    print("|---|---|---|---|---|---|---|")
    for mode, r in rows.items():
        cells = [mode, r["items"], r["mean_s"], r["median_s"], r["p90_s"], r["distinct_scores"], r["score_range"]]
        print("| " + " | ".join(map(str, cells)) + " |")
    print(
        f"parse/logprobs median latency: {result['ratio_parse_over_logprobs_median']}x; "
        f"Spearman between modes {result['spearman_between_modes']}"
    )
    print(f"written: {path}")


if __name__ == "__main__":
    main()
