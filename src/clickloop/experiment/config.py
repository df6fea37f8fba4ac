"""Experiment configuration: one pydantic model, validated before any LLM call.

Precedence (applied by the CLI): flag > environment > config file > default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

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
    pool_size: int = 5  # before k_shown, whose validator compares the two
    k_shown: int = 3
    temperature: float = 1.5
    rejection_score: float = 11.0
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

    # One validator per field, so an error names that field and its value alone; k_shown is checked
    # against pool_size through ``info.data``, which holds the fields declared (and valid) before it.
    @field_validator("iterations")
    @classmethod
    def _iterations(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be >= 0; the paper uses 15")
        return value

    @field_validator("n_sessions")
    @classmethod
    def _n_sessions(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be >= 1; the paper uses 5000")
        return value

    @field_validator("pool_size")
    @classmethod
    def _pool_size(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be >= 1; the paper uses 5")
        return value

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, value: float) -> float:
        if not value > 0:
            raise ValueError("must be > 0; the paper uses 1.5")
        return value

    @field_validator("k_shown")
    @classmethod
    def _k_shown(cls, value: int, info: ValidationInfo) -> int:
        if value < 1:
            raise ValueError("must be >= 1; the paper uses 3")
        pool_size = info.data.get("pool_size")
        if pool_size is not None and value > pool_size:
            raise ValueError(f"must not exceed the pool size ({pool_size}); lower k_shown or raise pool_size")
        return value

    @field_validator("generator_temperature")
    @classmethod
    def _generator_temperature(cls, value: float) -> float:
        if not 0 <= value <= 2:
            raise ValueError("must be in [0, 2]; the default is 0.8")
        return value

    @field_validator("max_attempts")
    @classmethod
    def _max_attempts(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be >= 1; the default is 8")
        return value

    @field_validator("llm_parallel")
    @classmethod
    def _llm_parallel(cls, value: int) -> int:
        if not 1 <= value <= 16:
            raise ValueError("must be in [1, 16]; the default is 1")
        return value

    @field_validator("concurrency")
    @classmethod
    def _concurrency(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be >= 0 (0: what the backend allows)")
        return value

    def resolved_cache_dir(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else default_cache_dir()


def build_config(values: dict[str, Any], field_to_flag: dict[str, str] | None = None) -> ExperimentConfig:
    """Validate ``values`` into a config; pydantic's errors become one :class:`ConfigurationError`, one
    ``field: problem (got value)`` per error. ``field_to_flag`` (the CLI's) adds the flag that sets a field:
    ``n_sessions (--sessions): must be >= 1; the paper uses 5000 (got 0)``."""
    from pydantic import ValidationError as PydanticValidationError

    try:
        return ExperimentConfig(**values)
    except PydanticValidationError as exc:
        flags = field_to_flag or {}
        problems = []
        for error in exc.errors():
            name = ".".join(map(str, error["loc"])) or "config"
            top = str(error["loc"][0]) if error["loc"] else ""
            label = f"{name} ({flags[top]})" if top in flags else name
            problems.append(f"{label}: {error['msg'].removeprefix('Value error, ')} (got {error.get('input')!r})")
        first = str(exc.errors()[0]["loc"][0]) if exc.errors() and exc.errors()[0]["loc"] else None
        raise ConfigurationError(f"invalid experiment configuration: {'; '.join(problems)}", field=first) from None
