"""Items (the paper's questions q_i), their provenance and their click statistics."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field, replace

from clickloop.errors import require


class ItemOrigin(enum.StrEnum):
    """How an item came to be (stored on every item)."""

    INITIAL = "initial"  # IP_0, from the initialisation prompt (Figure 9)
    NO_DROP = "no-drop"
    RANDOM_CTR = "random-ctr"
    PARTIAL_CTR = "partial-ctr"
    FULL_CTR = "full-ctr"
    EXPLORE = "explore"
    EXPLOIT = "exploit"
    MANUAL = "manual"


def item_id_for(context_id: str, text: str) -> str:
    """Stable id: 12 hex digits of sha256 over context and normalised text."""
    digest = hashlib.sha256(f"{context_id}\n{normalize_text(text)}".encode()).hexdigest()
    return digest[:12]


def normalize_text(text: str) -> str:
    """Lower-case, single-spaced text used for identity and duplicate checks."""
    return " ".join(text.lower().split())


@dataclass(frozen=True)
class Provenance:
    """Where an item came from.

    ``template``/``template_version``: the prompt file that produced it; ``parents``: ids of the items
    the prompt showed (exploit: the target item first); ``iteration``: the iteration that created it
    (0 = initial pool); ``notes``: free-form decisions of the strategy (e.g. the exploit target).
    """

    origin: ItemOrigin
    iteration: int
    template: str = ""
    template_version: str = ""
    parents: tuple[str, ...] = ()
    attempts: int = 1
    notes: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        require(self.iteration >= 0, f"Provenance.iteration ({self.iteration}) must be >= 0")
        require(self.attempts >= 1, f"Provenance.attempts ({self.attempts}) must be >= 1")

    def to_json(self) -> dict[str, object]:
        return {
            "origin": self.origin.value,
            "iteration": self.iteration,
            "template": self.template,
            "template_version": self.template_version,
            "parents": list(self.parents),
            "attempts": self.attempts,
            "notes": dict(self.notes),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Provenance:
        return cls(
            origin=ItemOrigin(str(data["origin"])),
            iteration=int(data["iteration"]),  # type: ignore[call-overload]
            template=str(data.get("template", "")),
            template_version=str(data.get("template_version", "")),
            parents=tuple(data.get("parents", ())),  # type: ignore[arg-type]
            attempts=int(data.get("attempts", 1)),  # type: ignore[call-overload]
            notes=tuple(sorted(dict(data.get("notes", {})).items())),  # type: ignore[call-overload]
        )


@dataclass(frozen=True)
class Item:
    """One generated item (a suggested question) with its provenance."""

    item_id: str
    text: str
    provenance: Provenance

    def __post_init__(self) -> None:
        require(bool(self.text.strip()), "Item.text must not be empty")
        require(bool(self.item_id), "Item.item_id must not be empty")

    @classmethod
    def create(cls, context_id: str, text: str, provenance: Provenance) -> Item:
        return cls(item_id_for(context_id, text), text.strip(), provenance)

    def to_json(self) -> dict[str, object]:
        return {"item_id": self.item_id, "text": self.text, "provenance": self.provenance.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Item:
        return cls(str(data["item_id"]), str(data["text"]), Provenance.from_json(data["provenance"]))  # type: ignore[arg-type]


@dataclass(frozen=True)
class ItemStats:
    """Impressions (times shown among the ``k_shown``) and clicks of one item."""

    impressions: int = 0
    clicks: int = 0

    def __post_init__(self) -> None:
        require(self.impressions >= 0, f"ItemStats.impressions ({self.impressions}) must be >= 0")
        require(
            0 <= self.clicks <= self.impressions,
            f"ItemStats.clicks ({self.clicks}) must be in [0, impressions={self.impressions}]",
        )

    @property
    def ctr(self) -> float:
        """clicks / impressions, 0.0 for an item never shown (fraction, not percent)."""
        return self.clicks / self.impressions if self.impressions else 0.0

    def __add__(self, other: ItemStats) -> ItemStats:
        return ItemStats(self.impressions + other.impressions, self.clicks + other.clicks)


@dataclass(frozen=True)
class ItemRecord:
    """An item in a context's history.

    ``stats``: impressions and clicks of the latest iteration it was live in (what the paper's prompts
    show: "observed CTR"; dropped items keep their last one). ``total``: summed over all its iterations.

    ``ctr_override`` replaces the observed CTR in prompts and ranking (``random-ctr`` uses it).
    ``dropped_at``: the iteration that removed it from the pool (None while live).
    """

    item: Item
    stats: ItemStats = field(default_factory=ItemStats)
    total: ItemStats = field(default_factory=ItemStats)
    ctr_override: float | None = None
    dropped_at: int | None = None

    @property
    def ctr(self) -> float:
        return self.ctr_override if self.ctr_override is not None else self.stats.ctr

    def observe(self, stats: ItemStats) -> ItemRecord:
        """Record one iteration's observation."""
        return replace(self, stats=stats, total=self.total + stats)
