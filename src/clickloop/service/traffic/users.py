"""The simulated users: the paper's persona click model (Section 5.2, Equation 1) facing a live service.

The offline simulator draws the shown items itself; here the service draws them, and each session
only decides what its user does with them: a persona p_j is drawn uniformly from the population, and
one of the k+1 actions (click one of the k shown items, or none) is taken with Eq. 1 over the shown
items' relevance scores r_ij. ``k`` is whatever the service showed. Scores come from a
:class:`~clickloop.judges.base.ScoreBook`, so each (item text, persona, topic) is judged once.

Everything here takes values and returns values (no HTTP): the driver (:mod:`.driver`) does the IO.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clickloop.core.personas import Population
from clickloop.judges.base import ScoreBook
from clickloop.simulator.click_model import ClickModel, expected_pool_ctr, simulate


@dataclass(frozen=True)
class SessionOutcome:
    """What one simulated user did: ``position`` of the clicked item among the shown ones, or None."""

    persona: str
    position: int | None
    scores: tuple[float, ...]


class SimulatedUsers:
    """Users of one population. ``temperature`` and ``rejection_score`` are Eq. 1's T and RS."""

    def __init__(
        self, population: Population, scores: ScoreBook, temperature: float = 1.5, rejection_score: float = 11.0
    ) -> None:
        ClickModel(temperature, rejection_score, 1)  # validates T and RS once, with the paper's messages
        self.population = population
        self.scores = scores
        self.temperature = temperature
        self.rejection_score = rejection_score
        self._models: dict[int, ClickModel] = {}

    def model(self, k_shown: int) -> ClickModel:
        if k_shown not in self._models:
            self._models[k_shown] = ClickModel(self.temperature, self.rejection_score, k_shown)
        return self._models[k_shown]

    def session(self, topic: str, shown: Sequence[str], rng: np.random.Generator) -> SessionOutcome:
        """One user facing the texts ``shown`` (in the order shown) for ``topic``."""
        if not shown:
            raise ValueError("shown must hold at least one item text")
        personas = self.population.personas
        persona = personas[int(rng.integers(len(personas)))]
        row = tuple(self.scores.score(text, persona, topic) for text in shown)
        # one session of Eq. 1 on exactly these k items: the k-subset of k items is all of them
        result = simulate(np.array([row]), self.model(len(shown)), 1, rng)
        position = int(np.argmax(result.clicks)) if result.sessions_with_click else None
        return SessionOutcome(persona.name, position, row)

    def pool_scores(self, topic: str, texts: Sequence[str]) -> np.ndarray:
        """r_ij for every persona (rows) and pool item (columns)."""
        return np.array([[self.scores.score(text, p, topic) for text in texts] for p in self.population.personas])

    def expected_ctr(self, topic: str, texts: Sequence[str], k_shown: int) -> float | None:
        """The pool CTR Eq. 1 predicts for a pool of ``texts`` shown ``k_shown`` at a time (None if k > pool)."""
        k = min(k_shown, len(texts))
        if k < 1:
            return None
        return expected_pool_ctr(self.pool_scores(topic, texts), self.model(k))
