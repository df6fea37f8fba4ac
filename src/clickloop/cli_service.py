"""The online service's commands of the ``clickloop`` group: ``serve``, ``worker``, ``keys``, ``openapi``,
``simulate-traffic``.

``--db`` comes from the flag, else ``CLICKLOOP_DB``, else ``sqlite:///clickloop.db`` in the working
folder (:mod:`clickloop.service.settings`). The service needs ``pip install -e '.[service]'``
(and ``'.[postgres]'`` for PostgreSQL).
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click

from clickloop.errors import ConfigurationError

SERVICE_MODULES = ("fastapi", "uvicorn", "prometheus_client")


def _require_service_extra() -> None:
    import importlib.util

    missing = [name for name in SERVICE_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigurationError(f"the service needs {', '.join(missing)}: pip install -e '.[service]'")


def db_option(fn: Any) -> Any:
    return click.option(
        "--db",
        envvar="CLICKLOOP_DB",
        default=None,
        help="Store URL: sqlite:///file.db or postgresql://user@host/db "
        "(env CLICKLOOP_DB; default sqlite:///clickloop.db in the working folder).",
    )(fn)


def _open(db: str | None) -> Any:
    from clickloop.service.settings import resolve_settings
    from clickloop.service.store import open_store

    return open_store(resolve_settings(db).store_url)


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def admin_key_hint(store: Any, db: str) -> str | None:
    """How to make the first admin key, when there is none yet."""
    from clickloop.service.store import ApiKeyRole

    if any(k.role is ApiKeyRole.ADMIN and k.revoked_at is None for k in store.list_api_keys()):
        return None
    return (
        "No admin key exists yet. Create one (its secret is printed once; keep it):\n"
        f"    clickloop keys create --role admin --label operator --db {shlex.quote(db)}\n"
        "then call the API with the header 'Authorization: Bearer <secret>'."
    )


@click.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port (0: any free).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="HTTP server processes; each also runs an update worker unless --no-worker.",
)
@click.option("--no-worker", is_flag=True, help="Run no iterations in this process (start `clickloop worker`s).")
@click.option(
    "--key-cache-seconds",
    type=click.FloatRange(0, 60),
    envvar="CLICKLOOP_KEY_CACHE_SECONDS",
    default=1.0,
    show_default=True,
    help="Trust a found API key this long without a lookup: a revoked key works at most this long "
    "(env CLICKLOOP_KEY_CACHE_SECONDS; 0: look up every request).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="info logs every request (access log); warning and above do not.",
)
def serve(
    db: str | None, host: str, port: int, workers: int, no_worker: bool, key_cache_seconds: float, log_level: str
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json) and run iterations in the background."""
    _require_service_extra()
    import uvicorn

    from clickloop.service.settings import ENV_DB, ENV_KEY_CACHE_SECONDS, ENV_RUN_WORKER, resolve_settings

    settings = resolve_settings(db, False if no_worker else None, key_cache_seconds=key_cache_seconds)
    store = _open(settings.store_url)  # connect and migrate now, so a bad URL is one line, not a traceback
    try:
        hint = admin_key_hint(store, settings.store_url)
        click.echo(f"clickloop: store {store.url}", err=True)
    finally:
        store.close()
    if hint:
        click.echo(hint, err=True)
    _configure_logging(log_level)
    if workers == 1:
        from clickloop.service.app import create_app

        app = create_app(
            settings.store_url, run_worker=settings.run_worker, key_cache_seconds=settings.key_cache_seconds
        )
        uvicorn.run(app, host=host, port=port, log_level=log_level)
        return
    os.environ[ENV_DB] = settings.store_url  # the worker processes build their app from the environment
    os.environ[ENV_RUN_WORKER] = "1" if settings.run_worker else "0"
    os.environ[ENV_KEY_CACHE_SECONDS] = repr(settings.key_cache_seconds)
    uvicorn.run(
        "clickloop.service.app:app_from_env", factory=True, host=host, port=port, workers=workers, log_level=log_level
    )


@click.command()
@db_option
@click.option("--worker-id", default=None, help="Name in leases and logs (default: host-pid).")
@click.option("--lease-seconds", type=click.FloatRange(min=1), default=60.0, show_default=True)
@click.option("--poll-seconds", type=click.FloatRange(min=0.01), default=1.0, show_default=True)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info")
def worker(db: str | None, worker_id: str | None, lease_seconds: float, poll_seconds: float, log_level: str) -> None:
    """Run iterations of due contexts until SIGINT/SIGTERM (start as many as you like)."""
    from clickloop.service.worker import Worker

    _configure_logging(log_level)
    store = _open(db)
    runner = Worker(store, worker_id=worker_id, lease_seconds=lease_seconds, poll_seconds=poll_seconds)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: runner.stop())
    try:
        runner.run_forever()
    finally:
        store.close()


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (stored as sha256; a secret is shown once)."""


@keys.command("create")
@click.option("--role", type=click.Choice(["admin", "client"]), required=True, help="admin: everything.")
@click.option("--context", "contexts", multiple=True, help="Scope a client key to this context id (repeat).")
@click.option("--label", default="", help="A note for `keys list` (who holds it).")
@db_option
def keys_create(role: str, contexts: tuple[str, ...], label: str, db: str | None) -> None:
    """Make a key; its secret goes to stdout alone (once), the rest to stderr."""
    from clickloop.service.keys import create_key

    store = _open(db)
    try:
        row, secret = create_key(store, role, list(contexts) or None, label)
    finally:
        store.close()
    click.echo(secret)
    scope = f" for {', '.join(row.context_ids)}" if row.context_ids else ""
    click.echo(
        f"created {row.role} key {row.key_id}{scope}; the secret above is not stored and not shown again", err=True
    )


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


@keys.command("list")
@db_option
def keys_list(db: str | None) -> None:
    """Every key: id, role, scope, created, revoked, label (never the secret)."""
    store = _open(db)
    try:
        rows = store.list_api_keys()
    finally:
        store.close()
    click.echo(f"{'KEY_ID':14} {'ROLE':6} {'CONTEXTS':20} {'CREATED (UTC)':19}  {'REVOKED (UTC)':19}  LABEL")
    for row in rows:
        scope = ",".join(row.context_ids) if row.context_ids else "*"
        created, revoked = _when(row.created_at), _when(row.revoked_at)
        click.echo(f"{row.key_id:14} {row.role:6} {scope:20} {created:19}  {revoked:19}  {row.label}")


@keys.command("revoke")
@click.argument("key_id")
@db_option
def keys_revoke(key_id: str, db: str | None) -> None:
    """Revoke KEY_ID at once (requests with it get 401 from then on)."""
    store = _open(db)
    try:
        row = store.revoke_api_key(key_id)
    finally:
        store.close()
    click.echo(f"revoked {row.key_id} at {_when(row.revoked_at)} UTC")


@click.command()
def openapi() -> None:
    """Print the OpenAPI spec of the HTTP API (docs/openapi.json: clickloop openapi > docs/openapi.json)."""
    _require_service_extra()
    from clickloop.service.app import openapi_document

    click.echo(openapi_document(), nl=False)


@click.command("simulate-traffic")
@click.option(
    "--url", envvar="CLICKLOOP_URL", default="http://127.0.0.1:8000", show_default=True, help="The running service."
)
@click.option("--key", envvar="CLICKLOOP_KEY", default=None, help="A client or admin key (env CLICKLOOP_KEY).")
@click.option("--context", "contexts", multiple=True, required=True, help="Context id to visit (repeat for several).")
@click.option("--topic", default=None, help="What the judge scores items for (default: the context's; admin key).")
@click.option(
    "--domain", default=None, help="Personas' domain: ecommerce, wikipedia or a file (default: the context's)."
)
@click.option(
    "--population", default="Quality", show_default=True, help="Comma list of personas or a named population."
)
@click.option(
    "--judge", default="llm", show_default=True, help="llm (with --llm), length-words, length-chars or module:function."
)
@click.option(
    "--llm", envvar="CLICKLOOP_LLM", default="llamacpp", show_default=True, help="Backend id of the llm judge."
)
@click.option("--base-url", envvar="OPENAI_BASE_URL", default=None, help="OpenAI-compatible server URL.")
@click.option("--judge-mode", type=click.Choice(["auto", "logprobs", "parse"]), default="auto", show_default=True)
@click.option("--cache-dir", envvar="CLICKLOOP_CACHE", default=None, help="Models and LLM response cache.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the LLM response cache.")
@click.option(
    "--sessions", type=click.IntRange(min=1), default=None, help="Sessions in all (default 1000 without --duration)."
)
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None, help="Seconds to run.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Sessions per second (default: as fast as answered).",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of persona, context and click draws.")
@click.option("--temperature", type=float, default=1.5, show_default=True, help="T of the click softmax (Eq. 1).")
@click.option("--rejection-score", type=float, default=11.0, show_default=True, help="RS: no-click logit (Eq. 1).")
@click.option(
    "--poll-seconds", type=click.FloatRange(min=0.1), default=2.0, show_default=True, help="Admin view refresh."
)
@click.option("--out", type=click.Path(file_okay=False), default="runs/traffic", show_default=True)
@click.option("--plot/--no-plot", default=True, show_default=True, help="Write OUT/traffic.png (needs matplotlib).")
def simulate_traffic(
    url: str,
    key: str | None,
    contexts: tuple[str, ...],
    topic: str | None,
    domain: str | None,
    population: str,
    judge: str,
    llm: str,
    base_url: str | None,
    judge_mode: str,
    cache_dir: str | None,
    no_cache: bool,
    sessions: int | None,
    duration: float | None,
    rate: float | None,
    seed: int,
    temperature: float,
    rejection_score: float,
    poll_seconds: float,
    out: str,
    plot: bool,
) -> None:
    """Drive a running service with simulated users (the persona click model, Eq. 1) and report pool CTR
    per iteration: OUT/traffic.json and OUT/traffic.png. An admin key also shows the service's own counts."""
    from pathlib import Path

    from clickloop.service.traffic import ServiceClient, TrafficPlan, run_traffic
    from clickloop.service.traffic.audience import JudgeSpec, build_audiences
    from clickloop.service.traffic.report import plot as plot_figure
    from clickloop.service.traffic.report import summarize, table, write_json

    plan = TrafficPlan(
        tuple(dict.fromkeys(contexts)),
        sessions if sessions or duration else 1000,
        duration,
        rate,
        seed,
        poll_seconds,
    )
    judge_spec = JudgeSpec(judge, llm, base_url, judge_mode, Path(cache_dir) if cache_dir else None, not no_cache)
    client = ServiceClient(url, key or "")
    try:
        details = {context_id: client.context(context_id) for context_id in plan.contexts}
        admin_view = all(detail is not None for detail in details.values())
        audiences = build_audiences(
            details,
            judge_spec,
            population,
            domain=domain,
            topic=topic,
            temperature=temperature,
            rejection_score=rejection_score,
        )
        with _traffic_bar(plan) as progress:
            run = run_traffic(plan, client, audiences, admin_view=admin_view, progress=progress)
        summary = summarize(run, audiences, client.url, judge if judge != "llm" else f"llm:{llm}")
    finally:
        client.close()
        judge_spec.close()
    folder = Path(out)
    click.echo(table(summary))
    click.echo(f"\nresults: {write_json(summary, folder)}")
    if plot:
        try:
            click.echo(f"plot:    {plot_figure(summary, folder)}")
        except ConfigurationError as exc:
            click.echo(f"plot skipped: {exc}", err=True)
    if run.error is not None:
        raise run.error  # after the results so far are written


@contextmanager
def _traffic_bar(plan: Any) -> Iterator[Callable[[Any], None]]:
    """A tqdm bar over sessions (or seconds) whose postfix shows each context's iteration and CTR."""
    from tqdm import tqdm

    by_sessions = plan.sessions is not None
    total = plan.sessions if by_sessions else plan.duration_s
    with tqdm(total=total, unit="session" if by_sessions else "s", desc="traffic", disable=None) as bar:

        def update(run: Any) -> None:
            bar.n = run.sessions if by_sessions else min(round(run.elapsed_s, 1), total)
            parts = []
            for context in list(run.contexts.values())[:3]:
                latest = context.iterations.get(context.iteration) if context.iteration is not None else None
                ctr = f"{100 * latest.clicks / latest.sessions:.0f}%" if latest and latest.sessions else "-"
                parts.append(f"{context.context_id} IP_{context.iteration} CTR {ctr}")
            bar.set_postfix_str(run.status or "; ".join(parts), refresh=False)
            bar.refresh()

        yield update


COMMANDS = (serve, worker, keys, openapi, simulate_traffic)
