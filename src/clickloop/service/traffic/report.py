"""What a traffic run shows: pool CTR per iteration of each context, as JSON, a table and a figure.

``OUT/traffic.json`` (one object)::

    {"url", "run_id", "plan": {...}, "users": {"population", "personas", "temperature", "rejection_score",
     "judge"}, "started_at", "elapsed_s", "sessions", "clicks", "ctr", "click_outcomes": {...},
     "contexts": {ID: {"topic", "k_shown", "admin_view", "live_iteration", "iterations": [
         {"iteration", "sessions", "clicks", "ctr", "ctr_low", "ctr_high",   # this run's sessions
          "mean_shown_score",                    # mean score of the items shown, for the personas drawn
          "pool": [texts],                       # IP_i (from the API; else the items this run saw)
          "mean_score", "expected_ctr",          # of that pool over the population: Eq. 1 in closed form
          "server": {"impressions", "clicks", "item_ctr", "sessions", "ctr"}}]}}}   # admin keys only

CTRs are fractions; ``ctr`` is the paper's pool CTR, sessions with a click / sessions. The API's own
``item_ctr`` is clicks per item shown; ``server.ctr`` turns it into the paper's measure (impressions /
``k_shown`` sessions), which covers every client of the service, not only this run.

The figure (``OUT/traffic.png``) draws, per context, the mean relevance score of the pool and its CTR
per iteration, as the paper's Figures 4 and 5; the shaded band is the 95% Wilson interval of the run's
CTR and the dashed line the CTR Eq. 1 predicts for the pool.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clickloop.errors import ConfigurationError, StorageError
from clickloop.report.stats import wilson_interval
from clickloop.service.traffic.driver import Audience, ContextTraffic, TrafficRun

MAX_PLOTTED_CONTEXTS = 8
_DPI = 130


def summarize(run: TrafficRun, audiences: dict[str, Audience], url: str, judge_id: str) -> dict[str, Any]:
    """The content of ``traffic.json`` (scores each pool for the report: judge calls are cached)."""
    users = next(iter(audiences.values())).users
    plan = run.plan
    return {
        "url": url,
        "run_id": run.run_id,
        "plan": {
            "contexts": list(plan.contexts),
            "sessions": plan.sessions,
            "duration_s": plan.duration_s,
            "rate": plan.rate,
            "seed": plan.seed,
        },
        "users": {
            "population": users.population.name,
            "personas": [p.name for p in users.population.personas],
            "temperature": users.temperature,
            "rejection_score": users.rejection_score,
            "judge": judge_id,
        },
        "status": run.status or "done",
        "started_at": run.started_at,
        "elapsed_s": round(run.elapsed_s, 3),
        "sessions": run.sessions,
        "clicks": run.clicks,
        "ctr": run.clicks / run.sessions if run.sessions else None,
        "click_outcomes": dict(sorted(run.outcomes.items())),
        "waited_s": round(run.waited_s, 3),
        "contexts": {cid: _context(c, audiences[cid]) for cid, c in run.contexts.items()},
    }


def _context(context: ContextTraffic, audience: Audience) -> dict[str, Any]:
    detail = context.detail
    k_shown = int(detail["config"]["k_shown"]) if detail else context.k_shown
    history = {int(p["iteration"]): p for p in detail["history"]} if detail else {}
    rows = []
    for iteration in sorted(set(context.iterations) | set(history)):
        tally = context.iterations.get(iteration)
        pool = history.get(iteration)
        texts = [item["text"] for item in pool["items"]] if pool else list(tally.items.values()) if tally else []
        row: dict[str, Any] = {"iteration": iteration, "sessions": 0, "clicks": 0, "ctr": None}
        if tally and tally.sessions:
            low, high = wilson_interval(tally.clicks, tally.sessions)
            row.update(
                sessions=tally.sessions,
                clicks=tally.clicks,
                ctr=tally.clicks / tally.sessions,
                ctr_low=low,
                ctr_high=high,
                mean_shown_score=tally.score_sum / tally.shown,
            )
        row["pool"] = texts
        if texts:
            row["mean_score"] = float(audience.users.pool_scores(audience.topic, texts).mean())
            row["expected_ctr"] = audience.users.expected_ctr(audience.topic, texts, k_shown)
        if pool:
            stats = pool["stats"]
            sessions = stats["impressions"] / min(k_shown, len(texts)) if texts else 0.0
            row["server"] = {
                "impressions": stats["impressions"],
                "clicks": stats["clicks"],
                "item_ctr": stats["ctr"],
                "sessions": sessions,
                "ctr": stats["clicks"] / sessions if sessions else None,
            }
        rows.append(row)
    return {
        "topic": context.topic,
        "k_shown": k_shown,
        "admin_view": detail is not None,
        "live_iteration": context.iteration,
        "iterations": rows,
    }


def table(summary: dict[str, Any]) -> str:
    """Plain-text rows per context and iteration: sessions, clicks, CTR, expected CTR, mean score."""
    lines = []
    for context_id, context in summary["contexts"].items():
        lines.append(f"{context_id} ({context['topic']}):")
        lines.append(f"  {'iter':>4} {'sessions':>8} {'clicks':>6} {'CTR':>7} {'expected':>8} {'score':>5}  server CTR")
        for row in context["iterations"]:
            server = row.get("server")
            server_ctr = _percent(server.get("ctr")) if server else "-"
            lines.append(
                f"  {row['iteration']:>4} {row['sessions']:>8} {row['clicks']:>6} {_percent(row['ctr']):>7} "
                f"{_percent(row.get('expected_ctr')):>8} {_number(row.get('mean_score')):>5}  {server_ctr}"
            )
    totals = f"{summary['sessions']} sessions, {summary['clicks']} clicks (CTR {_percent(summary['ctr'])})"
    lines.append(f"{totals} in {summary['elapsed_s']:.1f} s")
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def write_json(summary: dict[str, Any], out: Path) -> Path:
    path = out / "traffic.json"
    try:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc}; choose a writable --out folder") from exc
    return path


def plot(summary: dict[str, Any], out: Path) -> Path:
    """``OUT/traffic.png``: a row per context (the first :data:`MAX_PLOTTED_CONTEXTS`), score and CTR panels."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ConfigurationError("the traffic plot needs matplotlib: pip install -e '.[plots]'") from exc
    contexts = list(summary["contexts"].items())[:MAX_PLOTTED_CONTEXTS]
    figure = Figure(figsize=(12, 3.8 * len(contexts)), layout="constrained")
    axes = figure.subplots(len(contexts), 2, squeeze=False)
    for (context_id, context), (score_axes, ctr_axes) in zip(contexts, axes, strict=True):
        rows = context["iterations"]
        _score_panel(score_axes, rows)
        _ctr_panel(ctr_axes, rows)
        score_axes.set_title(f"{context_id}: {context['topic']}", loc="left", fontsize="medium")
    users = summary["users"]
    figure.suptitle(
        f"simulate-traffic: {summary['sessions']} sessions, population {users['population']}, "
        f"judge {users['judge']}, T={users['temperature']:g}, RS={users['rejection_score']:g}",
        fontsize="large",
    )
    path = out / "traffic.png"
    try:
        out.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=_DPI)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc}; choose a writable --out folder") from exc
    return path


def _score_panel(axes: Any, rows: list[dict[str, Any]]) -> None:
    points = [(r["iteration"], r["mean_score"]) for r in rows if r.get("mean_score") is not None]
    if points:
        axes.plot(*zip(*points, strict=True), color="#1f77b4", marker="o", markersize=3.5, label="pool")
    shown = [(r["iteration"], r["mean_shown_score"]) for r in rows if r.get("mean_shown_score") is not None]
    if shown:
        axes.plot(*zip(*shown, strict=True), color="#7f7f7f", linestyle=":", marker=".", label="shown to users")
    axes.set_ylabel("Mean relevance score (1–10)")
    _style(axes)
    if points or shown:
        axes.legend(loc="best", fontsize="small", frameon=False)


def _ctr_panel(axes: Any, rows: list[dict[str, Any]]) -> None:
    observed = [r for r in rows if r.get("ctr") is not None]
    if observed:
        x = [r["iteration"] for r in observed]
        axes.plot(x, [100 * r["ctr"] for r in observed], color="#d62728", marker="o", markersize=3.5, label="observed")
        axes.fill_between(
            x,
            [100 * r["ctr_low"] for r in observed],
            [100 * r["ctr_high"] for r in observed],
            color="#d62728",
            alpha=0.15,
            linewidth=0,
        )
    expected = [(r["iteration"], 100 * r["expected_ctr"]) for r in rows if r.get("expected_ctr") is not None]
    if expected:
        axes.plot(*zip(*expected, strict=True), color="#2ca02c", linestyle="--", label="expected (Eq. 1)")
    server = [(r["iteration"], 100 * r["server"]["ctr"]) for r in rows if r.get("server", {}).get("ctr") is not None]
    if server:
        axes.plot(*zip(*server, strict=True), color="#9467bd", linestyle="none", marker="x", label="service (all)")
    axes.set_ylabel("Pool CTR (%)")
    _style(axes)
    axes.legend(loc="best", fontsize="small", frameon=False)


def _style(axes: Any) -> None:
    axes.set_xlabel("Iteration i of IP_i")
    axes.grid(True, alpha=0.3)
    axes.xaxis.get_major_locator().set_params(integer=True)
    if not axes.lines:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
    for spine in ("top", "right"):
        axes.spines[spine].set_visible(False)
