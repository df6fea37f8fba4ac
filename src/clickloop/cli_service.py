"""The online service's commands of the ``clickloop`` group: ``serve``, ``worker``, ``keys``, ``openapi``.

``--db`` comes from the flag, else ``CLICKLOOP_DB``, else ``sqlite:///clickloop.db`` in the working
folder (:mod:`clickloop.service.settings`). The service needs ``pip install -e '.[service]'``
(and ``'.[postgres]'`` for PostgreSQL).
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
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
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def serve(db: str | None, host: str, port: int, workers: int, no_worker: bool, log_level: str) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json) and run iterations in the background."""
    _require_service_extra()
    import uvicorn

    from clickloop.service.settings import ENV_DB, ENV_RUN_WORKER, resolve_settings

    settings = resolve_settings(db, False if no_worker else None)
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

        app = create_app(settings.store_url, run_worker=settings.run_worker)
        uvicorn.run(app, host=host, port=port, log_level=log_level)
        return
    os.environ[ENV_DB] = settings.store_url  # the worker processes build their app from the environment
    os.environ[ENV_RUN_WORKER] = "1" if settings.run_worker else "0"
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


COMMANDS = (serve, worker, keys, openapi)
