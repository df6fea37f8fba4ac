"""Admin routes: create, update and read contexts, trigger iterations, review new items.

The routes that take a body read it themselves (:mod:`clickloop.service.bodies`), after the router's
admin-key dependency, so a request without a valid admin key is refused (401/403) whatever its body.
Their store work then runs in the thread pool, as FastAPI runs a sync route.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from clickloop.errors import ConflictError
from clickloop.service import bodies, views
from clickloop.service.auth import require_admin
from clickloop.service.config import ContextConfig
from clickloop.service.deps import get_store
from clickloop.service.schemas import (
    ContextDetail,
    ContextSummary,
    IterationRequested,
    ReviewDecision,
    ReviewQueue,
    error_responses,
)
from clickloop.service.store import ItemStatus, Store
from clickloop.service.store.base import SLUG

router = APIRouter(
    prefix="/v1", tags=["contexts"], dependencies=[Depends(require_admin)], responses=error_responses(401, 403, 422)
)


@router.put(
    "/contexts/{context_id}",
    response_model=ContextDetail,
    responses={201: {"model": ContextDetail, "description": "Created."}, **error_responses(400, 413, 422)},
    openapi_extra=bodies.request_body(ContextConfig),
)
async def put_context(
    request: Request,
    response: Response,
    context_id: str = Path(pattern=f"^{SLUG.pattern}$", description="Letters, digits, '.', '_', '-'; 1-100."),
    store: Store = Depends(get_store),
) -> ContextDetail:
    """Create the context (201) or replace its configuration (200). Its pool and history are kept."""
    config = await bodies.read_body(request, ContextConfig)
    created, detail = await run_in_threadpool(_put, store, context_id, config.model_dump(mode="json"))
    if created:
        response.status_code = 201
    return detail


def _put(store: Store, context_id: str, data: dict[str, object]) -> tuple[bool, ContextDetail]:
    try:
        store.create_context(context_id, data)
        created = True
    except ConflictError:
        store.update_context(context_id, data)
        created = False
    return created, views.detail(store, context_id)


@router.get("/contexts", response_model=list[ContextSummary])
def list_contexts(store: Store = Depends(get_store)) -> list[ContextSummary]:
    return [views.summary(row) for row in store.list_contexts()]


@router.get("/contexts/{context_id}", response_model=ContextDetail, responses=error_responses(404))
def get_context(context_id: str, store: Store = Depends(get_store)) -> ContextDetail:
    """The live pool with per-item impressions, clicks, CTR and 95% Wilson intervals (this iteration
    and in total), every earlier pool, and every item's lineage."""
    return views.detail(store, context_id)


@router.post(
    "/contexts/{context_id}/iterations",
    status_code=202,
    response_model=IterationRequested,
    responses=error_responses(404, 409),
)
def request_iteration(context_id: str, store: Store = Depends(get_store)) -> IterationRequested:
    """Make the context due now; a worker runs the iteration soon (watch ``iteration`` grow)."""
    pending = store.list_items(context_id, ItemStatus.PENDING)
    if pending:
        raise ConflictError(
            f"{len(pending)} item(s) of {context_id!r} wait for review; approve or reject them first "
            f"(GET /v1/contexts/{context_id}/review)"
        )
    store.request_iteration(context_id)
    row = store.get_context(context_id)
    return IterationRequested(
        context_id=context_id, iteration=row.iteration, iteration_requested_at=row.iteration_requested_at
    )


@router.get("/contexts/{context_id}/review", response_model=ReviewQueue, responses=error_responses(404))
def review_queue(context_id: str, store: Store = Depends(get_store)) -> ReviewQueue:
    """Items generated under ``require_review`` that wait for a decision."""
    return views.review_queue(store, context_id)


@router.post(
    "/contexts/{context_id}/review",
    response_model=ReviewQueue,
    responses=error_responses(400, 404, 413, 422),
    openapi_extra=bodies.request_body(ReviewDecision),
)
async def review(context_id: str, request: Request, store: Store = Depends(get_store)) -> ReviewQueue:
    """Approve (live at once, added to the current pool) or reject (never shown) pending items, all or none."""
    decision = await bodies.read_body(request, ReviewDecision)
    return await run_in_threadpool(_review, store, context_id, decision)


def _review(store: Store, context_id: str, decision: ReviewDecision) -> ReviewQueue:
    if decision.decision == "approve":
        store.approve_items(context_id, decision.item_ids)
    else:
        store.reject_items(context_id, decision.item_ids)
    return views.review_queue(store, context_id)
