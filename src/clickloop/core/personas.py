"""Personas (hidden user cohorts, the paper's p_j) and populations (sets of personas, U)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clickloop.errors import UnknownIdError, require


@dataclass(frozen=True)
class Persona:
    """A user cohort. ``name`` is the paper's label ("Quality"); ``description`` is its Table 4 text."""

    name: str
    description: str

    def __post_init__(self) -> None:
        require(bool(self.name.strip()), "Persona.name must not be empty")
        require(bool(self.description.strip()), f"Persona {self.name!r} needs a description")


@dataclass(frozen=True)
class Population:
    """Personas drawn uniformly, one per simulated session. ``name`` labels result tables."""

    name: str
    personas: tuple[Persona, ...]

    def __post_init__(self) -> None:
        require(len(self.personas) >= 1, f"population {self.name!r} needs at least one persona")
        names = [p.name for p in self.personas]
        require(len(set(names)) == len(names), f"population {self.name!r} repeats a persona: {names}")


def population_from_names(names: Sequence[str], available: tuple[Persona, ...], label: str | None = None) -> Population:
    """Build a population from persona names (case-insensitive); unknown names list the valid ones."""
    by_key = {p.name.lower(): p for p in available}
    chosen = []
    for name in names:
        key = name.strip().lower()
        if key not in by_key:
            raise UnknownIdError("persona", name.strip(), [p.name for p in available])
        chosen.append(by_key[key])
    return Population(label or " + ".join(p.name for p in chosen), tuple(chosen))
