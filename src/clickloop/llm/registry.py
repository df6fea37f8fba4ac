"""Backends chosen by id.

=================================  ===========================================================
id                                 backend
=================================  ===========================================================
``llamacpp``                       embedded default: Qwen2.5-Coder-1.5B-Instruct via xllamacpp
``llamacpp:qwen2.5-coder-0.5b``    another embedded model (``clickloop models`` lists them)
``llamacpp:/path/to/any.gguf``     any local GGUF file
``openai:MODEL``                   any OpenAI-compatible server (base URL from ``--base-url`` or
                                   ``OPENAI_BASE_URL``, key from ``OPENAI_API_KEY``)
``scripted``                       canned questions and scores, for tests and docs only
=================================  ===========================================================

Third-party backends register a factory ``fn(rest: str, **options) -> LLMBackend`` in the
``clickloop.backends`` entry-point group; ``myname:rest`` then calls it.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

from clickloop.errors import ConfigurationError, UnknownIdError
from clickloop.llm.base import LLMBackend
from clickloop.llm.cache import Cached, ResponseCache

DEFAULT_BACKEND = "llamacpp"
DEFAULT_LOCAL_MODEL = "qwen2.5-coder-1.5b"
BUILTIN_KINDS = ("llamacpp", "openai", "scripted")


def _plugins() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group="clickloop.backends")}


def check_backend_id(spec: str) -> str:
    """``spec`` if it names a registered backend (nothing is imported or built); else UnknownIdError."""
    if not isinstance(spec, str):
        raise ConfigurationError(f"LLM backend id must be a string, got {type(spec).__name__}")
    kind, _, rest = spec.partition(":")
    if kind == "openai" and not rest:
        raise ConfigurationError("backend 'openai' needs a model name: openai:MODEL, e.g. openai:gpt-4o-mini")
    if kind == "llamacpp":
        _check_local_model(rest)
    if kind in BUILTIN_KINDS or kind in _plugins():
        return spec
    raise UnknownIdError(
        "LLM backend",
        spec,
        [
            "llamacpp",
            "llamacpp:MODEL_ID",
            "llamacpp:/path/to/model.gguf",
            "openai:MODEL",
            "scripted",
            *sorted(_plugins()),
        ],
        "Local models need pip install -e '.[local]'; OpenAI-compatible servers need '.[openai]'.",
    )


def _check_local_model(model: str) -> None:
    """An embedded model id must be registered (a path is checked when the backend starts)."""
    from clickloop.llm.models import MODELS, is_path

    if not model or is_path(model) or model in MODELS:
        return
    raise UnknownIdError(
        "embedded model",
        model,
        [f"llamacpp:{model_id}" for model_id in MODELS],
        "A path to any local GGUF file works too (llamacpp:/path/to/model.gguf); "
        "`clickloop models list` shows which models are installed",
    )


def make_backend(
    spec: str,
    *,
    base_url: str | None = None,
    n_threads: int = 2,
    n_parallel: int = 1,
    cache_root: Path | None = None,
) -> LLMBackend:
    """Build (but do not start) the backend named by ``spec``; local models live in ``cache_root/models``."""
    check_backend_id(spec)
    kind, _, rest = spec.partition(":")
    if kind == "llamacpp":
        from clickloop.llm.llamacpp import LlamaCppBackend

        return LlamaCppBackend(
            model=rest or DEFAULT_LOCAL_MODEL,
            n_threads=n_threads,
            n_parallel=n_parallel,
            cache_dir=cache_root / "models" if cache_root else None,
        )
    if kind == "openai":
        from clickloop.llm.openai_compat import OpenAICompatible

        return OpenAICompatible(model=rest, base_url=base_url)
    if kind == "scripted":
        from clickloop.llm.scripted import canned_backend

        return canned_backend()
    factory = _plugins()[kind].load()  # type: ignore[attr-defined]
    return factory(rest, base_url=base_url)  # type: ignore[no-any-return]


def with_cache(backend: LLMBackend, cache_path: str | Path | None) -> LLMBackend:
    """Wrap in the SQLite response cache unless ``cache_path`` is None."""
    if cache_path is None:
        return backend
    return Cached(backend, ResponseCache(cache_path))
