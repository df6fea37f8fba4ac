"""A context's configuration: the body of ``PUT /v1/contexts/{context_id}`` and the JSON ``config`` the
store keeps for it (``model_dump(mode="json")``). Validated here, at the boundary, against the
strategy, domain and LLM backend registries, so a stored config always builds.

Types are strict: ``"5"`` is not a whole number and ``"true"`` is not a boolean.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from clickloop.domains.loader import BUILTIN_DOMAINS, Domain, domain_from_data, load_domain
from clickloop.errors import ConfigurationError, UnknownIdError
from clickloop.llm.registry import check_backend_id
from clickloop.strategies import STRATEGIES, Strategy, make_strategy

# the $slots each prompt is rendered with (strategies/writer.py, judges/llm_judge.py)
PROMPT_SLOTS = {
    "init": ("topic", "n", "max_words"),
    "iterate_ctr": ("topic", "max_words", "history"),
    "iterate_plain": ("topic", "max_words", "questions"),
    "exploit": ("topic", "max_words", "history"),
    "judge": ("topic", "persona_name", "persona_description", "question"),
    "guided_explore": ("topic", "n", "max_words", "questions"),
    "guided_exploit": ("topic", "max_words", "target", "siblings", "ranked"),
    "guided_exploit_list": ("topic", "n", "max_words", "target", "siblings", "ranked"),
}
MAX_TTL_SECONDS = 30 * 86400


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ScheduleConfig(_Strict):
    """When the worker runs an iteration on its own (an explicit request always runs one)."""

    every_n_impressions: int = Field(
        default=1000, ge=0, description="After this many impressions since the last iteration (0 = off)."
    )
    every_minutes: float = Field(
        default=0.0, ge=0, allow_inf_nan=False, description="This long after the last iteration (0 = off)."
    )
    min_impressions_per_item: int = Field(
        default=100,
        ge=0,
        description="Neither trigger fires before every live item has had this many impressions in the current "
        "iteration (with serving thompson: before the live items' mean has, since Thompson sampling starves the "
        "items it is sure are worse).",
    )


class PersonaSpec(_Strict):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(min_length=1, max_length=2000)


class PromptText(_Strict):
    """A prompt template: ``$slot`` placeholders, optionally a first line ``# version: N``."""

    text: str = Field(min_length=1, max_length=20_000)


class PromptSet(_Strict):
    init: PromptText
    iterate_ctr: PromptText
    iterate_plain: PromptText
    exploit: PromptText
    judge: PromptText
    # only the ``guided-ee`` strategy uses these (``guided_exploit_list``: with ``exploit_candidates`` > 1)
    guided_explore: PromptText | None = None
    guided_exploit: PromptText | None = None
    guided_exploit_list: PromptText | None = None

    @model_validator(mode="after")
    def _known_slots(self) -> PromptSet:
        from clickloop.domains.loader import PromptTemplate

        for name, allowed in PROMPT_SLOTS.items():
            if getattr(self, name) is None:
                continue
            unknown = PromptTemplate(name, getattr(self, name).text).slots - set(allowed)
            if unknown:
                raise ValueError(
                    f"prompt {name!r} uses unknown slot(s) {sorted('$' + s for s in unknown)}; "
                    f"it may use {['$' + s for s in allowed]} (write $$ for a literal $)"
                )
        return self


class CustomDomain(_Strict):
    """A domain given inline, in the shape of a domain file (:mod:`clickloop.domains.loader`), with
    every prompt as ``{"text": ...}``. ``personas``, ``populations`` and ``topics`` are optional here
    (real users click); the traffic simulator uses the personas."""

    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=2000)
    topic_label: str = Field(default="topic", max_length=100)
    personas: list[PersonaSpec] = Field(default_factory=list, max_length=100)
    populations: dict[str, list[str]] = Field(default_factory=dict)
    topics: list[str] = Field(default_factory=list, max_length=1000)
    prompts: PromptSet
    max_words: int = Field(default=15, ge=1, le=100)
    banned_words: list[str] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _loads(self) -> CustomDomain:
        self.to_domain()  # personas named in populations, prompts: the loader's own checks
        return self

    def to_domain(self) -> Domain:
        return domain_from_data(self.model_dump(mode="json", exclude_none=True), f"custom domain {self.name!r}")


def _domain_kind(value: object) -> str:
    return "id" if isinstance(value, str) else "inline"


# tagged, so that an error in an inline domain is reported once, at domain.inline.<field>
DomainSpec = Annotated[Annotated[str, Tag("id")] | Annotated[CustomDomain, Tag("inline")], Discriminator(_domain_kind)]


class ContextConfig(_Strict):
    """What items are generated for (``topic`` in ``domain``), how they are served and optimized.

    ``pool_size``: |IP|, items in the initial pool (the paper's 5; strategies keep it, except
    ``no-drop``). ``k_shown``: K, items per suggestion response (the paper's 3).
    ``strategy`` / ``strategy_options``: a name of :data:`clickloop.strategies.STRATEGIES` and its
    fields. ``llm``: backend id (:mod:`clickloop.llm.registry`). ``generator_temperature``: sampling
    temperature of item generation. ``require_review``: new items wait for a person's approval before
    they go live. ``impression_ttl_seconds``: how long clicks on a served impression are accepted.
    ``serving``: which ``k_shown`` live items a suggestion shows: ``uniform`` (the paper's) or
    ``thompson`` (Thompson sampling on each item's Beta posterior of CTR, from its impressions and clicks
    over all iterations, read again at most every ``serving_refresh_seconds``).
    """

    topic: str = Field(min_length=1, max_length=300, description="Product category, article title, ...")
    domain: DomainSpec = Field(
        default="ecommerce", description=f"A built-in domain id ({', '.join(BUILTIN_DOMAINS)}) or an inline domain."
    )
    pool_size: int = Field(default=5, ge=1, le=50)
    k_shown: int = Field(default=3, ge=1, le=50)
    strategy: str = "explore-exploit"
    strategy_options: dict[str, Any] = Field(default_factory=dict)
    llm: str = Field(default="llamacpp", description="LLM backend id: llamacpp[:MODEL], openai:MODEL, ...")
    generator_temperature: float = Field(default=0.8, ge=0, le=2, allow_inf_nan=False)
    schedule: ScheduleConfig = Field(default_factory=lambda: ScheduleConfig())
    require_review: bool = False
    impression_ttl_seconds: float = Field(default=86400.0, gt=0, le=MAX_TTL_SECONDS, allow_inf_nan=False)
    serving: Literal["uniform", "thompson"] = "uniform"
    serving_refresh_seconds: float = Field(default=5.0, ge=0, le=3600, allow_inf_nan=False)

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("topic must not be blank")
        return value.strip()

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | CustomDomain) -> str | CustomDomain:
        if isinstance(value, str) and value not in BUILTIN_DOMAINS:
            raise UnknownIdError("domain", value, BUILTIN_DOMAINS, "Or give an inline domain object with prompts.")
        return value

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, value: str) -> str:
        if value not in STRATEGIES:
            raise UnknownIdError("strategy", value, list(STRATEGIES))
        return value

    @field_validator("llm")
    @classmethod
    def _llm(cls, value: str) -> str:
        return check_backend_id(value)

    # Cross-field checks are field validators of the later field (fields validate in declaration order,
    # ``info.data`` holds the earlier ones that were valid), so that an error names that field, not the
    # whole body.
    @field_validator("k_shown")
    @classmethod
    def _k_shown(cls, value: int, info: ValidationInfo) -> int:
        pool_size = info.data.get("pool_size")
        if pool_size is not None and value > pool_size:
            raise ValueError(
                f"k_shown ({value}) must not exceed the pool size ({pool_size}); lower k_shown or grow the pool"
            )
        return value

    @field_validator("strategy_options")
    @classmethod
    def _strategy_options(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        strategy = info.data.get("strategy")
        if strategy is None:  # itself invalid, and reported
            return value
        try:
            _build_strategy(strategy, value)
            return value
        except ValueError as exc:
            together = str(exc)
        # which options are at fault: those that fail on their own, next to the defaults of the others
        errors: list[InitErrorDetails] = []
        for name, option in value.items():
            try:
                _build_strategy(strategy, {name: option})
            except ValueError as exc:
                error = PydanticCustomError("value_error", "{message}", {"message": str(exc)})
                errors.append({"type": error, "loc": (name,), "input": option})
        if errors:
            raise PydanticValidationError.from_exception_data(cls.__name__, errors)
        raise ValueError(together)  # valid one by one, not together (explore-exploit: n_explore + n_exploit >= 1)

    def make_strategy(self) -> Strategy:
        return _build_strategy(self.strategy, self.strategy_options)

    def load_domain(self) -> Domain:
        return self.domain.to_domain() if isinstance(self.domain, CustomDomain) else load_domain(self.domain)

    @property
    def domain_name(self) -> str:
        return self.domain.name if isinstance(self.domain, CustomDomain) else self.domain


def _build_strategy(strategy: str, options: Mapping[str, Any]) -> Strategy:
    """The strategy; ValueError (a ConfigurationError, or one made from a TypeError) when it cannot be built."""
    try:
        return make_strategy(strategy, **options)
    except TypeError as exc:  # a field compared with a value of the wrong type
        raise ValueError(f"strategy_options for {strategy!r} are invalid: {exc}") from exc


def parse_config(data: Mapping[str, Any]) -> ContextConfig:
    """A stored config, validated again (a registry may have changed since); ConfigurationError if invalid."""
    try:
        return ContextConfig.model_validate(dict(data))
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigurationError(f"the stored context config is no longer valid: {problems}") from None
