"""Service configuration, resolved once per process: argument (a CLI flag) > environment > default.

=====================  ====================  ==========================  =================================
setting                argument              environment                 default
=====================  ====================  ==========================  =================================
store URL              ``store_url``         ``CLICKLOOP_DB``            ``sqlite:///clickloop.db`` (in the
                                                                         working folder)
in-process worker      ``run_worker``        ``CLICKLOOP_RUN_WORKER``    on (``0``/``false`` turns it off)
body size limit        ``max_body_bytes``    -                           1 MiB (larger bodies: 413)
API-key cache          ``key_cache_seconds`` ``CLICKLOOP_KEY_CACHE_``    0 (every request looks its key up);
                                             ``SECONDS``                 ``clickloop serve``: 1
=====================  ====================  ==========================  =================================

With a key cache of S seconds, a key revoked by another process keeps working in each serving process
for at most S seconds (:class:`clickloop.service.serving_cache.KeyCache`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from clickloop.errors import ConfigurationError

DEFAULT_STORE_URL = "sqlite:///clickloop.db"
ENV_DB = "CLICKLOOP_DB"
ENV_RUN_WORKER = "CLICKLOOP_RUN_WORKER"
ENV_KEY_CACHE_SECONDS = "CLICKLOOP_KEY_CACHE_SECONDS"
MAX_KEY_CACHE_SECONDS = 60.0
MAX_BODY_BYTES = 1024 * 1024
_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


@dataclass(frozen=True)
class ServiceSettings:
    """The resolved configuration of one service process."""

    store_url: str
    run_worker: bool = True
    max_body_bytes: int = MAX_BODY_BYTES
    key_cache_seconds: float = 0.0


def resolve_settings(
    store_url: str | None = None,
    run_worker: bool | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    env: Mapping[str, str] | None = None,
    key_cache_seconds: float | None = None,
) -> ServiceSettings:
    env = os.environ if env is None else env
    url = store_url or env.get(ENV_DB) or DEFAULT_STORE_URL
    if run_worker is None:
        raw = env.get(ENV_RUN_WORKER, "1").strip().lower()
        if raw not in _BOOLEANS:
            raise ConfigurationError(f"{ENV_RUN_WORKER} ({raw!r}) must be 1 or 0")
        run_worker = _BOOLEANS[raw]
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes < 1024:
        raise ConfigurationError(f"max_body_bytes ({max_body_bytes!r}) must be an integer >= 1024")
    return ServiceSettings(url, run_worker, max_body_bytes, _key_cache_seconds(key_cache_seconds, env))


def _key_cache_seconds(value: float | None, env: Mapping[str, str]) -> float:
    source = "key_cache_seconds"
    if value is None:
        raw = env.get(ENV_KEY_CACHE_SECONDS, "0").strip()
        source = ENV_KEY_CACHE_SECONDS
        try:
            value = float(raw)
        except ValueError:
            raise ConfigurationError(f"{ENV_KEY_CACHE_SECONDS} ({raw!r}) must be a number of seconds") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_KEY_CACHE_SECONDS:
        raise ConfigurationError(
            f"{source} ({value!r}) must be a number of seconds in [0, {MAX_KEY_CACHE_SECONDS:g}]; "
            "it bounds how long a revoked key keeps working"
        )
    return float(value)
