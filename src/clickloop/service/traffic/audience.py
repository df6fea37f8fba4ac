"""Who the simulated users of each context are: its topic, its domain's personas and a relevance judge.

For each context: the domain is ``domain`` if given, else the context's own (read with an admin key;
an inline domain brings its personas), else ``ecommerce``; the topic is ``topic`` if given, else the
context's. The population is a persona list or named population of that domain. Contexts of one
domain share one judge and one :class:`~clickloop.judges.base.ScoreBook`, so an item text is judged
once per persona and topic for the whole run.

The ``llm`` judge uses the same machinery as the offline simulator: a backend by id
(:func:`clickloop.llm.registry.make_backend`, the embedded model by default), retries for servers, and
the response cache in ``CACHE/llm-cache.sqlite``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clickloop.domains.loader import Domain, load_domain
from clickloop.errors import ConfigurationError
from clickloop.judges import make_judge
from clickloop.judges.base import ScoreBook
from clickloop.llm.base import LLMBackend
from clickloop.llm.registry import make_backend, with_cache
from clickloop.service.config import parse_config
from clickloop.service.traffic.driver import Audience
from clickloop.service.traffic.users import SimulatedUsers

DEFAULT_DOMAIN = "ecommerce"


@dataclass
class JudgeSpec:
    """How to judge relevance: ``judge`` id and, for ``llm``, the backend id, ``cache_dir`` (the cache
    root: ``models/`` and ``llm-cache.sqlite``) and whether to use the response cache."""

    judge: str = "llm"
    llm: str = "llamacpp"
    base_url: str | None = None
    judge_mode: str = "auto"
    cache_dir: Path | None = None
    use_cache: bool = True
    backend: LLMBackend | None = field(default=None, repr=False)

    def llm_backend(self) -> LLMBackend:
        """The LLM backend of the ``llm`` judge, built on first use; :meth:`close` frees it."""
        if self.backend is None:
            from clickloop.experiment.config import default_cache_dir

            root = self.cache_dir or default_cache_dir()
            backend = make_backend(self.llm, base_url=self.base_url, cache_root=root)
            if self.llm.startswith("openai"):
                from clickloop.llm.retrying import Retrying

                backend = Retrying(backend)
            self.backend = with_cache(backend, root / "llm-cache.sqlite" if self.use_cache else None)
        return self.backend

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None


def build_audiences(
    details: Mapping[str, dict[str, Any] | None],
    judge: JudgeSpec,
    population: str,
    *,
    domain: str | None = None,
    topic: str | None = None,
    temperature: float = 1.5,
    rejection_score: float = 11.0,
) -> dict[str, Audience]:
    """One :class:`Audience` per context of ``details`` (context id -> its API view, None for a client key)."""
    books: dict[str, ScoreBook] = {}
    audiences = {}
    for context_id, detail in details.items():
        context_domain = _domain(context_id, detail, domain)
        if context_domain.name not in books:
            llm = judge.llm_backend() if judge.judge == "llm" else None
            books[context_domain.name] = ScoreBook(make_judge(judge.judge, context_domain, llm, judge.judge_mode))
        users = SimulatedUsers(
            context_domain.population(population), books[context_domain.name], temperature, rejection_score
        )
        audiences[context_id] = Audience(_topic(context_id, detail, topic), users)
    return audiences


def _domain(context_id: str, detail: dict[str, Any] | None, spec: str | None) -> Domain:
    if spec:
        return load_domain(spec)
    if detail is None:
        return load_domain(DEFAULT_DOMAIN)
    return parse_config(detail["config"]).load_domain()


def _topic(context_id: str, detail: dict[str, Any] | None, topic: str | None) -> str:
    if topic:
        return topic
    if detail is None:
        raise ConfigurationError(
            f"cannot read the topic of context {context_id!r} with a client key; pass --topic, or use an admin key"
        )
    return str(detail["config"]["topic"])
