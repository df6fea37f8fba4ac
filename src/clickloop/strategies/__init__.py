"""Update strategies behind one facade: ``strategy.step(state, writer, rng) -> next state``.

One ``name -> class`` registry serves the CLI, config files and (later) the service.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Protocol

import numpy as np

from clickloop.core.pool import ContextState
from clickloop.errors import ConfigurationError, UnknownIdError
from clickloop.strategies.aspects import AspectGrouper
from clickloop.strategies.bandit import FixedPool
from clickloop.strategies.constraints import ItemConstraints
from clickloop.strategies.guided import GuidedExploreExploit
from clickloop.strategies.paper import ExploreExploit, FullCtr, NoDrop, PartialCtr, RandomCtr
from clickloop.strategies.writer import ItemWriter

__all__ = [
    "STRATEGIES",
    "AspectGrouper",
    "ExploreExploit",
    "FixedPool",
    "FullCtr",
    "GuidedExploreExploit",
    "ItemConstraints",
    "ItemWriter",
    "NoDrop",
    "PartialCtr",
    "RandomCtr",
    "Strategy",
    "make_strategy",
]


class Strategy(Protocol):
    name: str

    def step(self, state: ContextState, writer: ItemWriter, rng: np.random.Generator) -> ContextState: ...


STRATEGIES: dict[str, type] = {
    "no-drop": NoDrop,
    "random-ctr": RandomCtr,
    "partial-ctr": PartialCtr,
    "full-ctr": FullCtr,
    "explore-exploit": ExploreExploit,
    "guided-ee": GuidedExploreExploit,
    "fixed-pool": FixedPool,
}


def make_strategy(name: str, **options: Any) -> Strategy:
    """Build a registered strategy; ``options`` are its fields (unknown keys are rejected)."""
    if name not in STRATEGIES:
        raise UnknownIdError("strategy", name, list(STRATEGIES))
    cls = STRATEGIES[name]
    valid = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ConfigurationError(f"strategy {name!r} has no option(s) {unknown}; valid options: {sorted(valid)}")
    return cls(**options)  # type: ignore[no-any-return]
