"""The LLM response cache (as :class:`clickloop.llm.cache.ResponseCache`) and per-iteration accounting."""

from __future__ import annotations

import json
from dataclasses import replace

from clickloop.errors import require
from clickloop.llm.base import Completion, RoleUsage
from clickloop.service.store.base import LlmUsageRow
from clickloop.service.store.queries import contexts
from clickloop.service.store.tx import Tx

USAGE_FIELDS = ("calls", "cache_hits", "prompt_tokens", "completion_tokens", "seconds")


def cache_get(tx: Tx, key: str) -> Completion | None:
    text = tx.value("SELECT response FROM llm_cache WHERE key = ?", (key,))
    if text is None:
        return None
    return replace(Completion.from_json(json.loads(text)), cached=True, seconds=0.0)


def cache_put(tx: Tx, key: str, backend_id: str, completion: Completion, now: float) -> None:
    # the same JSON as ResponseCache (non-finite logprobs included), so the column is TEXT in both dialects
    payload = json.dumps(replace(completion, cached=False).to_json(), ensure_ascii=False)
    tx.run(
        "INSERT INTO llm_cache (key, backend, response, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (key) "
        "DO UPDATE SET backend = excluded.backend, response = excluded.response, created_at = excluded.created_at",
        (key, backend_id, payload, now),
    )


def add_usage(tx: Tx, context_id: str, iteration: int, role: str, usage: RoleUsage) -> None:
    require(isinstance(iteration, int) and iteration >= 0, f"iteration ({iteration!r}) must be an integer >= 0")
    require(isinstance(role, str) and bool(role), f"role ({role!r}) must be a non-empty string, e.g. 'generator'")
    contexts.check_exists(tx, context_id)
    updates = ", ".join(f"{f} = llm_usage.{f} + excluded.{f}" for f in USAGE_FIELDS)
    tx.run(
        f"INSERT INTO llm_usage (context_id, iteration, role, {', '.join(USAGE_FIELDS)}) "
        f"VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (context_id, iteration, role) DO UPDATE SET {updates}",
        (context_id, iteration, role, *(getattr(usage, f) for f in USAGE_FIELDS)),
    )


def usage(tx: Tx, context_id: str) -> list[LlmUsageRow]:
    contexts.check_exists(tx, context_id)
    rows = tx.rows(
        f"SELECT iteration, role, {', '.join(USAGE_FIELDS)} FROM llm_usage WHERE context_id = ? "
        "ORDER BY iteration, role",
        (context_id,),
    )
    return [
        LlmUsageRow(context_id, int(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]), float(r[6]))
        for r in rows
    ]
