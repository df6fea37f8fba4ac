"""The session loop of the traffic simulator: suggestions in, a simulated user's click out, repeated.

One session: pick a context uniformly, GET its suggestions (waiting while it has no pool yet), let a
simulated user (:class:`~.users.SimulatedUsers`) decide, and POST the click, if any, with an idempotency
key unique to the run. Sessions run one after another, at ``rate`` per second or as fast as the service
answers. What was served and clicked is tallied per (context, iteration of the pool that served it); with
an admin key the contexts' pool histories are re-read every ``poll_seconds`` for the report.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clickloop.errors import ClickloopError, NotReadyError, require
from clickloop.service.traffic.client import ServiceClient
from clickloop.service.traffic.users import SimulatedUsers


@dataclass(frozen=True)
class TrafficPlan:
    """What to send. The run stops after ``sessions`` sessions or ``duration_s`` seconds, whichever
    comes first (at least one must be set). ``rate``: sessions per second (None: one after another, as
    fast as the service answers). ``ready_timeout_s``: how long to wait for a context's first pool."""

    contexts: tuple[str, ...]
    sessions: int | None = 1000
    duration_s: float | None = None
    rate: float | None = None
    seed: int = 1
    poll_seconds: float = 2.0
    ready_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        require(bool(self.contexts), "contexts must name at least one context (--context ID)")
        require(
            self.sessions is not None or self.duration_s is not None,
            "give a number of sessions (--sessions) or a duration (--duration), or both",
        )
        require(self.sessions is None or self.sessions >= 1, f"sessions ({self.sessions}) must be >= 1")
        for name in ("duration_s", "rate"):
            value = getattr(self, name)
            require(value is None or (math.isfinite(value) and value > 0), f"{name} ({value}) must be a number > 0")
        require(self.poll_seconds > 0, f"poll_seconds ({self.poll_seconds}) must be > 0")


@dataclass(frozen=True)
class Audience:
    """Who visits one context: the ``topic`` the judge scores its items for, and the users."""

    topic: str
    users: SimulatedUsers


@dataclass
class IterationTally:
    """The run's own sessions that pool IP_i of one context served. ``score_sum``/``shown``: the drawn
    personas' scores of the items shown, for their mean; ``items``: item id -> text of the items seen."""

    sessions: int = 0
    clicks: int = 0
    score_sum: float = 0.0
    shown: int = 0
    items: dict[str, str] = field(default_factory=dict)


@dataclass
class ContextTraffic:
    """One context in a run: per-iteration tallies, the largest ``k_shown`` seen, and (admin keys) the
    context as last read from the API."""

    context_id: str
    topic: str
    iterations: dict[int, IterationTally] = field(default_factory=dict)
    k_shown: int = 0
    detail: dict[str, Any] | None = None

    @property
    def sessions(self) -> int:
        return sum(t.sessions for t in self.iterations.values())

    @property
    def clicks(self) -> int:
        return sum(t.clicks for t in self.iterations.values())

    @property
    def iteration(self) -> int | None:
        """The latest iteration that served this run (or that the API reported)."""
        seen = max(self.iterations, default=None)
        live = self.detail.get("iteration") if self.detail else None
        return max((i for i in (seen, live) if i is not None), default=None)


@dataclass
class TrafficRun:
    """A run in progress or done. ``outcomes``: click outcomes as acknowledged by the service;
    ``status``: what the loop is doing now (for a progress bar); ``error``: what stopped it early."""

    plan: TrafficPlan
    run_id: str
    contexts: dict[str, ContextTraffic]
    started_at: float = field(default_factory=time.time)
    elapsed_s: float = 0.0
    sessions: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    waited_s: float = 0.0
    status: str = ""
    error: ClickloopError | None = None

    @property
    def clicks(self) -> int:
        return sum(c.clicks for c in self.contexts.values())


Progress = Callable[[TrafficRun], None]


def run_traffic(
    plan: TrafficPlan,
    client: ServiceClient,
    audiences: Mapping[str, Audience],
    *,
    admin_view: bool = False,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> TrafficRun:
    """Drive the service until the plan is done; the run's tallies. ``audiences``: one per context of the
    plan. ``admin_view``: the key may read contexts (their pool histories are polled for the report).
    Interrupting (Ctrl-C) or an error (the service gone, a judge failing) stops the loop and the tallies
    so far are returned, the error in ``run.error``."""
    missing = [c for c in plan.contexts if c not in audiences]
    require(not missing, f"no audience (topic and users) for contexts {missing}")
    rng = np.random.default_rng(plan.seed)
    run = TrafficRun(plan, secrets.token_hex(4), {c: ContextTraffic(c, audiences[c].topic) for c in plan.contexts})
    start = clock()
    next_poll = start
    try:
        while not _finished(plan, run.sessions, clock() - start):
            if plan.rate:
                sleep(max(0.0, start + run.sessions / plan.rate - clock()))
            context_id = plan.contexts[int(rng.integers(len(plan.contexts)))]
            shown = _suggestions(client, run, context_id, clock, sleep)
            _session(client, run, run.contexts[context_id], audiences[context_id], shown, rng)
            run.elapsed_s = clock() - start
            if admin_view and clock() >= next_poll:
                _poll(client, run)
                next_poll = clock() + plan.poll_seconds
            if progress:
                progress(run)
    except KeyboardInterrupt:
        run.status = "interrupted"
    except ClickloopError as exc:
        run.status, run.error = f"stopped: {exc}", exc
    if admin_view:
        try:
            _poll(client, run)
        except ClickloopError:
            pass  # the last view read stays; the run's own tallies are complete
    run.elapsed_s = clock() - start
    return run


def _finished(plan: TrafficPlan, sessions: int, elapsed: float) -> bool:
    return (plan.sessions is not None and sessions >= plan.sessions) or (
        plan.duration_s is not None and elapsed >= plan.duration_s
    )


def _suggestions(
    client: ServiceClient, run: TrafficRun, context_id: str, clock: Callable[[], float], sleep: Callable[[float], None]
) -> dict[str, Any]:
    """The context's suggestions, waiting (``Retry-After``) while its pool is being made or reviewed."""
    deadline = clock() + run.plan.ready_timeout_s
    while True:
        try:
            return client.suggestions(context_id)
        except NotReadyError as exc:
            if exc.code != "pool_not_ready" or clock() + exc.retry_after > deadline:
                raise
            run.status = f"waiting for the pool of {context_id}"
            pause = min(exc.retry_after, 5.0)
            sleep(pause)
            run.waited_s += pause


def _session(
    client: ServiceClient,
    run: TrafficRun,
    context: ContextTraffic,
    audience: Audience,
    shown: dict[str, Any],
    rng: np.random.Generator,
) -> None:
    items = shown["items"]
    outcome = audience.users.session(audience.topic, [item["text"] for item in items], rng)
    tally = context.iterations.setdefault(int(shown["iteration"]), IterationTally())
    tally.sessions += 1
    tally.score_sum += sum(outcome.scores)
    tally.shown += len(items)
    tally.items.update((item["item_id"], item["text"]) for item in items)
    context.k_shown = max(context.k_shown, len(items))
    run.sessions += 1
    run.status = ""
    if outcome.position is None:
        return
    key = f"traffic-{run.run_id}-{run.sessions}"
    result = client.click(context.context_id, key, shown["impression_id"], items[outcome.position]["item_id"])
    run.outcomes[result] += 1
    if result == "accepted":
        tally.clicks += 1


def _poll(client: ServiceClient, run: TrafficRun) -> None:
    for context in run.contexts.values():
        context.detail = client.context(context.context_id)
