"""What the API and dashboard read: pools with counters, their history, items with lineage, counts."""

from __future__ import annotations

from clickloop.core.items import Item, ItemStats, Provenance
from clickloop.errors import NotFoundError
from clickloop.service.store.base import ItemRow, ItemStatus, PoolEntry, PoolIteration, StoreMetrics
from clickloop.service.store.queries import contexts
from clickloop.service.store.tx import Row, Tx, load_json

ITEM_COLUMNS = "i.item_id, i.text, i.provenance, i.status"


def _item(row: Row) -> Item:
    """An :class:`Item` from the first three of :data:`ITEM_COLUMNS`."""
    return Item(str(row[0]), str(row[1]), Provenance.from_json(load_json(row[2])))


def _totals(tx: Tx, context_id: str) -> dict[str, ItemStats]:
    rows = tx.rows(
        "SELECT item_id, SUM(impressions), SUM(clicks) FROM pool_items WHERE context_id = ? GROUP BY item_id",
        (context_id,),
    )
    return {str(r[0]): ItemStats(int(r[1]), int(r[2])) for r in rows}


def _pools(tx: Tx, context_id: str, only: int | None) -> list[PoolIteration]:
    """The pools of every iteration of ``context_id``, or of iteration ``only``."""
    # unqualified ``iteration`` is pool_items.iteration in the join (items has no such column)
    where, params = ("AND iteration = ?", (context_id, only)) if only is not None else ("", (context_id,))
    created = tx.rows(f"SELECT iteration, created_at FROM iterations WHERE context_id = ? {where} ORDER BY 1", params)
    rows = tx.rows(
        f"SELECT p.iteration, {ITEM_COLUMNS}, p.impressions, p.clicks FROM pool_items p "
        "JOIN items i ON i.context_id = p.context_id AND i.item_id = p.item_id "
        f"WHERE p.context_id = ? {where} ORDER BY p.iteration, p.position",
        params,
    )
    totals = _totals(tx, context_id)
    by_iteration: dict[int, list[PoolEntry]] = {int(i): [] for i, _ in created}
    for row in rows:
        item = _item(row[1:])
        stats = ItemStats(int(row[5]), int(row[6]))
        by_iteration[int(row[0])].append(PoolEntry(item, ItemStatus(row[4]), stats, totals[item.item_id]))
    return [PoolIteration(context_id, int(i), float(at), tuple(by_iteration[int(i)])) for i, at in created]


def live_pool(tx: Tx, context_id: str) -> PoolIteration:
    row = tx.row("SELECT iteration FROM contexts WHERE context_id = ?", (context_id,))
    if row is None:
        raise contexts.not_found(context_id)
    if row[0] is None:
        raise NotFoundError(f"context {context_id!r} has no pool yet; the worker generates it on its first iteration")
    return _pools(tx, context_id, int(row[0]))[0]


def pool_history(tx: Tx, context_id: str) -> list[PoolIteration]:
    contexts.check_exists(tx, context_id)
    return _pools(tx, context_id, None)


def list_items(tx: Tx, context_id: str, status: ItemStatus | None) -> list[ItemRow]:
    contexts.check_exists(tx, context_id)
    where, params = ("AND i.status = ?", (context_id, ItemStatus(status).value)) if status else ("", (context_id,))
    rows = tx.rows(
        f"SELECT {ITEM_COLUMNS}, i.iteration_created, i.dropped_at, i.created_at FROM items i "
        f"WHERE i.context_id = ? {where} ORDER BY i.iteration_created, i.ordinal",
        params,
    )
    return [
        ItemRow(context_id, _item(r), ItemStatus(r[3]), int(r[4]), None if r[5] is None else int(r[5]), float(r[6]))
        for r in rows
    ]


def event_counts(tx: Tx, context_id: str | None) -> dict[str, int]:
    where, params = ("WHERE context_id = ?", (context_id,)) if context_id is not None else ("", ())
    rows = tx.rows(f"SELECT outcome, SUM(n) FROM event_counts {where} GROUP BY outcome ORDER BY outcome", params)
    return {str(outcome): int(n) for outcome, n in rows}


def metrics(tx: Tx) -> StoreMetrics:
    n_contexts, impressions = tx.row("SELECT COUNT(*), COALESCE(SUM(impressions_total), 0) FROM contexts") or (0, 0)
    pending = tx.value("SELECT COUNT(*) FROM items WHERE status = ?", (ItemStatus.PENDING.value,))
    outcomes = event_counts(tx, None)
    return StoreMetrics(int(n_contexts), int(impressions), outcomes.get("accepted", 0), int(pending), outcomes)
