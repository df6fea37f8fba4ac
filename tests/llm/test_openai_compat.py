"""OpenAICompatible against a real OpenAI-shaped HTTP server on loopback."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from clickloop.errors import (
    BadResponseError,
    ConfigurationError,
    ContextTooLongError,
    LLMTimeoutError,
    RateLimitError,
    TransportError,
)
from clickloop.llm.base import ChatRequest, LLMBackend, TokenChoice, user
from clickloop.llm.openai_compat import OpenAICompatible
from clickloop.llm.retrying import Retrying


@dataclass
class Reply:
    """A scripted HTTP answer; ``body`` is sent as JSON unless it is a str."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def chat_body(choices: list[dict[str, Any]], model: str = "m", usage: dict[str, int] | None = None) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object; ``usage`` is left out when None."""
    body: dict[str, Any] = {"id": "cmpl-1", "object": "chat.completion", "created": 0, "model": model}
    body["choices"] = choices
    if usage is not None:
        body["usage"] = usage
    return body


def message_choice(content: str | None, finish_reason: str = "stop", **message: Any) -> dict[str, Any]:
    return {
        "index": 0,
        "message": {"role": "assistant", "content": content, **message},
        "finish_reason": finish_reason,
    }


@dataclass
class FakeServer:
    """State shared with the handler: what was received, what to answer next."""

    url: str = ""
    text: str = "4"
    echo_prefill: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    script: list[Reply] = field(default_factory=list)

    def answer(self, body: dict[str, Any]) -> Reply:
        if self.script:
            return self.script.pop(0)
        last = body["messages"][-1]
        prefill = last["content"] if last["role"] == "assistant" else ""
        content = (prefill if self.echo_prefill else "") + self.text
        choice = message_choice(content)
        if body.get("logprobs"):
            n = body.get("top_logprobs", 0)
            choice["logprobs"] = {
                "content": [
                    {
                        "token": self.text,
                        "logprob": -0.1,
                        "bytes": None,
                        "top_logprobs": [{"token": str(4 - i), "logprob": -0.1 - i, "bytes": None} for i in range(n)],
                    }
                ]
            }
        usage = {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13}
        return Reply(200, chat_body([choice], model=body["model"] + "-served", usage=usage))


def _handler(state: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/v1/chat/completions":
                self._send(Reply(404, {"error": {"message": f"no route {self.path}"}}))
                return
            state.requests.append(body)
            state.headers.append({k.lower(): v for k, v in self.headers.items()})
            self._send(state.answer(body))

        def _send(self, reply: Reply) -> None:
            time.sleep(reply.delay)
            payload = (reply.body if isinstance(reply.body, str) else json.dumps(reply.body)).encode()
            self.send_response(reply.status)
            content_type = "text/plain" if isinstance(reply.body, str) else "application/json"
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that timed out and hung up is expected here


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    state = FakeServer()
    httpd = QuietServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def backend(server: FakeServer) -> Iterator[OpenAICompatible]:
    llm = OpenAICompatible("tiny-model", base_url=server.url, timeout=5.0)
    yield llm
    llm.close()


def _request(**overrides: Any) -> ChatRequest:
    return ChatRequest(messages=user("Rate it.", system="You are a judge."), **overrides)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- configuration -------------------------------------------------------------------------------


def test_backend_id_names_only_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    llm = OpenAICompatible("gpt-4o-mini", base_url="https://llm.example.com/v1")
    assert llm.backend_id == "openai:gpt-4o-mini"
    assert isinstance(llm, LLMBackend)
    assert "sk-secret" not in repr(llm)


def test_construction_and_start_send_nothing() -> None:
    llm = OpenAICompatible("m", base_url=f"http://127.0.0.1:{_free_port()}/v1")
    llm.start()
    llm.start()
    llm.close()
    llm.close()


def test_start_is_idempotent(backend: OpenAICompatible) -> None:
    backend.start()
    client = backend._client
    backend.start()
    assert backend._client is client


def test_base_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert OpenAICompatible("m").endpoint == "https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env.example:8000/v1")
    assert OpenAICompatible("m").endpoint == "http://env.example:8000/v1"
    assert OpenAICompatible("m", base_url="http://arg.example/v1").endpoint == "http://arg.example/v1"


def test_base_url_from_env_is_used(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    assert OpenAICompatible("m").complete(_request()).text == "4"


@pytest.mark.parametrize(
    ("base_url", "api_key_env", "match"),
    [
        (None, "OPENAI_API_KEY", "set OPENAI_API_KEY"),
        ("https://llm.example.com/v1", "OPENAI_API_KEY", "environment variable OPENAI_API_KEY is not set"),
        ("http://10.0.0.5:8000/v1", "MY_LLM_KEY", "set MY_LLM_KEY"),
    ],
)
def test_remote_server_without_key_is_a_configuration_error(base_url: str | None, api_key_env: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        OpenAICompatible("m", base_url=base_url, api_key_env=api_key_env)


@pytest.mark.parametrize("base_url", ["http://localhost:8000/v1", "http://127.0.0.1:11434/v1", "http://[::1]:8080/v1"])
def test_local_server_needs_no_key(base_url: str) -> None:
    OpenAICompatible("m", base_url=base_url)


def test_local_server_gets_dummy_key(backend: OpenAICompatible, server: FakeServer) -> None:
    backend.complete(_request())
    assert server.headers[0]["authorization"] == "Bearer sk-no-key"


def test_key_comes_from_named_env_var(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_LLM_KEY", "sk-mine")
    OpenAICompatible("m", base_url=server.url, api_key_env="MY_LLM_KEY").complete(_request())
    assert server.headers[0]["authorization"] == "Bearer sk-mine"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": ""}, "`model` must be a non-empty"),
        ({"model": "m", "timeout": 0}, r"`timeout` \(0\) must be > 0"),
        ({"model": "m", "max_concurrency": 0}, r"`max_concurrency` \(0\) must be >= 1"),
    ],
)
def test_invalid_options(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        OpenAICompatible(base_url="http://localhost/v1", **kwargs)


def test_missing_openai_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)
    llm = OpenAICompatible("m", base_url="http://localhost/v1")
    with pytest.raises(ConfigurationError, match=r"pip install -e '\.\[openai\]'"):
        llm.start()


# --- request and response mapping ----------------------------------------------------------------


def test_request_body_carries_sampling_parameters(backend: OpenAICompatible, server: FakeServer) -> None:
    backend.complete(_request(temperature=0.3, top_p=0.9, max_tokens=17, seed=42, stop=("\n", "END")))
    sent = server.requests[0]
    assert sent["model"] == "tiny-model"
    assert sent["messages"] == [
        {"role": "system", "content": "You are a judge."},
        {"role": "user", "content": "Rate it."},
    ]
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["seed"]) == (0.3, 0.9, 17, 42)
    assert sent["stop"] == ["\n", "END"]
    assert "logprobs" not in sent and "top_logprobs" not in sent


def test_empty_stop_is_not_sent(backend: OpenAICompatible, server: FakeServer) -> None:
    backend.complete(_request())
    assert "stop" not in server.requests[0]


def test_completion_maps_text_usage_and_model(backend: OpenAICompatible) -> None:
    completion = backend.complete(_request())
    assert completion.text == "4"
    assert completion.finish_reason == "stop"
    assert (completion.prompt_tokens, completion.completion_tokens) == (12, 1)
    assert completion.model == "tiny-model-served"
    assert completion.seconds > 0
    assert completion.tokens == ()
    assert completion.cached is False


def test_missing_usage_counts_zero(backend: OpenAICompatible, server: FakeServer) -> None:
    server.script.append(Reply(200, chat_body([message_choice("hi", finish_reason="length")])))
    completion = backend.complete(_request())
    assert (completion.text, completion.finish_reason) == ("hi", "length")
    assert (completion.prompt_tokens, completion.completion_tokens) == (0, 0)


def test_logprobs_are_requested_and_mapped(backend: OpenAICompatible, server: FakeServer) -> None:
    completion = backend.complete(_request(top_logprobs=3))
    assert server.requests[0]["logprobs"] is True
    assert server.requests[0]["top_logprobs"] == 3
    assert completion.tokens == (TokenChoice("4", -0.1, (("4", -0.1), ("3", -1.1), ("2", -2.1))),)


def test_logprobs_flag_off_sends_none(server: FakeServer) -> None:
    llm = OpenAICompatible("m", base_url=server.url, logprobs=False)
    assert llm.supports_logprobs is False
    completion = llm.complete(_request(top_logprobs=3))
    assert "logprobs" not in server.requests[0]
    assert completion.tokens == ()


def test_prefill_is_sent_as_trailing_assistant_message(backend: OpenAICompatible, server: FakeServer) -> None:
    completion = backend.complete(_request(prefill="Score: "))
    assert server.requests[0]["messages"][-1] == {"role": "assistant", "content": "Score: "}
    assert completion.text == "4"


def test_echoed_prefill_is_stripped(backend: OpenAICompatible, server: FakeServer) -> None:
    server.echo_prefill = True
    assert backend.complete(_request(prefill="Score: ")).text == "4"


def test_extra_body_is_merged(server: FakeServer) -> None:
    llm = OpenAICompatible("m", base_url=server.url, extra_body={"continue_final_message": True})
    llm.complete(_request(prefill="Score: "))
    assert server.requests[0]["continue_final_message"] is True


def test_concurrent_requests_share_one_client(backend: OpenAICompatible, server: FakeServer) -> None:
    with ThreadPoolExecutor(max_workers=backend.max_concurrency) as pool:
        texts = list(pool.map(lambda i: backend.complete(_request(seed=i)).text, range(8)))
    assert texts == ["4"] * 8
    assert sorted(r["seed"] for r in server.requests) == list(range(8))


def test_close_then_complete_starts_again(backend: OpenAICompatible) -> None:
    backend.complete(_request())
    backend.close()
    assert backend.complete(_request()).text == "4"


# --- errors --------------------------------------------------------------------------------------

CONTEXT_400 = {
    "error": {
        "message": "This model's maximum context length is 2048 tokens. However, you requested 4000 tokens.",
        "type": "BadRequestError",
        "code": 400,
    }
}
LLAMACPP_CONTEXT_400 = {
    "error": {
        "code": 400,
        "message": "the request exceeds the available context size, try increasing it",
        "type": "exceed_context_size_error",
    }
}


@pytest.mark.parametrize(
    ("reply", "error", "match"),
    [
        (Reply(500, {"error": {"message": "engine crashed"}}), TransportError, r"HTTP 500\): engine crashed"),
        (Reply(503, "Service Unavailable"), TransportError, "HTTP 503"),
        (Reply(400, CONTEXT_400), ContextTooLongError, "maximum context length is 2048"),
        (Reply(400, LLAMACPP_CONTEXT_400), ContextTooLongError, "context size"),
        (Reply(400, {"error": {"message": "temperature too high"}}), BadResponseError, "temperature too high"),
        (Reply(422, {"error": {"message": "bad field"}}), BadResponseError, r"HTTP 422"),
        (Reply(401, {"error": {"message": "invalid key"}}), ConfigurationError, "OPENAI_API_KEY"),
        (Reply(403, {"error": {"message": "forbidden"}}), ConfigurationError, "OPENAI_API_KEY"),
        (Reply(404, {"error": {"message": "model not found"}}), ConfigurationError, "model 'tiny-model' not found"),
        (Reply(429, {"error": {"message": "slow down"}}), RateLimitError, "HTTP 429"),
    ],
)
def test_http_errors_are_mapped(
    backend: OpenAICompatible, server: FakeServer, reply: Reply, error: type[Exception], match: str
) -> None:
    server.script.append(reply)
    with pytest.raises(error, match=match):
        backend.complete(_request())
    assert len(server.requests) == 1  # the SDK's own retries are off


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [({"retry-after": "7"}, 7.0), ({"retry-after-ms": "250"}, 0.25), ({}, None), ({"retry-after": "soon"}, None)],
)
def test_rate_limit_carries_retry_after(
    backend: OpenAICompatible, server: FakeServer, headers: dict[str, str], retry_after: float | None
) -> None:
    server.script.append(Reply(429, {"error": {"message": "slow down"}}, headers))
    with pytest.raises(RateLimitError) as caught:
        backend.complete(_request())
    assert caught.value.retry_after == retry_after
    assert caught.value.retryable


@pytest.mark.parametrize(
    "body",
    [
        chat_body([]),
        chat_body([message_choice(None, refusal="I cannot rate that")]),
        {"unexpected": "shape"},
        "<html>not an API</html>",
    ],
)
def test_answers_without_content_are_bad_responses(
    backend: OpenAICompatible, server: FakeServer, body: dict[str, Any] | str
) -> None:
    server.script.append(Reply(200, body))
    with pytest.raises(BadResponseError, match="without"):
        backend.complete(_request())


def test_unreachable_server_is_one_clear_transport_error() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    llm = OpenAICompatible("m", base_url=url, timeout=5.0)
    with pytest.raises(TransportError) as caught:
        llm.complete(_request())
    message = str(caught.value)
    assert message.startswith(f"cannot reach the OpenAI-compatible server at {url}: ")
    assert message.endswith("; check that it is running and --base-url / OPENAI_BASE_URL")
    assert "\n" not in message and "Traceback" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert caught.value.retryable


def test_slow_server_is_a_timeout(server: FakeServer) -> None:
    server.script.append(Reply(200, {}, delay=1.0))
    llm = OpenAICompatible("m", base_url=server.url, timeout=0.2)
    with pytest.raises(LLMTimeoutError, match="did not answer within 0.2 s"):
        llm.complete(_request())


# --- with Retrying -------------------------------------------------------------------------------


def test_retrying_recovers_after_one_server_error(backend: OpenAICompatible, server: FakeServer) -> None:
    server.script.append(Reply(500, {"error": {"message": "warming up"}}))
    delays: list[float] = []
    llm = Retrying(backend, sleep=delays.append)
    assert llm.complete(_request()).text == "4"
    assert len(server.requests) == 2
    assert len(delays) == 1


def test_retrying_gives_up_on_bad_request(backend: OpenAICompatible, server: FakeServer) -> None:
    server.script.append(Reply(400, {"error": {"message": "unknown parameter"}}))
    delays: list[float] = []
    with pytest.raises(BadResponseError, match="unknown parameter"):
        Retrying(backend, sleep=delays.append).complete(_request())
    assert len(server.requests) == 1
    assert delays == []
