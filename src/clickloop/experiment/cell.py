"""One cell of the grid (population x strategy x topic x seed), run iteration by iteration, resumable.

Iteration i: IP_0 comes from the initialisation prompt; IP_i (i >= 1) from ``strategy.step`` on IP_{i-1}
and its observed CTRs. Each pool is scored (once per item and persona), ``n_sessions`` sessions are
simulated, and ``iter-NNN.json`` is written atomically with the whole state, so a rerun continues
after the last finished iteration with identical random streams.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clickloop.core.items import ItemStats
from clickloop.core.personas import Population
from clickloop.core.pool import Context, ContextState, add_items, advance, observe
from clickloop.errors import BadResponseError, ContextTooLongError, ParseError
from clickloop.experiment.files import read_json, state_from_json, state_to_json, write_json_atomic
from clickloop.judges.base import ScoreBook
from clickloop.llm.base import Accounting
from clickloop.simulator.click_model import ClickModel
from clickloop.simulator.serving import make_serving, simulate_served
from clickloop.strategies import Strategy
from clickloop.strategies.writer import ItemWriter

# errors that concern one cell's content (its LLM output, its history's length): the cell stops, is
# recorded in error.json and the others go on (or, with ``skip_failed_steps``, the step is skipped);
# anything else (server down, bad config, broken model) stops the whole run
CELL_ERRORS = (ParseError, BadResponseError, ContextTooLongError)

# Seed offset per retry of a cell. Rejected answers sit in the response cache under the seeds that
# produced them, and a local model answers the same seed the same way, so a rerun after malformed
# output must ask with other seeds; a cell that never failed keeps retry 0 and its cache keys.
RETRY_SEED_STRIDE = 1_000_000


def slug(text: str) -> str:
    """A readable, file-safe name: lower-case alphanumerics and dashes plus a short hash."""
    base = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    base = "-".join(filter(None, base.split("-")))[:40]
    return f"{base}-{hashlib.sha256(text.encode()).hexdigest()[:6]}"


def _stream(*parts: object) -> list[int]:
    """Seed material for numpy from arbitrary labels (stable across runs and platforms)."""
    return [int(hashlib.sha256(str(p).encode()).hexdigest()[:8], 16) for p in parts]


@dataclass(frozen=True)
class CellSpec:
    population: Population
    strategy: Strategy
    topic: str
    seed: int

    def pool_size(self, default: int) -> int:
        """|IP_0|: the strategy's own ``initial_pool_size`` (``fixed-pool``) or the run's."""
        return int(getattr(self.strategy, "initial_pool_size", default))

    def serving(self, default: str) -> str:
        return str(getattr(self.strategy, "serving", default))

    @property
    def path(self) -> Path:
        return Path(slug(self.population.name)) / self.strategy.name / slug(self.topic) / f"seed-{self.seed}"


@dataclass
class CellDeps:
    """What a cell needs from the outside world."""

    domain_name: str
    writer: ItemWriter
    scores: ScoreBook
    accounting: Accounting
    click_model: ClickModel
    n_sessions: int
    pool_size: int
    run_info: dict[str, Any] = field(default_factory=dict)  # resolved config and versions, stored per file
    skip_failed_steps: bool = False
    serving: str = "uniform"  # the run's serving policy; a strategy's own ``serving`` field wins
    retry: int = 0  # see :func:`retry_number`; recorded on every iteration this run writes


def last_finished(cell_dir: Path) -> tuple[int, dict[str, Any] | None]:
    """The highest i such that iter-000..iter-i all exist and parse; (-1, None) if none."""
    last, data = -1, None
    while True:
        path = cell_dir / f"iter-{last + 1:03d}.json"
        if not path.is_file():
            return last, data
        data, last = read_json(path), last + 1


def retry_number(cell_dir: Path) -> int:
    """How often this cell was rerun after its LLM output stayed malformed (:class:`ParseError`).

    0 for a cell that never failed so. The last finished iteration's ``retry`` carries the number
    on; an ``error.json`` left by a ParseError adds one, so the rerun asks anew (with seeds offset
    by ``retry * RETRY_SEED_STRIDE``) from the failed iteration on. Other cell errors keep the
    number: they are not cached, so the same request is simply asked again.
    """
    _, last = last_finished(cell_dir)
    retry = int(last.get("retry", 0)) if last else 0
    error_path = cell_dir / "error.json"
    if error_path.is_file():
        error = read_json(error_path)
        retry = max(retry, int(error.get("retry", 0)))
        if str(error.get("error", "")).startswith(f"{ParseError.__name__}:"):
            retry += 1
    return retry


def run_cell(
    spec: CellSpec,
    deps: CellDeps,
    cell_dir: Path,
    iterations: int,
    on_iteration: Callable[[], None] = lambda: None,
) -> list[dict[str, Any]]:
    """Run (or resume) one cell up to ``iterations``; returns every iteration record, IP_0 first."""
    done, data = last_finished(cell_dir)
    records = [read_json(cell_dir / f"iter-{i:03d}.json") for i in range(done)] + ([data] if data else [])
    state: ContextState | None = state_from_json(data["state"]) if data else None
    for record in records:
        for row in record["pool"]:
            for persona in spec.population.personas:
                deps.scores.known(row["text"], persona, spec.topic, row["scores"][persona.name])
        on_iteration()
    context = Context(f"{deps.domain_name}:{spec.topic}", deps.domain_name, spec.topic)
    for iteration in range(done + 1, iterations + 1):
        started = time.perf_counter()
        before = deps.accounting.snapshot()
        step_error = ""
        if iteration == 0:
            state = add_items(ContextState(context), deps.writer.initial_pool(context, spec.pool_size(deps.pool_size)))
        else:
            assert state is not None
            rng = np.random.default_rng(
                _stream(spec.seed, spec.population.name, spec.strategy.name, spec.topic, iteration)
            )
            try:
                state = spec.strategy.step(state, deps.writer, rng)
            except CELL_ERRORS as exc:
                if not deps.skip_failed_steps:
                    raise
                state, step_error = advance(state), f"{type(exc).__name__}: {exc}"
        record = evaluate(spec, deps, state, iteration)
        if step_error:
            record["step_error"] = step_error  # the pool was carried over unchanged
        state = observe(state, {r["item_id"]: ItemStats(r["impressions"], r["clicks"]) for r in record["pool"]})
        record["state"] = state_to_json(state)
        record["llm"] = Accounting.delta(deps.accounting.snapshot(), before)
        record["seconds"] = round(time.perf_counter() - started, 3)
        record["run"] = deps.run_info
        record["retry"] = deps.retry
        write_json_atomic(cell_dir / f"iter-{iteration:03d}.json", record)
        records.append(record)
        on_iteration()
    return records


def evaluate(spec: CellSpec, deps: CellDeps, state: ContextState, iteration: int) -> dict[str, Any]:
    """Score the live pool and simulate ``n_sessions`` sessions on it (Section 5), served by the cell's
    policy (Thompson starts from each item's clicks and impressions so far)."""
    personas = spec.population.personas
    items = state.pool_items
    scores = np.array([[deps.scores.score(i.text, p, spec.topic) for i in items] for p in personas])
    # the click noise depends on population, topic, seed and iteration but not on the strategy:
    # common random numbers make strategies comparable on the same pool
    rng = np.random.default_rng(_stream("clicks", spec.seed, spec.population.name, spec.topic, iteration))
    serving = spec.serving(deps.serving)
    prior = [state.history[i].total for i in state.pool]
    result = simulate_served(scores, deps.click_model, deps.n_sessions, rng, make_serving(serving), prior)
    pool = []
    for k, item in enumerate(items):
        row = item.to_json()
        row.update(
            scores={p.name: float(scores[j, k]) for j, p in enumerate(personas)},
            mean_score=float(scores[:, k].mean()),
            impressions=int(result.impressions[k]),
            clicks=int(result.clicks[k]),
            ctr=float(result.item_ctr[k]),
        )
        pool.append(row)
    return {
        "iteration": iteration,
        "population": spec.population.name,
        "strategy": spec.strategy.name,
        "topic": spec.topic,
        "seed": spec.seed,
        "pool": pool,
        "n_sessions": deps.n_sessions,
        "serving": serving,
        "sessions_with_click": result.sessions_with_click,
        "pool_ctr": result.pool_ctr,
        "mean_score": float(scores.mean()),
    }
