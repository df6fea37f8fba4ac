"""The response cache: what enters the key, the SQLite round trip, and hits marked on the result."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import pytest

from clickloop.llm.base import ChatRequest, Completion, Message, TokenChoice, cache_key, user
from clickloop.llm.cache import Cached, ResponseCache
from clickloop.llm.scripted import ScriptedLLM

REQUEST = ChatRequest(user("Write a question about pans.", system="Be brief."), temperature=0.8, seed=7)


def test_key_is_a_stable_sha256_of_the_request():
    key = cache_key("scripted", REQUEST)
    assert len(key) == 64 and int(key, 16) >= 0
    assert cache_key("scripted", dataclasses.replace(REQUEST)) == key
    rebuilt = ChatRequest(user("Write a question about pans.", system="Be brief."), 0.8, seed=7)
    assert cache_key("scripted", rebuilt) == key


@pytest.mark.parametrize(
    "changed",
    [
        {"temperature": 0.9},
        {"seed": 8},
        {"sample_index": 1},
        {"max_tokens": 65},
        {"top_p": 0.9},
        {"top_logprobs": 5},
        {"prefill": "Score: "},
        {"stop": ("\n",)},
        {"messages": user("Write a question about pots.", system="Be brief.")},
        {"messages": user("Write a question about pans.")},
        {"messages": (*REQUEST.messages, Message("assistant", "blah"), Message("user", "again"))},
    ],
)
def test_key_changes_with_every_part_of_the_request(changed):
    assert cache_key("scripted", dataclasses.replace(REQUEST, **changed)) != cache_key("scripted", REQUEST)


def test_key_changes_with_the_backend_id_but_not_the_accounting_role():
    assert cache_key("openai:a", REQUEST) != cache_key("openai:b", REQUEST)
    assert cache_key("llamacpp:qwen2.5-coder-1.5b", REQUEST) != cache_key("llamacpp:qwen2.5-coder-0.5b", REQUEST)
    assert cache_key("scripted", dataclasses.replace(REQUEST, purpose="judge")) == cache_key("scripted", REQUEST)


def test_endpoint_and_key_stay_out_of_the_cache_key(tmp_path, monkeypatch):
    from clickloop.llm.openai_compat import OpenAICompatible

    cache = ResponseCache(tmp_path / "cache.sqlite")
    cache.put(cache_key("openai:m", REQUEST), "openai:m", Completion(text="New Question: Do pans warp?"))
    monkeypatch.setenv("KEY_A", "secret-a")
    monkeypatch.setenv("KEY_B", "secret-b")
    # unreachable endpoints: only a hit can answer, and the client is never even built
    for base_url, key_env in (("http://10.255.255.1:1/v1", "KEY_A"), ("http://192.0.2.1:2/v1", "KEY_B")):
        backend = OpenAICompatible("m", base_url=base_url, api_key_env=key_env)
        answer = Cached(backend, cache).complete(REQUEST)
        assert answer.text == "New Question: Do pans warp?" and answer.cached
        assert backend._client is None
    stored = sqlite3.connect(tmp_path / "cache.sqlite").execute("SELECT backend, response FROM responses").fetchall()
    assert "secret" not in json.dumps(stored) and "10.255" not in json.dumps(stored)


def test_response_cache_round_trip_in_a_real_sqlite_file(tmp_path):
    path = tmp_path / "sub" / "llm-cache.sqlite"
    completion = Completion(
        text="Score: 7",
        finish_reason="length",
        prompt_tokens=12,
        completion_tokens=3,
        seconds=1.25,
        tokens=(TokenChoice("7", -0.1, (("7", -0.1), ("8", -2.5))),),
        model="m",
    )
    cache = ResponseCache(path)
    assert cache.get("k") is None and len(cache) == 0
    cache.put("k", "scripted", completion)
    assert len(cache) == 1
    reopened = ResponseCache(path)  # another process opening the same file
    hit = reopened.get("k")
    assert hit == dataclasses.replace(completion, cached=True, seconds=0.0)
    rows = sqlite3.connect(path).execute("SELECT key, backend, response FROM responses").fetchall()
    assert [(k, b) for k, b, _ in rows] == [("k", "scripted")]
    stored = json.loads(rows[0][2])  # JSON, never a pickle
    assert stored["text"] == "Score: 7" and stored["cached"] is False and stored["seconds"] == 1.25
    reopened.put("k", "scripted", dataclasses.replace(completion, text="Score: 8"))
    assert cache.get("k").text == "Score: 8" and len(cache) == 1


def test_a_hit_is_marked_on_the_result_and_costs_no_call(tmp_path):
    inner = ScriptedLLM(["New Question: Do pans warp?", "New Question: Are lids included?"])
    llm = Cached(inner, ResponseCache(tmp_path / "cache.sqlite"))
    first = llm.complete(REQUEST)
    assert not first.cached and first.text == "New Question: Do pans warp?"
    again = llm.complete(dataclasses.replace(REQUEST, purpose="judge"))
    assert again.cached and again.seconds == 0.0 and again.text == first.text
    other = llm.complete(dataclasses.replace(REQUEST, sample_index=1))
    assert not other.cached and other.text == "New Question: Are lids included?"
    assert len(inner.requests) == 2
    assert (llm.backend_id, llm.supports_logprobs, llm.max_concurrency) == ("scripted", False, 1)


def test_unwritable_cache_is_a_storage_error(tmp_path):
    from clickloop.errors import StorageError

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StorageError, match="cannot open the LLM cache"):
        ResponseCache(blocker / "cache.sqlite")
