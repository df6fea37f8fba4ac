"""A context's state: the live item pool (IP_i) and the history of every item ever generated.

All functions here are pure: they take a :class:`ContextState` and return a new one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from clickloop.core.items import Item, ItemRecord, ItemStats
from clickloop.errors import ValidationError, require


@dataclass(frozen=True)
class Context:
    """What items are generated for: a topic (product category or article title) in a domain."""

    context_id: str
    domain: str
    topic: str

    def __post_init__(self) -> None:
        require(bool(self.topic.strip()), "Context.topic must not be empty")
        require(bool(self.context_id), "Context.context_id must not be empty")


@dataclass(frozen=True)
class ContextState:
    """The live ``pool`` (item ids, in order of addition) and the full ``history`` (id -> record).

    ``iteration``: index i of the live pool IP_i (0 = initial pool).
    """

    context: Context
    pool: tuple[str, ...] = ()
    history: Mapping[str, ItemRecord] = field(default_factory=dict)
    iteration: int = 0

    def __post_init__(self) -> None:
        missing = [i for i in self.pool if i not in self.history]
        require(not missing, f"pool items {missing} are not in the history")
        require(len(set(self.pool)) == len(self.pool), f"pool has duplicate item ids: {list(self.pool)}")

    @property
    def pool_records(self) -> list[ItemRecord]:
        return [self.history[i] for i in self.pool]

    @property
    def pool_items(self) -> list[Item]:
        return [self.history[i].item for i in self.pool]

    @property
    def records(self) -> list[ItemRecord]:
        """Every item ever generated, in order of creation."""
        return list(self.history.values())


def add_items(state: ContextState, items: Iterable[Item]) -> ContextState:
    """Append new items to pool and history; an id already in the history is an error."""
    history = dict(state.history)
    pool = list(state.pool)
    for item in items:
        if item.item_id in history:
            raise ValidationError(f"item {item.item_id} ({item.text!r}) is already in the history")
        history[item.item_id] = ItemRecord(item)
        pool.append(item.item_id)
    return replace(state, pool=tuple(pool), history=history)


def drop_items(state: ContextState, item_ids: Iterable[str]) -> ContextState:
    """Remove items from the live pool; they stay in the history, marked with the current iteration."""
    ids = list(item_ids)
    unknown = [i for i in ids if i not in state.pool]
    require(not unknown, f"cannot drop {unknown}: not in the live pool")
    history = dict(state.history)
    for item_id in ids:
        history[item_id] = replace(history[item_id], dropped_at=state.iteration)
    return replace(state, pool=tuple(i for i in state.pool if i not in ids), history=history)


def observe(state: ContextState, item_to_stats: Mapping[str, ItemStats]) -> ContextState:
    """Record one iteration's impressions and clicks for pool items."""
    unknown = [i for i in item_to_stats if i not in state.pool]
    require(not unknown, f"stats given for items not in the live pool: {unknown}")
    history = dict(state.history)
    for item_id, stats in item_to_stats.items():
        history[item_id] = history[item_id].observe(stats)
    return replace(state, history=history)


def set_ctr_override(state: ContextState, item_to_ctr: Mapping[str, float]) -> ContextState:
    """Replace the CTR strategies see for some items (``random-ctr``)."""
    history = dict(state.history)
    for item_id, ctr in item_to_ctr.items():
        history[item_id] = replace(history[item_id], ctr_override=ctr)
    return replace(state, history=history)


def advance(state: ContextState) -> ContextState:
    """Move to the next iteration index."""
    return replace(state, iteration=state.iteration + 1)


def worst_items(records: list[ItemRecord], n: int) -> list[str]:
    """Ids of the ``n`` lowest-CTR records; ties broken by fewer clicks, then older first."""
    order = sorted(range(len(records)), key=lambda k: (records[k].ctr, records[k].stats.clicks, k))
    return [records[k].item.item_id for k in order[:n]]
