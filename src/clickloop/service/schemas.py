"""Request and response bodies of the HTTP API (pydantic: the boundary). CTRs are fractions in [0, 1].

Item ``text`` is data written by an LLM: clients must render it as text (escaped), never as markup.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clickloop.service.store.base import MAX_KEY_CHARS
from clickloop.service.store.queries.feedback import MAX_BATCH_EVENTS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# -- errors -------------------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    type: str = Field(description="Stable code: not_found, conflict, pool_not_ready, invalid_value, ...")
    message: str
    field: str | None = Field(default=None, description="The request field at fault (dotted path), when there is one.")


class ErrorResponse(BaseModel):
    error: ErrorBody


ERROR_DESCRIPTIONS = {
    400: "Malformed JSON.",
    401: "No API key, or an unknown or revoked one.",
    403: "The API key lacks the role or the context scope.",
    404: "No such context (or item).",
    409: "Conflicts with the stored state.",
    413: "Body too large.",
    422: "A field has a wrong type or value; `field` names it.",
    503: "Not ready (see Retry-After) or the store is unavailable.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error status codes."""
    return {code: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[code]} for code in codes}


# -- serving ------------------------------------------------------------------------------------------


class SuggestedItem(BaseModel):
    item_id: str
    text: str = Field(description="Generated text; show it as plain text.")


class Suggestions(BaseModel):
    """``k_shown`` items drawn uniformly at random from the live pool, and the impression that showed them."""

    impression_id: str = Field(description="Unguessable; clicks on these items must quote it.")
    iteration: int = Field(description="Index i of the pool IP_i the items came from.")
    items: list[SuggestedItem]


class Event(_Strict):
    """A click on ``item_id``, one of the items that impression ``impression_id`` showed."""

    idempotency_key: str = Field(
        min_length=1, max_length=MAX_KEY_CHARS, description="Unique per API key; a retried event counts once."
    )
    impression_id: str = Field(min_length=1, max_length=MAX_KEY_CHARS)
    item_id: str = Field(min_length=1, max_length=MAX_KEY_CHARS)
    type: Literal["click"] = "click"
    dwell_ms: int | None = Field(default=None, ge=0, lt=2**31, description="Time spent on the item, milliseconds.")


class EventBatch(_Strict):
    events: list[Event] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


class EventResult(BaseModel):
    idempotency_key: str
    outcome: str = Field(description="accepted, duplicate, rejected:unknown_impression or rejected:expired_impression")


class EventBatchResult(BaseModel):
    """Per-event outcomes, in the order sent. Rejected events are counted, not stored."""

    results: list[EventResult]
    accepted: int
    duplicate: int
    rejected: int


# -- contexts -----------------------------------------------------------------------------------------


class Stats(BaseModel):
    """Impressions, clicks, CTR and its 95% Wilson score interval (``[0, 1]`` before any impression)."""

    impressions: int
    clicks: int
    ctr: float
    ctr_low: float
    ctr_high: float


class Lineage(BaseModel):
    """Where an item came from (its provenance)."""

    origin: str = Field(description="initial, explore, exploit, full-ctr, ...")
    parents: list[str] = Field(description="Items the generating prompt showed (exploit: the target first).")
    template: str
    template_version: str
    attempts: int
    notes: dict[str, str]
    iteration_created: int
    dropped_at: int | None = Field(description="The iteration whose step removed it from the pool.")


class Item(BaseModel):
    item_id: str
    text: str
    status: str = Field(description="live, pending, rejected or dropped")
    created_at: float
    lineage: Lineage


class PoolItem(BaseModel):
    item_id: str
    text: str
    status: str
    iteration: Stats = Field(description="In this pool's iteration.")
    total: Stats = Field(description="Over every iteration the item was live in.")


class Pool(BaseModel):
    iteration: int
    created_at: float
    stats: Stats = Field(description="Summed over the pool's items (CTR per shown item).")
    items: list[PoolItem]


class LlmUsage(BaseModel):
    iteration: int
    role: str
    calls: int
    cache_hits: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float


class IterationError(BaseModel):
    """The last failed iteration since the last applied one; the worker retries it with a back-off."""

    message: str = Field(description="The error, as `Type: text` (the LLM could not be loaded, bad output, ...).")
    failed_at: float = Field(description="When it failed, epoch seconds.")
    attempts: int = Field(description="Failed iterations in a row.")


class ContextSummary(BaseModel):
    context_id: str
    topic: str
    iteration: int | None = Field(description="Index i of the live pool IP_i; null before the initial pool.")
    created_at: float
    updated_at: float
    last_iteration_at: float | None
    impressions_since_iteration: int
    impressions_total: int
    iteration_requested_at: float | None
    leased_by: str | None = Field(description="The worker running an iteration on it now, if any.")
    last_error: IterationError | None = Field(description="Why the last iteration failed; null once one is applied.")


class ContextDetail(ContextSummary):
    config: dict[str, Any]
    pool: Pool | None = Field(description="The live pool; null before the initial pool.")
    history: list[Pool] = Field(description="Every pool, IP_0 first.")
    items: list[Item] = Field(description="Every item ever generated, with its lineage.")
    pending_review: int
    event_counts: dict[str, int]
    llm_usage: list[LlmUsage]


# -- iterations and review ----------------------------------------------------------------------------


class IterationRequested(BaseModel):
    context_id: str
    iteration: int | None = Field(description="The live iteration when the request was made.")
    iteration_requested_at: float | None


class ReviewDecision(_Strict):
    decision: Literal["approve", "reject"]
    item_ids: list[str] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _distinct(self) -> ReviewDecision:
        if len(set(self.item_ids)) != len(self.item_ids):
            raise ValueError(f"item_ids ({self.item_ids}) must not repeat an id")
        return self


class ReviewQueue(BaseModel):
    context_id: str
    pending: list[Item]


class Health(BaseModel):
    status: Literal["ok"]
    schema_version: int
