"""The embedded backend: llama.cpp in-process through the ``xllamacpp`` wheel.

Lifecycle (the port's): the constructor stores configuration only; :meth:`LlamaCppBackend.start`
(idempotent, called lazily by the first ``complete``) prepares the model file (assembly + sha256
check, see :mod:`clickloop.llm.models`) and loads it; :meth:`LlamaCppBackend.close` releases it.

A loaded model costs 3-5 s and ~1.9 GB for the 1.5B, so one ``xllamacpp.Server`` is kept per
process per model file and configuration, reference-counted: two backends for the same model (a
generator and a judge) share it, and it is freed when the last of them closes.

Thread safety: a backend may be used from several threads at once. ``start``/``close`` are
serialised by locks, and the llama.cpp server is itself thread-safe; with ``n_parallel=1``
concurrent requests queue on its single slot, with ``n_parallel=k`` up to k are decoded together.
Note that the xllamacpp server also binds an HTTP listener on a loopback port while loaded.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clickloop.errors import BadResponseError, ConfigurationError, ContextTooLongError, ModelError
from clickloop.llm.base import ChatRequest, Completion, TokenChoice
from clickloop.llm.models import DEFAULT_MODEL, prepare

__all__ = ["LlamaCppBackend"]

_INSTALL_HINT = "pip install -e '.[local]' (or pip install 'xllamacpp==2026.10.11549')"


def _import_xllamacpp() -> Any:
    try:
        import xllamacpp
    except ImportError as exc:
        raise ConfigurationError(
            f"the embedded LLM backend needs the xllamacpp runtime, which is not installed ({exc}); "
            f"install it with: {_INSTALL_HINT}"
        ) from exc
    return xllamacpp


# --- one shared server per (model file, configuration) ------------------------------------------

_ServerKey = tuple[str, int, int, int]


@dataclass
class _Shared:
    server: Any
    users: int


_servers: dict[_ServerKey, _Shared] = {}
_servers_lock = threading.Lock()


def _acquire(key: _ServerKey) -> Any:
    path, n_ctx, n_threads, n_parallel = key
    with _servers_lock:
        shared = _servers.get(key)
        if shared is None:
            xllamacpp = _import_xllamacpp()
            params = xllamacpp.CommonParams()
            params.model.path = path
            # llama.cpp splits n_ctx over the slots; scale it so every request gets the full window
            params.n_ctx = n_ctx * n_parallel
            params.n_parallel = n_parallel
            params.cpuparams.n_threads = n_threads
            params.cpuparams_batch.n_threads = n_threads
            params.verbosity = -1
            try:
                server = xllamacpp.Server(params)
            except Exception as exc:
                raise ModelError(f"llama.cpp could not load the model file {path}: {exc}") from exc
            shared = _servers[key] = _Shared(server, 0)
        shared.users += 1
        return shared.server


def _release(key: _ServerKey) -> None:
    with _servers_lock:
        shared = _servers.get(key)
        if shared is None:
            return
        shared.users -= 1
        if shared.users <= 0:
            # dropping the last reference frees the weights and the KV cache
            del _servers[key]


# --- request and response shapes ---------------------------------------------------------------


def _request_body(request: ChatRequest) -> dict[str, Any]:
    messages: list[dict[str, str]] = [{"role": m.role, "content": m.content} for m in request.messages]
    if request.prefill:
        # a trailing assistant message is continued by llama.cpp, not closed
        messages.append({"role": "assistant", "content": request.prefill})
    body: dict[str, Any] = {
        "messages": messages,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_tokens": request.max_tokens,
        "seed": request.seed,
        "cache_prompt": True,
    }
    if request.stop:
        body["stop"] = list(request.stop)
    if request.top_logprobs > 0:
        body["logprobs"] = True
        body["top_logprobs"] = request.top_logprobs
    return body


def _raise_for_error(response: Any) -> None:
    if not isinstance(response, dict):
        raise BadResponseError(f"llama.cpp returned {type(response).__name__}, expected a dict")
    error = response.get("error")
    if error is None:
        return
    if isinstance(error, dict):
        kind = str(error.get("type", ""))
        message = str(error.get("message", error))
    else:
        kind, message = "", str(error)
    if kind == "exceed_context_size_error" or "context size" in message or "context length" in message:
        raise ContextTooLongError(f"{message}; shorten the prompt or raise `n_ctx` of the llamacpp backend")
    raise BadResponseError(f"llama.cpp answered with an error ({kind or 'unknown'}): {message}")


def _token_choices(logprobs: Any) -> tuple[TokenChoice, ...]:
    if not logprobs:
        return ()
    return tuple(
        TokenChoice(
            token=str(entry["token"]),
            logprob=float(entry["logprob"]),
            top=tuple((str(alt["token"]), float(alt["logprob"])) for alt in entry.get("top_logprobs", ())),
        )
        for entry in logprobs.get("content") or ()
    )


def _completion(response: dict[str, Any], request: ChatRequest, model: str, seconds: float) -> Completion:
    try:
        choice = response["choices"][0]
        text = choice["message"].get("content") or ""
        usage = response.get("usage") or {}
        tokens = _token_choices(choice.get("logprobs"))
        finish_reason = str(choice.get("finish_reason") or "stop")
        prompt_tokens = int(usage.get("prompt_tokens", 0))
        completion_tokens = int(usage.get("completion_tokens", 0))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise BadResponseError(f"llama.cpp response lacks the expected fields ({exc!r}): {response!r:.500}") from exc
    if request.prefill and text.startswith(request.prefill):
        text = text[len(request.prefill) :]
    return Completion(
        text=text,
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        seconds=seconds,
        tokens=tokens,
        model=model,
    )


class LlamaCppBackend:
    """A local GGUF model run by llama.cpp; implements :class:`clickloop.llm.base.LLMBackend`.

    ``model``: a registered id (``clickloop models list``) or a path to a ``.gguf`` file.
    ``n_ctx``: context window per request, in tokens (prompt + answer).
    ``n_threads``: CPU threads for prompt processing and generation.
    ``n_parallel``: server slots decoded together; also ``max_concurrency``. Each slot gets its own
    ``n_ctx`` of KV cache.
    ``cache_dir``: where split models are assembled (default ``models.default_cache_dir()``).
    """

    supports_logprobs = True

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        n_ctx: int = 4096,
        n_threads: int = 2,
        n_parallel: int = 1,
        cache_dir: str | Path | None = None,
    ) -> None:
        for name, value in (("n_ctx", n_ctx), ("n_threads", n_threads), ("n_parallel", n_parallel)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"`{name}` must be an int, got {type(value).__name__}")
            if value < 1:
                raise ConfigurationError(f"`{name}` ({value}) must be >= 1")
        if not isinstance(model, str) or not model:
            raise ConfigurationError(f"`model` must be a model id or a .gguf path, got {model!r}")
        self.model = model
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.n_parallel = n_parallel
        self.cache_dir = cache_dir
        self.backend_id = f"llamacpp:{model}"
        self.max_concurrency = n_parallel
        self._key: _ServerKey | None = None
        self._server: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"LlamaCppBackend(model={self.model!r}, n_ctx={self.n_ctx}, n_threads={self.n_threads}, "
            f"n_parallel={self.n_parallel})"
        )

    @property
    def started(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Prepare (assemble + hash check) and load the model; a no-op once started."""
        with self._lock:
            if self._server is not None:
                return
            _import_xllamacpp()  # fail on the missing runtime before a 1 GB assembly
            path = prepare(self.model, self.cache_dir)
            key = (str(path.resolve()), self.n_ctx, self.n_threads, self.n_parallel)
            self._server = _acquire(key)
            self._key = key

    def close(self) -> None:
        """Release this backend's hold on the shared server; it is freed when no backend holds it."""
        with self._lock:
            if self._key is not None:
                _release(self._key)
            self._server = None
            self._key = None

    def __enter__(self) -> LlamaCppBackend:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def complete(self, request: ChatRequest) -> Completion:
        """One chat completion. ``text`` excludes ``request.prefill``; ``seconds`` is wall time."""
        server = self._server
        if server is None:
            self.start()
            server = self._server
        body = _request_body(request)
        started = time.perf_counter()
        try:
            response = server.handle_chat_completions(body)
        except (ValueError, RuntimeError, TypeError) as exc:
            raise BadResponseError(f"llama.cpp rejected the request: {exc}") from exc
        seconds = time.perf_counter() - started
        _raise_for_error(response)
        return _completion(response, request, self.model, seconds)
