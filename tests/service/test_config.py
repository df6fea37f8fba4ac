import copy
import json
import re

import pytest
from pydantic import ValidationError as PydanticValidationError

from clickloop.domains.loader import load_domain
from clickloop.errors import ConfigurationError
from clickloop.service.config import ContextConfig, parse_config


def custom_domain(**changes):
    """An inline domain in the domain-file shape, its prompts taken from the built-in e-commerce files."""
    builtin = load_domain("ecommerce")
    domain = {
        "name": "recipes",
        "personas": [{"name": "Cook", "description": "Likes quick dinners."}],
        "prompts": {name: {"text": builtin.prompt(name).text} for name in builtin.prompts},
    }
    domain.update(changes)
    return domain


def test_defaults_and_json_round_trip():
    config = ContextConfig(topic="  Cookware Sets ")
    assert (config.topic, config.domain, config.pool_size, config.k_shown) == ("Cookware Sets", "ecommerce", 5, 3)
    assert (config.strategy, config.llm, config.require_review, config.impression_ttl_seconds) == (
        "explore-exploit",
        "llamacpp",
        False,
        86400.0,
    )
    schedule = config.model_dump()["schedule"]
    assert schedule == {"every_n_impressions": 1000, "every_minutes": 0.0, "min_impressions_per_item": 100}
    stored = json.loads(json.dumps(config.model_dump(mode="json")))
    assert parse_config(stored) == config


def test_custom_domain_builds_a_domain():
    config = ContextConfig(topic="Soup", domain=custom_domain(banned_words=["best"], max_words=12))
    domain = config.load_domain()
    assert (domain.name, domain.max_words, domain.banned_words) == ("recipes", 12, ("best",))
    assert config.domain_name == "recipes" and "$topic" in domain.prompt("init").text
    assert parse_config(config.model_dump(mode="json")) == config


def _without_judge():
    domain = custom_domain()
    del domain["prompts"]["judge"]
    return domain


def _with_prompt(name, text):
    domain = custom_domain()
    domain["prompts"][name] = text
    return domain


@pytest.mark.parametrize(
    ("changes", "field", "match"),
    [
        ({"k_shown": 6}, "k_shown", r"k_shown \(6\) must not exceed the pool size \(5\); lower k_shown"),
        ({"pool_size": 2, "k_shown": 3}, "k_shown", r"k_shown \(3\) must not exceed the pool size \(2\)"),
        ({"strategy": "greedy"}, "strategy", "unknown strategy 'greedy'; expected one of: no-drop, random-ctr"),
        ({"domain": "recipes"}, "domain", "unknown domain 'recipes'; expected one of: ecommerce, wikipedia"),
        ({"domain": "/etc/passwd"}, "domain", "unknown domain '/etc/passwd'"),
        ({"llm": "gemini"}, "llm", "unknown LLM backend 'gemini'; expected one of: llamacpp"),
        ({"llm": "openai"}, "llm", "needs a model name"),
        ({"strategy_options": {"n_worst": 1}}, "strategy_options.n_worst", r"has no option\(s\) \['n_worst'\]"),
        ({"strategy_options": {"n_drop": "2"}}, "strategy_options.n_drop", r"n_drop \('2'\) must be an integer"),
        (
            {"strategy_options": {"n_drop": 1, "n_explore": -1}},
            "strategy_options.n_explore",
            r"n_explore \(-1\) must be an integer >= 0",
        ),
        (
            {"strategy": "random-ctr", "strategy_options": {"low": "a"}},
            "strategy_options.low",
            "strategy_options for 'random-ctr'",
        ),
        (
            {"strategy_options": {"n_explore": 0, "n_exploit": 0}},
            "strategy_options",
            r"explore-exploit needs n_explore \+ n_exploit >= 1",
        ),
        (
            {"strategy": "guided-ee", "strategy_options": {"shorten": "yes"}},
            "strategy_options.shorten",
            r"guided-ee shorten \('yes'\) must be true or false",
        ),
        (
            {"strategy": "guided-ee", "strategy_options": {"exploit_target": "best"}},
            "strategy_options.exploit_target",
            r"guided-ee exploit_target \('best'\) must be one of thompson, mean",
        ),
        ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
        ({"pool_size": "5"}, "pool_size", "valid integer"),
        ({"require_review": "true"}, "require_review", "valid boolean"),
        ({"pool_size": 0}, "pool_size", "greater than or equal to 1"),
        ({"topic": "   "}, "topic", "must not be blank"),
        ({"impression_ttl_seconds": 0}, "impression_ttl_seconds", "greater than 0"),
        ({"generator_temperature": 3}, "generator_temperature", "less than or equal to 2"),
        ({"schedule": {"every_minutes": -1}}, "schedule.every_minutes", "greater than or equal to 0"),
        ({"schedule": {"every_hour": 1}}, "schedule.every_hour", "Extra inputs"),
        ({"domain": _without_judge()}, "domain.inline.prompts.judge", "Field required"),
        ({"domain": _with_prompt("init", "prompts/init.txt")}, "domain.inline.prompts.init", "dictionary"),
        (
            {"domain": _with_prompt("exploit", {"text": "Write about $topic for $user"})},
            "domain.inline.prompts",
            r"prompt 'exploit' uses unknown slot\(s\) \['\$user'\]",
        ),
        ({"domain": custom_domain(populations={"All": ["Chef"]})}, "domain.inline", "unknown persona 'Chef'"),
    ],
)
def test_invalid_configs_name_the_field(changes, field, match):
    with pytest.raises(PydanticValidationError) as caught:
        ContextConfig.model_validate({"topic": "Cookware Sets", **copy.deepcopy(changes)})
    errors = caught.value.errors()
    assert any(".".join(map(str, e["loc"])) == field for e in errors), errors
    assert any(re.search(match, e["msg"]) for e in errors), errors


def test_strategy_options_valid_only_together_are_accepted():
    config = ContextConfig(topic="x", strategy_options={"n_explore": 0, "n_exploit": 2, "n_drop": 2})
    assert config.make_strategy().n_exploit == 2
    options = {"n_explore": 0, "n_exploit": 0}
    with pytest.raises(PydanticValidationError) as caught:
        ContextConfig(topic="x", strategy="greedy", strategy_options=options)
    assert [e["loc"] for e in caught.value.errors()] == [("strategy",)]  # options of an unknown strategy: unchecked


def test_a_stored_config_that_no_longer_validates_is_a_configuration_error():
    stored = ContextConfig(topic="x").model_dump(mode="json")
    stored["strategy"] = "retired-strategy"
    with pytest.raises(ConfigurationError, match="stored context config is no longer valid: strategy: unknown"):
        parse_config(stored)
