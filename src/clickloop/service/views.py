"""Store records -> response bodies (:mod:`clickloop.service.schemas`), shared by the API and the dashboard.

Intervals are 95% Wilson score intervals on clicks / impressions of the items shown (the same
interval as the experiment reports, :func:`clickloop.report.stats.wilson_interval`).
"""

from __future__ import annotations

from clickloop.core.items import ItemStats
from clickloop.report.stats import wilson_interval
from clickloop.service import schemas
from clickloop.service.store import ContextRow, ItemRow, ItemStatus, PoolIteration, Store


def stats(value: ItemStats) -> schemas.Stats:
    low, high = wilson_interval(value.clicks, value.impressions) if value.impressions else (0.0, 1.0)
    return schemas.Stats(impressions=value.impressions, clicks=value.clicks, ctr=value.ctr, ctr_low=low, ctr_high=high)


def item(row: ItemRow) -> schemas.Item:
    provenance = row.item.provenance
    lineage = schemas.Lineage(
        origin=provenance.origin.value,
        parents=list(provenance.parents),
        template=provenance.template,
        template_version=provenance.template_version,
        attempts=provenance.attempts,
        notes=dict(provenance.notes),
        iteration_created=row.iteration_created,
        dropped_at=row.dropped_at,
    )
    return schemas.Item(
        item_id=row.item_id, text=row.item.text, status=row.status.value, created_at=row.created_at, lineage=lineage
    )


def pool(value: PoolIteration) -> schemas.Pool:
    entries = value.entries
    summed = sum((entry.stats for entry in entries), ItemStats())
    return schemas.Pool(
        iteration=value.iteration,
        created_at=value.created_at,
        stats=stats(summed),
        items=[
            schemas.PoolItem(
                item_id=entry.item.item_id,
                text=entry.item.text,
                status=entry.status.value,
                iteration=stats(entry.stats),
                total=stats(entry.total),
            )
            for entry in entries
        ],
    )


def summary(row: ContextRow) -> schemas.ContextSummary:
    return schemas.ContextSummary(
        context_id=row.context_id,
        topic=str(row.config.get("topic", "")),
        iteration=row.iteration,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_iteration_at=row.last_iteration_at,
        impressions_since_iteration=row.impressions_since_iteration,
        impressions_total=row.impressions_total,
        iteration_requested_at=row.iteration_requested_at,
        leased_by=row.leased_by,
        last_error=last_error(row),
    )


def last_error(row: ContextRow) -> schemas.IterationError | None:
    failure = row.last_error
    if failure is None:
        return None
    return schemas.IterationError(message=failure.message, failed_at=failure.failed_at, attempts=failure.attempts)


def detail(store: Store, context_id: str) -> schemas.ContextDetail:
    """The context with its live pool, every pool, every item's lineage, event counts and LLM use."""
    row = store.get_context(context_id)
    history = [pool(p) for p in store.pool_history(context_id)]
    items = [item(r) for r in store.list_items(context_id)]
    live = next((p for p in history if p.iteration == row.iteration), None)
    usage = [schemas.LlmUsage.model_validate(u, from_attributes=True) for u in store.llm_usage(context_id)]
    return schemas.ContextDetail(
        **summary(row).model_dump(),
        config=dict(row.config),
        pool=live,
        history=history,
        items=items,
        pending_review=sum(i.status == ItemStatus.PENDING.value for i in items),
        event_counts=store.event_counts(context_id),
        llm_usage=usage,
    )


def review_queue(store: Store, context_id: str) -> schemas.ReviewQueue:
    return schemas.ReviewQueue(
        context_id=context_id, pending=[item(r) for r in store.list_items(context_id, ItemStatus.PENDING)]
    )
