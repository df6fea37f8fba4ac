"""The paper's five update strategies (Sections 4 and 6.4), as small config objects.

Each ``step(state, writer, rng)`` takes IP_i with its observed CTRs and returns IP_{i+1}: it decides
which items to drop, asks the :class:`ItemWriter` for new ones, and applies both. Nothing is applied
unless every new item was written, so a failed step leaves the state unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from clickloop.core.items import Item, ItemOrigin
from clickloop.core.pool import ContextState, add_items, advance, drop_items, set_ctr_override, worst_items
from clickloop.errors import ConfigurationError
from clickloop.strategies.writer import ItemWriter, render_history, render_questions


def _check_count(name: str, value: int, minimum: int = 0) -> None:
    if not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} ({value!r}) must be an integer >= {minimum}")


def _apply(state: ContextState, drop: list[str], new: list[Item]) -> ContextState:
    return advance(add_items(drop_items(state, drop), new))


def _write(
    writer: ItemWriter, state: ContextState, new: list[Item], prompt: str, origin: ItemOrigin, **kw: Any
) -> Item:
    """One item for IP_{i+1}; it must differ from the whole history and from the items ``new`` so far."""
    existing = [r.item.text for r in state.records] + [item.text for item in new]
    return writer.write_one(state.context, prompt, origin, state.iteration + 1, existing, **kw)


def write_paper_exploit(
    writer: ItemWriter,
    state: ContextState,
    new: list[Item],
    notes: dict[str, str],
    show_impressions: bool = False,
    shorten: bool = False,
) -> Item:
    """The paper's exploit item (Section 4.3): the whole history with CTRs, ascending, and the topic of
    the highest-CTR pool item unless more than 2 items cover it, which the LLM judges. ``notes`` go on
    the provenance beside ``best_item``; ``shorten``: see :meth:`ItemWriter.write_one`."""
    best = max(state.pool_records, key=lambda r: r.ctr).item.item_id
    parents = (best, *(r.item.item_id for r in state.records if r.item.item_id != best))
    history = render_history(state.records, show_impressions)
    notes = {"best_item": best, **notes}
    return _write(
        writer,
        state,
        new,
        "exploit",
        ItemOrigin.EXPLOIT,
        parents=parents,
        notes=notes,
        shorten=shorten,
        history=history,
    )


@dataclass(frozen=True)
class NoDrop:
    """Ablation: nothing is dropped; ``n_new`` items per iteration from the prompt without CTRs, so the
    pool grows (5 -> 20 after 15 iterations)."""

    n_new: int = 1
    name = "no-drop"

    def __post_init__(self) -> None:
        _check_count("n_new", self.n_new, 1)

    def items_per_step(self) -> tuple[int, int]:
        """(items written, items dropped) by every ``step``: the runner checks them against the pool."""
        return self.n_new, 0

    def step(self, state: ContextState, writer: ItemWriter, rng: np.random.Generator) -> ContextState:
        new: list[Item] = []
        for _ in range(self.n_new):
            questions = render_questions(state.records)
            new.append(
                _write(writer, state, new, "iterate_plain", ItemOrigin.NO_DROP, parents=state.pool, questions=questions)
            )
        return _apply(state, [], new)


@dataclass(frozen=True)
class FullCtr:
    """The OPRO-style optimizer (Section 4.2): drop the ``n_drop`` lowest-CTR items; write as many new
    ones from a prompt listing the whole history (dropped items too) with CTRs, ascending."""

    n_drop: int = 1
    show_impressions: bool = False  # not in the paper: each CTR's impressions in the prompt too
    name = "full-ctr"
    origin = ItemOrigin.FULL_CTR
    template = "iterate_ctr"

    def __post_init__(self) -> None:
        _check_count("n_drop", self.n_drop, 1)

    def items_per_step(self) -> tuple[int, int]:
        """(items written, items dropped) by every ``step``: as many are written as dropped, so the pool
        keeps its size unless ``n_drop`` exceeds it (then the whole pool goes and ``n_drop`` come)."""
        return self.n_drop, self.n_drop

    def prompt_values(self, state: ContextState) -> dict[str, str]:
        return {"history": render_history(state.records, self.show_impressions)}

    def step(self, state: ContextState, writer: ItemWriter, rng: np.random.Generator) -> ContextState:
        state = self.prepare(state, rng)
        drop = worst_items(state.pool_records, self.n_drop)
        parents = tuple(r.item.item_id for r in state.records)
        new: list[Item] = []
        for _ in range(self.n_drop):
            notes = {"dropped": ",".join(drop)}
            new.append(
                _write(
                    writer,
                    state,
                    new,
                    self.template,
                    self.origin,
                    parents=parents,
                    notes=notes,
                    **self.prompt_values(state),
                )
            )
        return _apply(state, drop, new)

    def prepare(self, state: ContextState, rng: np.random.Generator) -> ContextState:
        return state


@dataclass(frozen=True)
class PartialCtr(FullCtr):
    """Ablation: real CTR decides what to drop, but the prompt lists earlier questions without CTR."""

    name = "partial-ctr"
    origin = ItemOrigin.PARTIAL_CTR
    template = "iterate_plain"

    def prompt_values(self, state: ContextState) -> dict[str, str]:
        return {"questions": render_questions(state.records)}


@dataclass(frozen=True)
class RandomCtr(FullCtr):
    """Ablation: the pool's CTRs are replaced by uniform random values in [``low``, ``high``] (fractions;
    the paper uses 0-15 %) both for dropping and in the prompt. Dropped items keep their last value."""

    low: float = 0.0
    high: float = 0.15
    name = "random-ctr"
    origin = ItemOrigin.RANDOM_CTR

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.low <= self.high <= 1:
            raise ConfigurationError(f"random-ctr needs 0 <= low ({self.low}) <= high ({self.high}) <= 1")

    def prepare(self, state: ContextState, rng: np.random.Generator) -> ContextState:
        values = rng.uniform(self.low, self.high, size=len(state.pool))
        return set_ctr_override(state, dict(zip(state.pool, values.tolist(), strict=True)))


@dataclass(frozen=True)
class ExploreExploit:
    """The paper's method (Section 4.3). Per iteration: drop the ``n_drop`` lowest-CTR items, write
    ``n_explore`` items from a prompt listing the current pool without CTRs (new aspects), and
    ``n_exploit`` from the exploit prompt (full history with CTRs; the topic of the best item unless more
    than 2 items already cover it, which the LLM judges, as in the paper).

    The paper says n = 1 and "drop the worst questions" without the count; ``n_drop = n_explore +
    n_exploit = 2`` keeps |IP| = 5, the most consistent reading (paper notes, Section 4.3).
    """

    n_explore: int = 1
    n_exploit: int = 1
    n_drop: int = 2
    show_impressions: bool = False  # not in the paper: each CTR's impressions in the exploit prompt too
    name = "explore-exploit"

    def __post_init__(self) -> None:
        _check_count("n_explore", self.n_explore)
        _check_count("n_exploit", self.n_exploit)
        _check_count("n_drop", self.n_drop)
        if self.n_explore + self.n_exploit < 1:
            raise ConfigurationError("explore-exploit needs n_explore + n_exploit >= 1")

    def items_per_step(self) -> tuple[int, int]:
        """(items written, items dropped) by every ``step``: the pool changes by
        ``n_explore + n_exploit - n_drop`` items per iteration."""
        return self.n_explore + self.n_exploit, self.n_drop

    def step(self, state: ContextState, writer: ItemWriter, rng: np.random.Generator) -> ContextState:
        drop = worst_items(state.pool_records, self.n_drop)
        new: list[Item] = []
        for _ in range(self.n_explore):
            questions = render_questions(state.pool_records)
            new.append(
                _write(writer, state, new, "iterate_plain", ItemOrigin.EXPLORE, parents=state.pool, questions=questions)
            )
        for _ in range(self.n_exploit):
            new.append(write_paper_exploit(writer, state, new, {"dropped": ",".join(drop)}, self.show_impressions))
        return _apply(state, drop, new)
