"""Backend ids: checked up front, before anything is built or started."""

from __future__ import annotations

import pytest

from clickloop.errors import ConfigurationError, UnknownIdError
from clickloop.llm.models import MODELS
from clickloop.llm.registry import check_backend_id, make_backend


@pytest.mark.parametrize(
    "spec",
    [
        "llamacpp",
        *(f"llamacpp:{model_id}" for model_id in MODELS),
        "llamacpp:/models/any.gguf",
        "llamacpp:relative/dir/model.gguf",
        "llamacpp:model.gguf",
        "openai:gpt-4o-mini",
        "scripted",
    ],
)
def test_valid_ids_pass(spec):
    assert check_backend_id(spec) == spec


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        (
            "llamacpp:nosuch",
            UnknownIdError,
            r"unknown embedded model 'nosuch'; expected one of: llamacpp:qwen2\.5-coder-1\.5b, "
            r"llamacpp:qwen2\.5-coder-0\.5b, llamacpp:smollm2-135m\. A path to any local GGUF file works too "
            r"\(llamacpp:/path/to/model\.gguf\)",
        ),
        ("llamacpp:qwen2.5-coder-7b", UnknownIdError, "smollm2-135m"),
        ("gemini", UnknownIdError, "openai:MODEL"),
        ("openai", ConfigurationError, "openai:MODEL"),
    ],
)
def test_invalid_ids_fail_with_the_valid_ones(spec, error, match):
    with pytest.raises(error, match=match):
        check_backend_id(spec)
    with pytest.raises(error, match=match):
        make_backend(spec)
