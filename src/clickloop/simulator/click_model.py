"""The paper's user click simulator (Section 5.2, Equation 1), vectorised with numpy.

Per simulated session: a persona p_j is drawn uniformly from the population, ``k_shown`` items are
drawn uniformly without replacement from the pool, and one of k+1 actions is taken with

    P(click q_i) = exp(r_ij / T) / (exp(RS / T) + sum_{q_k shown} exp(r_kj / T))

and the remaining mass exp(RS/T) / (...) on "no click".
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np

from clickloop.errors import ConfigurationError, require


@dataclass(frozen=True)
class ClickModel:
    """Parameters of Equation 1.

    ``temperature``: softmax temperature T (> 0); the paper uses 1.5.
    ``rejection_score``: logit of the no-click option, RS; the paper uses 11 (scores are 1-10).
    ``k_shown``: items shown per session, K; the paper uses 3.
    """

    temperature: float = 1.5
    rejection_score: float = 11.0
    k_shown: int = 3

    def __post_init__(self) -> None:
        if not (isinstance(self.temperature, int | float) and math.isfinite(self.temperature)) or self.temperature <= 0:
            raise ConfigurationError(
                f"temperature ({self.temperature}) must be a finite number > 0; the paper uses 1.5"
            )
        if not math.isfinite(self.rejection_score):
            raise ConfigurationError(f"rejection_score ({self.rejection_score}) must be finite; the paper uses 11")
        if not isinstance(self.k_shown, int) or self.k_shown < 1:
            raise ConfigurationError(f"k_shown ({self.k_shown}) must be an integer >= 1; the paper uses 3")

    def check_pool_size(self, pool_size: int) -> None:
        if self.k_shown > pool_size:
            raise ConfigurationError(
                f"k_shown ({self.k_shown}) must not exceed the pool size ({pool_size}); lower k_shown or grow the pool"
            )


@dataclass(frozen=True)
class SimulationResult:
    """Outcome of ``n_sessions`` simulated sessions over one pool.

    ``impressions[i]``/``clicks[i]``: per pool item (same order as the score columns);
    ``sessions_with_click``: sessions where any item was clicked (at most one click per session).
    """

    n_sessions: int
    impressions: np.ndarray
    clicks: np.ndarray
    sessions_with_click: int

    @property
    def pool_ctr(self) -> float:
        """Sessions with a click / S (fraction)."""
        return self.sessions_with_click / self.n_sessions

    @property
    def item_ctr(self) -> np.ndarray:
        """clicks / impressions per item (0 where never shown)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.impressions > 0, self.clicks / np.maximum(self.impressions, 1), 0.0)


def check_scores(scores: np.ndarray, model: ClickModel) -> np.ndarray:
    """``scores`` as a float (n_personas, n_items) matrix of relevance scores (1-10, the judge's s_{p,q}),
    checked: finite, and a pool size ``model`` can show. Raises :class:`ConfigurationError` otherwise."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.shape[0] < 1:
        raise ConfigurationError(f"scores must be a (n_personas, n_items) matrix; got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ConfigurationError("scores must all be finite numbers")
    model.check_pool_size(scores.shape[1])
    return scores


def simulate(
    scores: np.ndarray,
    model: ClickModel,
    n_sessions: int,
    rng: np.random.Generator,
    persona_weights: np.ndarray | None = None,
) -> SimulationResult:
    """Simulate ``n_sessions`` (S) sessions. ``scores[j, i]`` is r_ij for persona j and pool item i.

    ``persona_weights``: optional sampling weights per persona (default uniform, as in the paper).
    """
    scores = check_scores(scores, model)
    if not isinstance(n_sessions, int | np.integer) or n_sessions < 1:
        raise ConfigurationError(f"n_sessions ({n_sessions}) must be an integer >= 1; the paper uses 5000")
    n_personas, n_items = scores.shape
    k = model.k_shown
    if persona_weights is None:
        personas = rng.integers(0, n_personas, size=n_sessions)
    else:
        personas = rng.choice(n_personas, size=n_sessions, p=persona_weights / persona_weights.sum())
    reject = model.rejection_score / model.temperature
    if math.comb(n_items, k) <= _MAX_ENUMERATED_SUBSETS:
        # a uniform k-subset is a uniform draw from the enumerated combinations; the action
        # probabilities of every (persona, subset) pair are computed once instead of per session
        subsets = _subsets(n_items, k)
        subset = rng.integers(0, len(subsets), size=n_sessions)
        shown = subsets[subset]
        cumulative = _cumulative_action_probs(scores / model.temperature, subsets, reject)[personas, subset]
        draw = rng.random(n_sessions)
    else:
        keys = rng.random((n_sessions, n_items))
        shown = np.argpartition(keys, k - 1, axis=1)[:, :k]
        logits = scores[personas[:, None], shown] / model.temperature
        top = np.maximum(logits.max(axis=1), reject)
        cumulative = np.cumsum(np.exp(logits - top[:, None]), axis=1)
        draw = rng.random(n_sessions) * (cumulative[:, -1] + np.exp(reject - top))
    choice = (draw[:, None] >= cumulative).sum(axis=1)  # position in shown, or k for no click
    clicked = choice < k
    impressions = np.bincount(shown.ravel(), minlength=n_items)
    clicks = np.bincount(shown[clicked, choice[clicked]], minlength=n_items)
    return SimulationResult(int(n_sessions), impressions, clicks, int(clicked.sum()))


_MAX_ENUMERATED_SUBSETS = 4096


@functools.lru_cache(maxsize=64)
def _subsets(n_items: int, k: int) -> np.ndarray:
    return np.array(list(itertools.combinations(range(n_items), k)), dtype=np.int64)


def _cumulative_action_probs(logits: np.ndarray, subsets: np.ndarray, reject: float) -> np.ndarray:
    """(personas, subsets, k) cumulative click probabilities of the shown items, in subset order."""
    shown_logits = logits[:, subsets]
    top = np.maximum(shown_logits.max(axis=2), reject)
    weights = np.exp(shown_logits - top[..., None])
    total = weights.sum(axis=2) + np.exp(reject - top)
    return np.cumsum(weights, axis=2) / total[..., None]


def simulate_loop(scores: np.ndarray, model: ClickModel, n_sessions: int, rng: np.random.Generator) -> SimulationResult:
    """Plain per-session Python loop: the reference the vectorised version is benchmarked and tested against."""
    scores = check_scores(scores, model)
    n_personas, n_items = scores.shape
    impressions = [0] * n_items
    clicks = [0] * n_items
    with_click = 0
    for _ in range(n_sessions):
        j = int(rng.integers(n_personas))
        shown = rng.choice(n_items, size=model.k_shown, replace=False)
        weights = [math.exp(scores[j, i] / model.temperature) for i in shown]
        weights.append(math.exp(model.rejection_score / model.temperature))
        u = rng.random() * sum(weights)
        acc, action = 0.0, model.k_shown
        for position, weight in enumerate(weights):
            acc += weight
            if u < acc:
                action = position
                break
        for i in shown:
            impressions[i] += 1
        if action < model.k_shown:
            clicks[shown[action]] += 1
            with_click += 1
    return SimulationResult(n_sessions, np.array(impressions), np.array(clicks), with_click)


def theoretical_ctr(score: float, model: ClickModel) -> float:
    """Closed-form pool CTR when every shown item scores ``score``: K / (exp((RS - s)/T) + K).

    With the paper's defaults this is 0.606 at s = 10 (Figures 3 and 6).
    """
    return model.k_shown / (math.exp((model.rejection_score - score) / model.temperature) + model.k_shown)


def expected_pool_ctr(scores: np.ndarray, model: ClickModel, max_subsets: int = 20000) -> float:
    """Exact expected pool CTR of a pool: the mean over personas and over all k-subsets of Eq. 1's click mass."""
    scores = check_scores(scores, model)
    n_items = scores.shape[1]
    require(
        math.comb(n_items, model.k_shown) <= max_subsets,
        f"C({n_items}, {model.k_shown}) subsets exceed max_subsets={max_subsets}",
    )
    subsets = np.array(list(itertools.combinations(range(n_items), model.k_shown)))
    mass = np.exp(scores[:, subsets] / model.temperature).sum(axis=2)  # (personas, subsets)
    reject = math.exp(model.rejection_score / model.temperature)
    return float((mass / (mass + reject)).mean())
