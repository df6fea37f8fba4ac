"""Serving policies: which ``k_shown`` items of the pool a session is shown.

* ``uniform`` — the paper's: ``k_shown`` items uniformly without replacement (Section 5.2).
* ``thompson`` — Thompson sampling over Beta posteriors of each item's CTR: per session, one draw per
  item and the ``k_shown`` highest are shown. Posteriors start from the clicks and impressions each
  item has already had (``prior_stats``) and are updated every ``batch_size`` sessions, as a service
  that refreshes its counters now and then would. Users click by Equation 1 either way.

A policy changes the CTR users see while the pool learns; it does not change a pool's items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clickloop.core.items import ItemStats
from clickloop.core.posterior import BetaPrior, pooled_prior, posteriors, thompson_top_k
from clickloop.errors import ConfigurationError, UnknownIdError
from clickloop.simulator.click_model import ClickModel, SimulationResult, check_scores, simulate


@dataclass(frozen=True)
class UniformServing:
    """The paper's serving: every session shows ``k_shown`` items drawn uniformly from the pool."""

    name = "uniform"


@dataclass(frozen=True)
class ThompsonServing:
    """Thompson sampling per session. ``batch_size``: sessions between posterior updates (1 = fully
    online; larger = the delay of a service's counters). ``prior``: Beta prior of every item.
    ``prior_strength``: None keeps ``prior``; a number m of pseudo-impressions centres every item's
    prior on the pool's CTR so far (:func:`~clickloop.core.posterior.pooled_prior`; ``prior`` while
    nothing has been shown)."""

    batch_size: int = 25
    prior: BetaPrior = BetaPrior()
    prior_strength: float | None = None
    name = "thompson"

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigurationError(
                f"ThompsonServing.batch_size ({self.batch_size!r}) must be an integer >= 1, e.g. 25"
            )
        if self.prior_strength is not None:
            pooled_prior([], self.prior_strength)  # validates it

    def prior_for(self, stats: Sequence[ItemStats]) -> BetaPrior:
        """The prior of every item of a pool whose items have had ``stats`` so far."""
        return self.prior if self.prior_strength is None else pooled_prior(stats, self.prior_strength, self.prior)


ServingPolicy = UniformServing | ThompsonServing
SERVING_POLICIES: dict[str, type] = {"uniform": UniformServing, "thompson": ThompsonServing}


def make_serving(name: str) -> ServingPolicy:
    """A serving policy by id (``uniform``, ``thompson``)."""
    if name not in SERVING_POLICIES:
        raise UnknownIdError("serving policy", name, list(SERVING_POLICIES))
    return SERVING_POLICIES[name]()  # type: ignore[no-any-return]


def simulate_served(
    scores: np.ndarray,
    model: ClickModel,
    n_sessions: int,
    rng: np.random.Generator,
    policy: ServingPolicy = UniformServing(),
    prior_stats: Sequence[ItemStats] | None = None,
) -> SimulationResult:
    """Simulate ``n_sessions`` sessions served by ``policy``; ``scores[j, i]`` is r_ij (Eq. 1).

    ``prior_stats``: per pool item, what it had before these sessions (Thompson starts from it).
    """
    if isinstance(policy, UniformServing):
        return simulate(scores, model, n_sessions, rng)
    scores = check_scores(scores, model)
    if not isinstance(n_sessions, int | np.integer) or n_sessions < 1:
        raise ConfigurationError(f"n_sessions ({n_sessions}) must be an integer >= 1; the paper uses 5000")
    n_personas, n_items = scores.shape
    before = list(prior_stats) if prior_stats is not None else [ItemStats()] * n_items
    if len(before) != n_items:
        raise ConfigurationError(f"prior_stats has {len(before)} entries for a pool of {n_items} items")
    alpha, beta = posteriors(before, policy.prior_for(before))
    impressions = np.zeros(n_items, dtype=np.int64)
    clicks = np.zeros(n_items, dtype=np.int64)
    with_click = 0
    k = model.k_shown
    reject = model.rejection_score / model.temperature
    logits_all = scores / model.temperature
    for start in range(0, int(n_sessions), policy.batch_size):
        size = min(policy.batch_size, int(n_sessions) - start)
        shown = thompson_top_k(alpha, beta, k, rng, size)
        personas = rng.integers(0, n_personas, size=size)
        logits = logits_all[personas[:, None], shown]
        top = np.maximum(logits.max(axis=1), reject)
        cumulative = np.cumsum(np.exp(logits - top[:, None]), axis=1)
        draw = rng.random(size) * (cumulative[:, -1] + np.exp(reject - top))
        choice = (draw[:, None] >= cumulative).sum(axis=1)
        clicked = choice < k
        batch_impressions = np.bincount(shown.ravel(), minlength=n_items)
        batch_clicks = np.bincount(shown[clicked, choice[clicked]], minlength=n_items)
        impressions += batch_impressions
        clicks += batch_clicks
        with_click += int(clicked.sum())
        alpha = alpha + batch_clicks
        beta = beta + batch_impressions - batch_clicks
    return SimulationResult(int(n_sessions), impressions, clicks, with_click)
