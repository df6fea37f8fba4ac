"""The admin dashboard, served by the API's own app under ``/dashboard`` (server-rendered HTML, no
build step, nothing loaded from elsewhere).

==============================  ==================================================================
page                            shows
==============================  ==================================================================
``GET /dashboard``              every context: topic, strategy, iteration, impressions, live pool
                                CTR with its 95% interval, items waiting for review
``GET /dashboard/contexts/ID``  the live pool (CTR, interval, bar), pool CTR per iteration (SVG),
                                the review queue (approve / reject), every item's lineage, and a
                                button that runs an iteration now
``GET|POST /dashboard/login``   paste an admin key; sets the session cookie
``POST /dashboard/logout``      ends the session
==============================  ==================================================================

Sessions, CSRF and escaping: :mod:`~clickloop.service.dashboard.session`,
:mod:`clickloop.service.auth`, :mod:`~clickloop.service.dashboard.render`. The routes are left out of
the OpenAPI spec, which documents the API only.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from clickloop.service.dashboard.pages import router
from clickloop.service.dashboard.render import render
from clickloop.service.dashboard.session import LoginRequired, PageForbidden, login_url

__all__ = ["install", "router"]


async def _login_required(_request: Request, exc: Exception) -> Response:
    if not isinstance(exc, LoginRequired):  # registered for LoginRequired only
        raise exc
    return RedirectResponse(login_url(exc.next_path, exc.message), status_code=303)


async def _forbidden(request: Request, exc: Exception) -> Response:
    return render(request, "error.html", 403, title="Forbidden", message=str(exc))


def install(app: FastAPI) -> None:
    """Mount the dashboard's pages on ``app`` and turn its auth failures into a redirect or a 403 page."""
    app.include_router(router)
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(PageForbidden, _forbidden)
