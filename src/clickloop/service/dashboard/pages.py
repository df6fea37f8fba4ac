"""The dashboard's routes: the login form, the contexts list and one context's page.

Pages only read (through :mod:`clickloop.service.views`, as the API does). Their buttons call the
admin API itself (``POST /v1/contexts/{id}/review`` and ``/iterations``) from the page's script, with
the session cookie and the ``X-Requested-With`` header :mod:`clickloop.service.auth` asks for.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from clickloop.errors import NotFoundError
from clickloop.service import schemas, views
from clickloop.service.auth import CSRF_HEADER, CSRF_VALUE
from clickloop.service.dashboard import charts
from clickloop.service.dashboard.render import render
from clickloop.service.dashboard.session import (
    HOME,
    check_login,
    end_session,
    login_url,
    page_admin,
    safe_next,
    same_origin,
    start_session,
)
from clickloop.service.deps import get_store
from clickloop.service.store import ContextRow, ItemStatus, Store

router = APIRouter(prefix="/dashboard", include_in_schema=False)
MAX_FORM_FIELDS = 10


@dataclass(frozen=True)
class ContextLine:
    """One line of the contexts list. ``pool``: the live pool's summed stats (None before IP_0)."""

    summary: schemas.ContextSummary
    strategy: str
    pool: schemas.Stats | None
    pending: int


@dataclass(frozen=True)
class PoolLine:
    """One live item: its stats in this iteration, its interval bar, its lineage."""

    item: schemas.PoolItem
    bar: charts.Bar
    lineage: schemas.Lineage


def _context_line(store: Store, row: ContextRow) -> ContextLine:
    # two reads per context: fine for an admin page of hundreds; a store query would serve thousands
    live = views.pool(store.live_pool(row.context_id)).stats if row.iteration is not None else None
    pending = len(store.list_items(row.context_id, ItemStatus.PENDING))
    return ContextLine(views.summary(row), str(row.config.get("strategy", "")), live, pending)


@router.get("", response_class=HTMLResponse, dependencies=[Depends(page_admin)])
def contexts_page(request: Request, store: Store = Depends(get_store)) -> Response:
    lines = [_context_line(store, row) for row in store.list_contexts()]
    return render(request, "contexts.html", lines=lines)


@router.get("/contexts/{context_id}", response_class=HTMLResponse, dependencies=[Depends(page_admin)])
def context_page(request: Request, context_id: str, store: Store = Depends(get_store)) -> Response:
    try:
        detail = views.detail(store, context_id)
    except NotFoundError as exc:
        return render(request, "error.html", 404, title="Not found", message=str(exc))
    by_id = {item.item_id: item for item in detail.items}
    live = detail.pool.items if detail.pool else []
    scale = charts.scale_for([entry.iteration for entry in live])
    lines = [PoolLine(entry, charts.bar(entry.iteration, scale), by_id[entry.item_id].lineage) for entry in live]
    pending = [item for item in detail.items if item.status == ItemStatus.PENDING.value]
    api = {
        "context": request.url_for("get_context", context_id=context_id).path,
        "review": request.url_for("review", context_id=context_id).path,
        "iterations": request.url_for("request_iteration", context_id=context_id).path,
    }
    return render(
        request,
        "context.html",
        detail=detail,
        lines=lines,
        scale=scale,
        chart=charts.ctr_chart(detail.history),
        pending=pending,
        lineage=sorted(detail.items, key=lambda item: (item.lineage.iteration_created, item.created_at)),
        by_id=by_id,
        api=api,
        csrf_header=CSRF_HEADER,
        csrf_value=CSRF_VALUE,
    )


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next_path: str = Query(HOME, alias="next"), message: str = "") -> Response:
    return render(request, "login.html", next_path=safe_next(next_path), message=message, error="")


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, store: Store = Depends(get_store)) -> Response:
    """Check the pasted key; an admin key gets the session cookie and a redirect to ``next``."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=MAX_FORM_FIELDS)
    secret, next_path = form.get("key", [""])[0], safe_next(form.get("next", [HOME])[0])
    if not same_origin(request):
        return render(request, "login.html", 403, next_path=next_path, message="", error="Cross-site login refused.")
    status, error = check_login(store, secret)
    if status != 200:
        return render(request, "login.html", status, next_path=next_path, message="", error=error)
    response = RedirectResponse(next_path, status_code=303)
    start_session(response, request, secret)
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    if not same_origin(request):
        return render(request, "error.html", 403, title="Forbidden", message="Cross-site logout refused.")
    response = RedirectResponse(login_url(message="Logged out."), status_code=303)
    end_session(response, request)
    return response
