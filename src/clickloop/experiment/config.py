"""Experiment configuration: one pydantic model, validated before any LLM call.

Precedence (applied by the CLI): flag > environment > config file > default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from clickloop.errors import ConfigurationError

# fields that change what a finished iteration means: a run folder refuses to resume under other values
RESULT_FIELDS = (
    "domain",
    "pool_size",
    "serving",
    "n_sessions",
    "k_shown",
    "temperature",
    "rejection_score",
    "llm",
    "judge",
    "judge_mode",
    "generator_temperature",
    "max_attempts",
    "strategy_options",
)


def default_cache_dir() -> Path:
    """The cache root (``$CLICKLOOP_CACHE``, else ``~/.cache/clickloop``): ``models/`` and ``llm-cache.sqlite``."""
    from clickloop.llm.models import default_cache_dir as models_dir

    return models_dir().parent


class ExperimentConfig(BaseModel):
    """A grid: domain x topics x populations x strategies x seeds, each cell run for ``iterations``.

    ``populations``: each a comma list of persona names or a named population of the domain.
    ``n_sessions``: S, simulated sessions per iteration (paper: 5000). ``k_shown``: K (paper: 3).
    ``temperature``/``rejection_score``: T and RS of Eq. 1 (paper: 1.5, 11). ``pool_size``: |IP| (5).
    ``serving``: which K items a session is shown, ``uniform`` (the paper) or ``thompson``
    (:mod:`clickloop.simulator.serving`); a strategy with its own ``serving`` field (``fixed-pool``) keeps it.
    ``generator_temperature``: sampling temperature of item generation (the paper does not state it).
    ``judge_mode``: ``auto``/``logprobs``/``parse`` for the LLM judge. ``concurrency``: cells run at once
    (0 = what the backend allows). ``skip_failed_steps``: when the LLM still writes no valid item
    after ``max_attempts``, keep the pool unchanged for that iteration and record the error on it,
    instead of stopping the cell (what a live service does; a small model needs it on long runs).
    ``llm_parallel``: parallel slots of the embedded llama.cpp server (on
    2 cores, 4 slots gave ~1.3x the aggregate tokens/s of one).
    """

    model_config = ConfigDict(extra="forbid")

    domain: str = "ecommerce"
    topics: list[str] = Field(default_factory=lambda: ["Cookware Sets"])
    populations: list[str] = Field(default_factory=lambda: ["Quality"])
    strategies: list[str] = Field(default_factory=lambda: ["full-ctr", "explore-exploit"])
    seeds: list[int] = Field(default_factory=lambda: [1])
    iterations: int = 15
    n_sessions: int = 5000
    k_shown: int = 3
    temperature: float = 1.5
    rejection_score: float = 11.0
    pool_size: int = 5
    serving: str = "uniform"
    llm: str = "llamacpp"
    base_url: str | None = None
    judge: str = "llm"
    judge_mode: str = "auto"
    generator_temperature: float = 0.8
    max_attempts: int = 8
    skip_failed_steps: bool = False
    strategy_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    concurrency: int = 0
    llm_parallel: int = 1
    cache_dir: str | None = None
    no_cache: bool = False

    @field_validator("topics", "populations", "strategies", "seeds")
    @classmethod
    def _non_empty(cls, value: list[Any]) -> list[Any]:
        if not value:
            raise ValueError("must not be empty")
        if len(set(map(str, value))) != len(value):
            raise ValueError(f"has duplicates: {value}")
        return value

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        if self.iterations < 0:
            raise ValueError(f"iterations ({self.iterations}) must be >= 0; the paper uses 15")
        if self.n_sessions < 1:
            raise ValueError(f"n_sessions ({self.n_sessions}) must be >= 1; the paper uses 5000")
        if self.pool_size < 1:
            raise ValueError(f"pool_size ({self.pool_size}) must be >= 1; the paper uses 5")
        if self.temperature <= 0:
            raise ValueError(f"temperature ({self.temperature}) must be > 0; the paper uses 1.5")
        if self.k_shown < 1:
            raise ValueError(f"k_shown ({self.k_shown}) must be >= 1; the paper uses 3")
        if self.k_shown > self.pool_size:
            raise ValueError(
                f"k_shown ({self.k_shown}) must not exceed the pool size ({self.pool_size}); "
                "lower k_shown or grow the pool"
            )
        if not 0 <= self.generator_temperature <= 2:
            raise ValueError(f"generator_temperature ({self.generator_temperature}) must be in [0, 2]")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts ({self.max_attempts}) must be >= 1")
        if not 1 <= self.llm_parallel <= 16:
            raise ValueError(f"llm_parallel ({self.llm_parallel}) must be in [1, 16]")
        if self.concurrency < 0:
            raise ValueError(f"concurrency ({self.concurrency}) must be >= 0")
        return self

    def resolved_cache_dir(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else default_cache_dir()


def build_config(values: dict[str, Any]) -> ExperimentConfig:
    """Validate ``values`` into a config; pydantic's errors become one :class:`ConfigurationError`."""
    from pydantic import ValidationError as PydanticValidationError

    try:
        return ExperimentConfig(**values)
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg'].removeprefix('Value error, ')}"
            f" (got {e.get('input')!r})"
            for e in exc.errors()
        )
        raise ConfigurationError(f"invalid experiment configuration: {problems}") from None
