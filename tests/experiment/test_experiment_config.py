"""build_config: each error names its field and that field's value, never the whole configuration."""

from __future__ import annotations

import pytest

from clickloop.errors import ConfigurationError
from clickloop.experiment.config import build_config


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"n_sessions": 0}, "n_sessions: must be >= 1; the paper uses 5000 (got 0)"),
        ({"iterations": -1}, "iterations: must be >= 0; the paper uses 15 (got -1)"),
        ({"pool_size": 0}, "pool_size: must be >= 1; the paper uses 5 (got 0)"),
        ({"temperature": 0}, "temperature: must be > 0; the paper uses 1.5 (got 0)"),
        ({"temperature": float("nan")}, "temperature: must be > 0"),
        ({"k_shown": 0}, "k_shown: must be >= 1; the paper uses 3 (got 0)"),
        ({"k_shown": 6}, "k_shown: must not exceed the pool size (5); lower k_shown or raise pool_size (got 6)"),
        ({"k_shown": 7, "pool_size": 8}, None),
        ({"generator_temperature": 3}, "generator_temperature: must be in [0, 2]; the default is 0.8 (got 3)"),
        ({"max_attempts": 0}, "max_attempts: must be >= 1; the default is 8 (got 0)"),
        ({"llm_parallel": 17}, "llm_parallel: must be in [1, 16]; the default is 1 (got 17)"),
        ({"concurrency": -1}, "concurrency: must be >= 0 (0: what the backend allows) (got -1)"),
        ({"seeds": []}, "seeds: must not be empty (got [])"),
    ],
)
def test_each_error_names_one_field_and_its_value(values, message):
    if message is None:
        assert build_config(values).k_shown == values["k_shown"]
        return
    with pytest.raises(ConfigurationError) as info:
        build_config(values)
    text = str(info.value)
    assert message in text
    assert "config:" not in text and "(got {" not in text
    assert info.value.field == next(iter(values))


def test_several_errors_are_each_reported_and_flags_are_named():
    with pytest.raises(ConfigurationError) as info:
        build_config({"n_sessions": 0, "temperature": -1, "bogus": 1}, field_to_flag={"n_sessions": "--sessions"})
    text = str(info.value)
    assert "n_sessions (--sessions): must be >= 1; the paper uses 5000 (got 0)" in text
    assert "temperature: must be > 0; the paper uses 1.5 (got -1)" in text
    assert "bogus: Extra inputs are not permitted (got 1)" in text


def test_k_shown_is_not_compared_with_an_invalid_pool_size():
    with pytest.raises(ConfigurationError) as info:
        build_config({"pool_size": 0, "k_shown": 3})
    assert "pool_size: must be >= 1" in str(info.value) and "k_shown" not in str(info.value)
