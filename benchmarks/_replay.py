"""The LLM-judge task replayed from what the embedded 1.5B wrote and judged: a writer and a judge, no LLM.

Every committed run with the LLM judge (``judge: llm`` on ``llamacpp``) holds thousands of questions the
1.5B wrote, each with the score it gave them per persona. :func:`load_bank` gathers them by topic,
persona and prompt. :func:`make_writer` answers each prompt of the loop with questions drawn from that
bank, and :func:`judge` (the ``module:function`` judge ``_replay:judge``) gives each drawn question its
recorded score. The strategies, the runner, the click model and the serving policies then run exactly as
in ``bench_quality.py``, for many seeds in minutes, on items whose quality is what the 1.5B achieves:

* ``init`` (IP_0): distinct questions drawn from the initial pools of the same topic;
* explore prompts (``guided_explore``, ``iterate_plain``): questions the 1.5B wrote from the same prompt,
  for the same topic, scored for the same persona; they see no CTRs, so the state does not enter;
* exploit prompts: the 1.5B's exploit items depend on the item they were asked to build on only
  weakly (Pearson 0.14 to 0.28 between target and exploit scores, :meth:`Bank.stats`), and that
  dependence is kept. For a target scoring s the writer draws, uniformly, one of the ``k_nearest``
  exploit items of the same prompt, topic and persona whose own target scored closest to s.
  ``guided_exploit``'s target is named in the prompt; for the paper's ``exploit`` prompt it is the
  question listed with the highest CTR, and the bank pairs each of explore-exploit's exploit items
  with its ``best_item`` (the highest-CTR item of the pool, which the 1.5B reads poorly: that weak
  link is in the pairs, not assumed).

What it cannot replay: how a question relates to the others of its pool (drawn questions are not on
their target's aspect), and the LLM's cost (the scripted backend counts words, not tokens). Answers are a
function of the request (its messages, seed and sample index) and of the persona, so every run is
reproducible.
"""

from __future__ import annotations

import hashlib
import json
import re
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clickloop.core.items import normalize_text
from clickloop.core.personas import Persona
from clickloop.llm.base import ChatRequest
from clickloop.strategies.parsing import clean_question

EXPLORE_TEMPLATES = ("guided_explore", "iterate_plain")
EXPLOIT_TEMPLATES = ("guided_exploit", "exploit")
_CTR_PAIR = re.compile(r"Question: (.+)\nCTR: ([0-9.]+)%")
_TOPIC = re.compile(r"category '([^']+)'")


@dataclass
class Bank:
    """The 1.5B's questions and scores. ``scores``: (topic, persona, normalised text) -> mean judge score
    over the runs that scored it (1-10); ``initial``: topic -> IP_0 questions; ``explore``: (topic,
    persona, template) -> questions; ``exploit``: (topic, persona, template) -> (target's score,
    question), sorted by the target's score."""

    scores: dict[tuple[str, str, str], float] = field(default_factory=dict)
    initial: dict[str, list[str]] = field(default_factory=dict)
    explore: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    exploit: dict[tuple[str, str, str], list[tuple[float, str]]] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)

    def score(self, topic: str, persona: str, text: str) -> float | None:
        return self.scores.get((topic, persona, normalize_text(text)))

    def stats(self) -> dict[str, Any]:
        """Per persona, the judge scores of each part (mean, sd, n: initial questions, explore and
        exploit items by prompt) and, per exploit prompt, the Pearson correlation between the target's
        score and the exploit item's."""
        out: dict[str, Any] = {}
        for persona in sorted({key[1] for key in self.scores}):
            parts: dict[str, list[float]] = defaultdict(list)
            pairs: dict[str, list[tuple[float, float]]] = defaultdict(list)
            for topic, texts in self.initial.items():
                parts["initial"] += [x for t in texts if (x := self.score(topic, persona, t)) is not None]
            for (topic, who, template), texts in self.explore.items():
                if who == persona:
                    parts[template] += [x for t in texts if (x := self.score(topic, persona, t)) is not None]
            for (topic, who, template), found in self.exploit.items():
                if who == persona:
                    for target, text in found:
                        score = self.score(topic, persona, text)
                        if score is not None:
                            parts[template].append(score)
                            pairs[template].append((target, score))
            out[persona] = {
                "scores": {
                    name: {"mean": round(float(np.mean(v)), 2), "sd": round(float(np.std(v)), 2), "n": len(v)}
                    for name, v in parts.items()
                },
                "target_exploit_pearson": {
                    name: round(float(np.corrcoef(np.array(v).T)[0, 1]), 2) for name, v in pairs.items()
                },
            }
        return out

    def counts(self) -> dict[str, Any]:
        """How many questions each part holds, for the result file."""
        return {
            "scored": len(self.scores),
            "initial": {t: len(v) for t, v in sorted(self.initial.items())},
            "explore": {" / ".join(k): len(v) for k, v in sorted(self.explore.items())},
            "exploit": {" / ".join(k): len(v) for k, v in sorted(self.exploit.items())},
        }


def llm_judge_runs(results: Path, exclude: list[str] | None = None) -> list[Path]:
    """The committed runs whose judge is the embedded LLM, less those named in ``exclude``."""
    runs = []
    for config_path in sorted(results.glob("*/config.json")):
        if config_path.parent.name in (exclude or []):
            continue
        config = json.loads(config_path.read_text())["config"]
        if config.get("judge") == "llm" and str(config.get("llm", "")).startswith("llamacpp"):
            runs.append(config_path.parent)
    return runs


def load_bank(results: Path, exclude: list[str] | None = None) -> Bank:
    """Read every cell of :func:`llm_judge_runs` (see :class:`Bank`); ``exclude``: runs left out."""
    sums: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    initial: dict[str, set[str]] = defaultdict(set)
    explore: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    exploit: dict[tuple[str, str, str], set[tuple[float, str]]] = defaultdict(set)
    runs = llm_judge_runs(results, exclude)
    unknown = sorted(set(exclude or []) - {p.name for p in results.iterdir()})
    if unknown:
        raise ValueError(f"exclude names runs that are not in {results}: {unknown}")
    for run in runs:
        for cell in sorted((run / "cells").glob("*/*/*/seed-*")):
            rows: dict[str, dict[str, Any]] = {}
            topic = persona = ""
            for path in sorted(cell.glob("iter-*.json")):
                record = json.loads(path.read_text())
                topic, persona = record["topic"], record["population"]
                for row in record["pool"]:
                    rows[row["item_id"]] = row
            for row in rows.values():
                text = normalize_text(row["text"])
                if persona in row["scores"]:
                    sums[(topic, persona, text)].append(float(row["scores"][persona]))
                if clean_question(row["text"]) != row["text"]:
                    continue  # stored before the parser dropped a repeated "Question:" label: not drawn
                provenance = row["provenance"]
                template, notes = provenance["template"], provenance.get("notes", {})
                if provenance["origin"] == "initial":
                    initial[topic].add(row["text"])
                elif template in EXPLORE_TEMPLATES:
                    explore[(topic, persona, template)].add(row["text"])
                elif template in EXPLOIT_TEMPLATES:
                    target = rows.get(notes.get("target") or notes.get("best_item") or "")
                    if target is not None and persona in target["scores"]:
                        exploit[(topic, persona, template)].add((float(target["scores"][persona]), row["text"]))
    bank = Bank(runs=[run.name for run in runs])
    bank.scores = {key: float(np.mean(values)) for key, values in sums.items()}
    bank.initial = {topic: sorted(texts) for topic, texts in initial.items()}
    bank.explore = {key: sorted(texts) for key, texts in explore.items()}
    bank.exploit = {key: sorted(pairs) for key, pairs in exploit.items()}
    return bank


BANK = Bank()  # what :func:`judge` reads; set by :func:`use`


def use(bank: Bank) -> None:
    """Make ``bank`` the one :func:`judge` looks scores up in."""
    global BANK
    BANK = bank


def judge(question: str, persona: Persona, topic: str) -> float:
    """The ``module:function`` judge ``_replay:judge``: the score the 1.5B gave ``question``."""
    found = BANK.score(topic, persona.name, question)
    if found is None:
        raise KeyError(f"the replay bank has no score of {question!r} for {persona.name!r} on {topic!r}")
    return found


def _rng(request: ChatRequest, persona: str) -> np.random.Generator:
    text = "\x1f".join(m.content for m in request.messages)
    text += f"\x1f{request.seed}\x1f{request.sample_index}\x1f{persona}"
    return np.random.default_rng(int(hashlib.sha256(text.encode()).hexdigest()[:15], 16))


def _numbered(questions: list[str]) -> str:
    return "\n".join(f"{k + 1}. {q}" for k, q in enumerate(questions))


def make_writer(bank: Bank, persona: str, k_nearest: int = 15):  # noqa: ANN201 - a ScriptedLLM responder
    """The replay writer for one persona (the prompts never name it; it picks which scores apply)."""

    def draw(texts: list[str], n: int, rng: np.random.Generator) -> list[str]:
        if not texts:
            raise LookupError(f"the replay bank is empty here ({persona})")
        picks = rng.choice(len(texts), size=min(n, len(texts)), replace=False)
        return [texts[int(k)] for k in picks]

    def near(pairs: list[tuple[float, str]], score: float, rng: np.random.Generator) -> str:
        if not pairs:
            raise LookupError(f"the replay bank has no exploit items here ({persona})")
        at = bisect_left(pairs, (score, ""))
        lo, hi = max(0, at - k_nearest), min(len(pairs), at + k_nearest)
        window = sorted(pairs[lo:hi], key=lambda p: abs(p[0] - score))[:k_nearest]
        return window[int(rng.integers(len(window)))][1]

    def target_score(topic: str, text: str) -> float:
        found = bank.score(topic, persona, text)
        if found is None:
            raise LookupError(f"the replay writer cannot score its target {text!r} ({topic}, {persona})")
        return found

    def answer(request: ChatRequest) -> str:
        prompt = request.messages[0].content
        rng = _rng(request, persona)
        topic = _TOPIC.search(prompt).group(1)  # type: ignore[union-attr]
        wanted = re.search(r"numbered 1 to (\d+)", prompt)
        if wanted and "general questions" in prompt:  # init
            scored = [t for t in bank.initial[topic] if bank.score(topic, persona, t) is not None]
            return _numbered(draw(scored, int(wanted.group(1)), rng))
        if wanted:  # guided_explore: candidates on uncovered aspects
            return _numbered(draw(bank.explore[(topic, persona, "guided_explore")], int(wanted.group(1)), rng))
        if "Customers click this question often:" in prompt:  # guided_exploit
            target = prompt.split("Customers click this question often:\n\nQuestion: ", 1)[1].split("\n", 1)[0]
            pairs = bank.exploit[(topic, persona, "guided_exploit")]
            return f"New Question: {near(pairs, target_score(topic, target), rng)}"
        listed = _CTR_PAIR.findall(prompt)
        if listed and "same general topic" not in prompt:
            raise LookupError("the replay writer answers explore-exploit's, guided-ee's and fixed-pool's prompts only")
        if listed:  # the paper's exploit prompt: the question listed with the highest CTR (last of equals)
            target = max(enumerate(listed), key=lambda kp: (float(kp[1][1]), kp[0]))[1][0]
            pairs = bank.exploit[(topic, persona, "exploit")]
            return f"New Question: {near(pairs, target_score(topic, target), rng)}"
        return f"New Question: {draw(bank.explore[(topic, persona, 'iterate_plain')], 1, rng)[0]}"

    return answer
