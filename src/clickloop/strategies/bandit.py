"""The baseline the paper did not run: a large pool generated once, then a bandit picks what to show.

``fixed-pool`` writes ``initial_pool_size`` items (default 20) with the initialisation prompt and never
changes them; every session is served by Thompson sampling over the items' Beta posteriors
(:class:`~clickloop.simulator.serving.ThompsonServing`), so CTR rises only as the bandit learns which
items to show. Its LLM cost is one generation call, paid up front.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clickloop.core.pool import ContextState, advance
from clickloop.errors import ConfigurationError
from clickloop.strategies.writer import ItemWriter


@dataclass(frozen=True)
class FixedPool:
    """``initial_pool_size``: items of IP_0, generated once; ``serving``: the policy that shows them."""

    initial_pool_size: int = 20
    serving: str = "thompson"
    name = "fixed-pool"

    def __post_init__(self) -> None:
        if not isinstance(self.initial_pool_size, int) or self.initial_pool_size < 1:
            raise ConfigurationError(
                f"fixed-pool initial_pool_size ({self.initial_pool_size!r}) must be an integer >= 1, e.g. 20"
            )

    def step(self, state: ContextState, writer: ItemWriter, rng: np.random.Generator) -> ContextState:
        return advance(state)
