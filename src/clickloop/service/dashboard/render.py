"""Rendering dashboard pages: Jinja2 templates (``templates/``) with autoescape on, and the security
headers every page carries.

Autoescape is on for every template, so item text (written by an LLM) and every other stored string
is HTML-escaped wherever it is placed; no template uses ``|safe``. Each response also carries a
Content-Security-Policy that runs only the page's own inline script and style (a fresh nonce per
response) and loads nothing from elsewhere, so even a missed escape could not run injected script.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from clickloop.errors import ConfigurationError
from clickloop.service.dashboard.charts import percent

try:
    import jinja2
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigurationError("the dashboard needs jinja2: pip install -e '.[service]'") from exc

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("clickloop.service.dashboard", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(epoch_seconds: float | None) -> str:
    if epoch_seconds is None:
        return "—"
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_env.filters["pct"] = percent
_env.filters["when"] = _when


def _headers(nonce: str) -> dict[str, str]:
    policy = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """``templates/<template>`` filled with ``context`` (plus ``request`` and the CSP ``nonce``)."""
    nonce = secrets.token_urlsafe(16)
    html = _env.get_template(template).render(request=request, nonce=nonce, **context)
    return HTMLResponse(html, status_code=status_code, headers=_headers(nonce))
