import pytest

from clickloop.core.items import Item, ItemOrigin, ItemStats, Provenance, item_id_for
from clickloop.core.pool import (
    Context,
    ContextState,
    add_items,
    advance,
    drop_items,
    observe,
    set_ctr_override,
    worst_items,
)
from clickloop.errors import ValidationError

CTX = Context("ecommerce:Cookware Sets", "ecommerce", "Cookware Sets")


def make(text, origin=ItemOrigin.INITIAL, iteration=0):
    return Item.create(CTX.context_id, text, Provenance(origin, iteration, "init", "1"))


def state_with(texts):
    return add_items(ContextState(CTX), [make(t) for t in texts])


def test_item_ids_are_stable_and_ignore_case_and_spacing():
    assert item_id_for("c", "Is it  durable?") == item_id_for("c", "is it durable?")
    assert item_id_for("c", "a?") != item_id_for("d", "a?")


def test_drop_keeps_history_and_marks_iteration():
    state = advance(state_with(["A one?", "B two?", "C three?"]))
    dropped_id = state.pool[1]
    after = drop_items(state, [dropped_id])
    assert dropped_id not in after.pool
    assert after.history[dropped_id].dropped_at == 1
    assert len(after.records) == 3


def test_observe_keeps_latest_and_total():
    state = state_with(["A one?", "B two?"])
    first = state.pool[0]
    state = observe(state, {first: ItemStats(100, 10)})
    state = observe(state, {first: ItemStats(50, 1)})
    record = state.history[first]
    assert record.stats == ItemStats(50, 1)
    assert record.total == ItemStats(150, 11)
    assert record.ctr == pytest.approx(0.02)


def test_ctr_override_is_what_strategies_see():
    state = state_with(["A one?"])
    state = set_ctr_override(observe(state, {state.pool[0]: ItemStats(10, 5)}), {state.pool[0]: 0.01})
    assert state.history[state.pool[0]].ctr == 0.01


def test_worst_items_breaks_ties_by_age():
    state = state_with(["A one?", "B two?", "C three?"])
    ids = list(state.pool)
    state = observe(state, {ids[0]: ItemStats(10, 1), ids[1]: ItemStats(10, 0), ids[2]: ItemStats(10, 0)})
    assert worst_items(state.pool_records, 2) == [ids[1], ids[2]]


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (lambda s: add_items(s, [make("A one?")]), "already in the history"),
        (lambda s: drop_items(s, ["nope"]), "not in the live pool"),
        (lambda s: observe(s, {"nope": ItemStats(1, 0)}), "not in the live pool"),
    ],
)
def test_invalid_pool_operations(action, match):
    with pytest.raises(ValidationError, match=match):
        action(state_with(["A one?"]))


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: ItemStats(5, 6), "clicks"),
        (lambda: ItemStats(-1, 0), "impressions"),
        (lambda: Item("x", "  ", Provenance(ItemOrigin.INITIAL, 0)), "text"),
        (lambda: Provenance(ItemOrigin.INITIAL, -1), "iteration"),
        (lambda: Context("c", "d", " "), "topic"),
    ],
)
def test_value_objects_validate(build, match):
    with pytest.raises(ValidationError, match=match):
        build()


def test_item_json_round_trip():
    item = Item.create(
        "c", "Is it durable?", Provenance(ItemOrigin.EXPLOIT, 3, "exploit", "1", ("p1",), 2, (("best_item", "p1"),))
    )
    assert Item.from_json(item.to_json()) == item
