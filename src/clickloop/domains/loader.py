"""Load a domain (personas, populations, topics, prompt templates) from JSON.

A domain file is JSON with keys ``name``, ``personas`` (list of ``{"name", "description"}``),
``topics`` (list of strings), ``prompts`` (``judge``, ``init``, ``iterate_ctr``, ``iterate_plain``,
``exploit``: each a path relative to the file, or ``{"text": "..."}``; ``guided_explore`` and
``guided_exploit`` too if ``guided-ee`` is to run on it, and ``guided_exploit_list`` for its
``exploit_candidates`` option), and optionally
``populations`` (label -> persona names), ``max_words`` (default 15), ``banned_words``,
``description`` and ``topic_label``. Templates use ``$slot`` placeholders and may start with a
``# version: N`` line.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from clickloop.core.personas import Persona, Population, population_from_names
from clickloop.errors import ConfigurationError, UnknownIdError

BUILTIN_DOMAINS = ("ecommerce", "wikipedia")
PROMPT_NAMES = ("judge", "init", "iterate_ctr", "iterate_plain", "exploit")
# used by ``guided-ee`` only; a domain file without them can run every other strategy
OPTIONAL_PROMPT_NAMES = ("guided_explore", "guided_exploit", "guided_exploit_list")
_VERSION = re.compile(r"^#\s*version:\s*(\S+)\s*\n")


@dataclass(frozen=True)
class PromptTemplate:
    """One prompt. ``name`` is its role (``init``, ``exploit``...), ``version`` is stored on items."""

    name: str
    text: str
    version: str = "1"

    @property
    def slots(self) -> set[str]:
        return {m.group("named") or m.group("braced") for m in string.Template.pattern.finditer(self.text)} - {None}

    def render(self, **values: object) -> str:
        missing = self.slots - set(values)
        if missing:
            raise ConfigurationError(f"prompt {self.name!r} needs values for {sorted(missing)}")
        return string.Template(self.text).substitute({k: str(v) for k, v in values.items()})

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Domain:
    """Everything domain-specific; ``max_words`` and ``banned_words`` are enforced on generated items."""

    name: str
    personas: tuple[Persona, ...]
    topics: tuple[str, ...]
    prompts: dict[str, PromptTemplate]
    populations: dict[str, tuple[str, ...]] = field(default_factory=dict)
    max_words: int = 15
    banned_words: tuple[str, ...] = ()
    description: str = ""
    topic_label: str = "topic"

    def prompt(self, name: str) -> PromptTemplate:
        if name not in self.prompts:
            raise UnknownIdError("prompt", name, sorted(self.prompts))
        return self.prompts[name]

    def population(self, spec: str) -> Population:
        """A population from a comma list of persona names, or a named population of the domain."""
        for label, names in self.populations.items():
            if spec.strip().lower() == label.lower():
                return population_from_names(list(names), self.personas, label)
        names = tuple(s for s in spec.split(",") if s.strip())
        if not names:
            raise ConfigurationError(
                f"population {spec!r} is empty; give persona names separated by commas, e.g. {self.personas[0].name!r}"
            )
        return population_from_names(names, self.personas)

    def persona(self, name: str) -> Persona:
        return population_from_names([name], self.personas).personas[0]


def _read_prompt(name: str, spec: object, base: Path | None, package_dir: str | None) -> PromptTemplate:
    if isinstance(spec, dict) and "text" in spec:
        raw = str(spec["text"])
    elif isinstance(spec, str):
        if package_dir is not None:
            raw = resources.files("clickloop.domains").joinpath(package_dir, spec).read_text(encoding="utf-8")
        else:
            path = (base or Path(".")) / spec
            if not path.is_file():
                raise ConfigurationError(
                    f"prompt {name!r}: file {path} does not exist; fix the path in the domain file"
                )
            raw = path.read_text(encoding="utf-8")
    else:
        raise ConfigurationError(f'prompt {name!r} must be a file path or {{"text": ...}}; got {spec!r}')
    version = "1"
    match = _VERSION.match(raw)
    if match:
        version, raw = match.group(1), raw[match.end() :]
    return PromptTemplate(name, raw.strip() + "\n", version)


def _from_data(data: dict, base: Path | None, package_dir: str | None, source: str) -> Domain:
    for key in ("name", "personas", "topics", "prompts"):
        if key not in data:
            raise ConfigurationError(f"domain file {source} lacks the key {key!r}; see clickloop.domains.loader")
    try:
        personas = tuple(Persona(str(p["name"]), str(p["description"])) for p in data["personas"])
    except (KeyError, TypeError) as exc:
        raise ConfigurationError(f"domain file {source}: every persona needs 'name' and 'description' ({exc})") from exc
    missing = [n for n in PROMPT_NAMES if n not in data["prompts"]]
    if missing:
        raise ConfigurationError(f"domain file {source}: prompts {missing} are missing; expected {list(PROMPT_NAMES)}")
    names = [*PROMPT_NAMES, *(n for n in OPTIONAL_PROMPT_NAMES if n in data["prompts"])]
    prompts = {n: _read_prompt(n, data["prompts"][n], base, package_dir) for n in names}
    domain = Domain(
        name=str(data["name"]),
        personas=personas,
        topics=tuple(str(t) for t in data["topics"]),
        prompts=prompts,
        populations={str(k): tuple(v) for k, v in data.get("populations", {}).items()},
        max_words=int(data.get("max_words", 15)),
        banned_words=tuple(str(w).lower() for w in data.get("banned_words", ())),
        description=str(data.get("description", "")),
        topic_label=str(data.get("topic_label", "topic")),
    )
    for label in domain.populations:
        domain.population(label)  # validates persona names
    return domain


def domain_from_data(data: dict, source: str = "inline domain") -> Domain:
    """A domain from an already parsed domain-file object whose prompts are all inline ``{"text": ...}``
    (the online service's custom domains: no file is ever read)."""
    prompts = data.get("prompts") if isinstance(data, dict) else None
    if isinstance(prompts, dict):
        paths = sorted(name for name, spec in prompts.items() if not isinstance(spec, dict))
        if paths:
            raise ConfigurationError(f'{source}: prompts {paths} must be inline objects {{"text": ...}}, not paths')
    return _from_data(data, None, None, source)


def load_domain(spec: str) -> Domain:
    """A built-in domain by id (``ecommerce``, ``wikipedia``) or a JSON domain file by path."""
    if spec in BUILTIN_DOMAINS:
        text = resources.files("clickloop.domains").joinpath("data", f"{spec}.json").read_text(encoding="utf-8")
        return _from_data(json.loads(text), None, "data", spec)
    path = Path(spec)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise ConfigurationError(f"domain file {spec} does not exist")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"domain file {spec} is not valid JSON: {exc}") from exc
        return _from_data(data, path.parent, None, spec)
    raise UnknownIdError("domain", spec, list(BUILTIN_DOMAINS), "Or give the path of a domain JSON file.")
