"""The generator side of the loop: render a prompt, ask the LLM, parse, check, re-ask within a bound.

A rejected answer (unparseable, or breaking an :class:`ItemConstraints` rule) is re-asked in the same
conversation, telling the model what was wrong; after ``max_attempts`` answers the writer raises
:class:`ParseError` carrying the last raw text. Nothing is added to a pool until an item passes.
``write_one(..., shorten=True)`` answers a question that breaks only the word limit with a short,
separate request to shorten it (the :data:`SHORTEN` prompt: that question alone, not the whole
prompt again), so the model's choice of what to ask is kept and the re-ask costs a few dozen tokens;
a shortened question that still fails goes back to the conversation's re-ask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clickloop.core.items import Item, ItemOrigin, ItemRecord, Provenance
from clickloop.core.pool import Context
from clickloop.domains.loader import Domain, PromptTemplate
from clickloop.errors import ConfigurationError, ParseError
from clickloop.llm.base import ChatRequest, LLMBackend, Message, user
from clickloop.strategies.constraints import ItemConstraints
from clickloop.strategies.parsing import parse_new_question, parse_question_list

SHORTEN = PromptTemplate(
    "shorten",
    "Rewrite this question in at most $max_words words. Keep what it asks; leave out only words it "
    "does not need.\n\nQuestion: $question\n\nReply with a single line in the form:\nNew Question: <question>\n",
    "1",
)


def render_history(records: Sequence[ItemRecord], show_impressions: bool = False) -> str:
    """Question / CTR pairs in ascending CTR order, CTR as a one-decimal percentage (Figure 10).

    ``show_impressions`` adds how often each CTR was measured on a line of its own (``Shown: N times``),
    so a CTR from 40 impressions reads differently from one from 3,000; being no part of a question
    line, it is not what a model copies into its ``New Question:``.
    """
    ordered = sorted(records, key=lambda r: r.ctr)
    return "\n".join(
        f"Question: {r.item.text}\nCTR: {100 * r.ctr:.1f}%"
        + (f"\nShown: {r.stats.impressions:,} times" if show_impressions else "")
        for r in ordered
    )


def render_questions(records: Sequence[ItemRecord]) -> str:
    """Questions without CTR (partial-ctr, explore, no-drop)."""
    return "\n".join(f"Question: {r.item.text}" for r in records)


@dataclass
class ItemWriter:
    """Writes items for one context with one LLM. ``temperature``: generation sampling temperature
    (the paper does not state it); ``seed``: base seed of every generation request. ``avoid``: texts
    that new items must not duplicate besides those a strategy passes (the service's items that were
    rejected in review or still wait for it: they are in no pool, so in no strategy's history)."""

    domain: Domain
    llm: LLMBackend
    constraints: ItemConstraints
    temperature: float = 0.8
    max_attempts: int = 8
    temperature_step: float = 0.1
    seed: int = 0
    max_tokens: int = 64
    avoid: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts ({self.max_attempts}) must be >= 1")

    def _temperature(self, attempt: int) -> float:
        return min(1.5, self.temperature + self.temperature_step * attempt) if attempt else self.temperature

    def _ask(self, messages: tuple[Message, ...], attempt: int, seed: int, max_tokens: int) -> str:
        """The text of one answer at ``attempt`` (its temperature and sample index)."""
        request = ChatRequest(
            messages, temperature=self._temperature(attempt), max_tokens=max_tokens, seed=seed, sample_index=attempt
        )
        return self.llm.complete(request).text

    def _ask_list(self, prompt: str, n: int, attempt: int, seed: int) -> str:
        """One answer to a prompt asking for a numbered list of ``n`` questions."""
        return self._ask(user(prompt), attempt, seed, 40 * n)

    def _accept(self, raw: str, accepted: list[str], n: int, existing: Sequence[str]) -> None:
        """Append to ``accepted`` the questions of ``raw`` that pass the constraints, up to ``n`` in all."""
        for question in parse_question_list(raw):
            if len(accepted) < n and self.constraints.violation(question, [*accepted, *existing]) is None:
                accepted.append(question)

    def initial_pool(self, context: Context, n: int, iteration: int = 0) -> list[Item]:
        """IP_0: ``n`` questions from the initialisation prompt (Figure 9), re-asked until ``n`` pass."""
        template = self.domain.prompt("init")
        accepted: list[str] = []
        raw = ""
        attempts = 0
        while len(accepted) < n and attempts < self.max_attempts:
            prompt = template.render(topic=context.topic, n=n, max_words=self.constraints.max_words)
            raw = self._ask_list(prompt, n, attempts, self.seed + attempts)
            attempts += 1
            self._accept(raw, accepted, n, self.avoid)
        if len(accepted) < n:
            raise ParseError(
                f"the initial pool for {context.topic!r} has only {len(accepted)} of {n} valid questions "
                f"after {attempts} attempts",
                raw,
            )
        provenance = Provenance(ItemOrigin.INITIAL, iteration, template.name, template.version, attempts=attempts)
        return [Item.create(context.context_id, q, provenance) for q in accepted]

    def write_candidates(
        self,
        context: Context,
        prompt_name: str,
        origin: ItemOrigin,
        iteration: int,
        existing: Sequence[str],
        n: int,
        parents: Sequence[str] = (),
        **values: object,
    ) -> list[Item]:
        """Up to ``n`` new items from one list-answer prompt (re-asked, within ``max_attempts``, only
        while none passes the constraints); the caller keeps the ones it wants."""
        template = self.domain.prompt(prompt_name)
        prompt = template.render(topic=context.topic, max_words=self.constraints.max_words, n=n, **values)
        existing = [*existing, *self.avoid]
        accepted: list[str] = []
        raw = ""
        for attempt in range(self.max_attempts):
            raw = self._ask_list(prompt, n, attempt, self.seed + 1000 * iteration + attempt)
            self._accept(raw, accepted, n, existing)
            if accepted:
                provenance = Provenance(origin, iteration, template.name, template.version, tuple(parents), attempt + 1)
                return [Item.create(context.context_id, q, provenance) for q in accepted]
        raise ParseError(f"no valid {origin.value} candidate after {self.max_attempts} attempts", raw)

    def _check(self, raw: str, existing: Sequence[str]) -> tuple[str | None, tuple[str, str] | None]:
        """(the question, the rule it breaks as (code, sentence)); the question is None if unparseable."""
        try:
            question = parse_new_question(raw)
        except ParseError:
            return None, ("form", "it is not in the form 'New Question: <question>'")
        return question, self.constraints.check(question, existing)

    def write_one(
        self,
        context: Context,
        prompt_name: str,
        origin: ItemOrigin,
        iteration: int,
        existing: Sequence[str],
        parents: Sequence[str] = (),
        notes: dict[str, str] | None = None,
        shorten: bool = False,
        **values: object,
    ) -> Item:
        """One new item from an iterative prompt; ``existing``: texts it must not duplicate.

        ``shorten``: a question over the word limit is first sent alone to the :data:`SHORTEN` prompt
        (one attempt of ``max_attempts``) before the conversation is re-asked. The provenance notes
        list the rules broken by rejected answers (``rejected``, in order) and, for a shortened
        item, the question it was shortened from (``shortened_from``)."""
        template = self.domain.prompt(prompt_name)
        prompt = template.render(topic=context.topic, max_words=self.constraints.max_words, **values)
        messages: tuple[Message, ...] = user(prompt)
        existing = [*existing, *self.avoid]
        notes = dict(notes or {})
        rejected: list[str] = []
        raw = ""
        attempt = 0

        def accept(question: str, extra: dict[str, str]) -> Item:
            final = {**notes, **extra, **({"rejected": ",".join(rejected)} if rejected else {})}
            provenance = Provenance(
                origin,
                iteration,
                template.name,
                template.version,
                tuple(parents),
                attempt,
                tuple(sorted(final.items())),
            )
            return Item.create(context.context_id, question, provenance)

        while attempt < self.max_attempts:
            raw = self._ask(messages, attempt, self.seed + 1000 * iteration + attempt, self.max_tokens)
            attempt += 1
            question, problem = self._check(raw, existing)
            if problem is None:
                assert question is not None  # _check names a problem for what it cannot parse
                return accept(question, {})
            rejected.append(problem[0])
            if shorten and problem[0] == "too-long" and question is not None and attempt < self.max_attempts:
                short_prompt = SHORTEN.render(question=question, max_words=self.constraints.max_words)
                short_raw = self._ask(
                    user(short_prompt), attempt, self.seed + 1000 * iteration + attempt, self.max_tokens
                )
                attempt += 1
                short, short_problem = self._check(short_raw, existing)
                if short_problem is None:
                    assert short is not None
                    return accept(short, {"shortened_from": question})
                rejected.append(f"shorten:{short_problem[0]}")
            messages = (
                *messages[:1],
                Message("assistant", raw),
                Message(
                    "user",
                    f"That answer was rejected because {problem[1]}. Write a different question. "
                    "Reply with a single line: New Question: <question>",
                ),
            )
        raise ParseError(f"no valid {origin.value} question after {self.max_attempts} attempts", raw)
