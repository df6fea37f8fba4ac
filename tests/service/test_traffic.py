"""The traffic simulator in process: its users (Eq. 1), its HTTP client's retries, and its session loop
against the ASGI app, reconciled with the store."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from clickloop.core.personas import Persona, Population
from clickloop.errors import AuthenticationError, ConfigurationError, NotFoundError, ValidationError
from clickloop.judges import LengthWordsJudge
from clickloop.judges.base import ScoreBook
from clickloop.service.traffic import Audience, ServiceClient, SimulatedUsers, TrafficPlan, run_traffic
from clickloop.service.traffic import client as client_module
from clickloop.service.traffic.audience import JudgeSpec, build_audiences
from clickloop.service.traffic.report import plot, summarize, table, write_json
from clickloop.simulator.click_model import ClickModel, theoretical_ctr

QUALITY = Population("Quality", (Persona("Quality", "Cares about build quality."),))
TWO = Population("two", (Persona("A", "First."), Persona("B", "Second.")))


class TableJudge:
    """Scores from a table (text -> score), counting calls."""

    judge_id = "table"

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores
        self.calls: list[tuple[str, str, str]] = []

    def score(self, question: str, persona: Persona, topic: str) -> float:
        self.calls.append((question, persona.name, topic))
        return self.scores[question]


def users(scores: dict[str, float], population: Population = QUALITY) -> SimulatedUsers:
    return SimulatedUsers(population, ScoreBook(TableJudge(scores)))


def test_users_click_as_often_as_eq1_predicts():
    crowd = users({"a": 8.0, "b": 8.0, "c": 8.0})
    rng = np.random.default_rng(3)
    outcomes = [crowd.session("t", ["a", "b", "c"], rng) for _ in range(6000)]
    ctr = sum(o.position is not None for o in outcomes) / len(outcomes)
    assert ctr == pytest.approx(theoretical_ctr(8.0, ClickModel(1.5, 11.0, 3)), abs=0.03)
    positions = np.bincount([o.position for o in outcomes if o.position is not None], minlength=3)
    assert positions.min() > 0.8 * positions.mean()  # equal scores: no position is favoured


def test_higher_scores_draw_more_clicks_in_eq1_ratio():
    crowd = users({"low": 2.0, "high": 9.0, "mid": 5.0})
    rng = np.random.default_rng(5)
    positions = [crowd.session("t", ["low", "high", "mid"], rng).position for _ in range(8000)]
    counts = {p: positions.count(p) for p in (0, 1, 2)}
    assert counts[1] / counts[2] == pytest.approx(np.exp((9 - 5) / 1.5), rel=0.25)
    assert counts[1] > counts[2] > counts[0]


def test_each_text_is_judged_once_per_persona_and_topic():
    judge = TableJudge({"a": 5.0, "b": 6.0, "c": 7.0})
    crowd = SimulatedUsers(TWO, ScoreBook(judge))
    rng = np.random.default_rng(1)
    for _ in range(300):
        crowd.session("t", ["a", "b", "c"], rng)
        crowd.session("u", ["a", "b", "c"], rng)
    assert sorted(judge.calls) == sorted({(q, p, t) for q in "abc" for p in "AB" for t in "tu"})
    weights = np.exp(np.array([5.0, 6.0, 7.0]) / 1.5)  # both personas score alike: Eq. 1 on the one subset
    expected = weights.sum() / (weights.sum() + np.exp(11 / 1.5))
    assert crowd.expected_ctr("t", ["a", "b", "c"], 3) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"contexts": ()}, "at least one context"),
        ({"contexts": ("a",), "sessions": None}, "--sessions"),
        ({"contexts": ("a",), "sessions": 0}, r"sessions \(0\) must be >= 1"),
        ({"contexts": ("a",), "rate": -1.0}, r"rate \(-1.0\) must be a number > 0"),
        ({"contexts": ("a",), "duration_s": float("inf")}, "duration_s"),
    ],
)
def test_invalid_plans_are_refused(kwargs, match):
    with pytest.raises(ValidationError, match=match):
        TrafficPlan(**kwargs)


# -- the HTTP client ---------------------------------------------------------------------------------


def mock_client(handler) -> ServiceClient:
    return ServiceClient(
        "http://svc", "clk_x", http=httpx.Client(base_url="http://svc", transport=httpx.MockTransport(handler))
    )


def test_a_click_whose_answer_was_lost_is_retried_with_its_key_and_counted_once(monkeypatch):
    monkeypatch.setattr(client_module, "BACKOFF_SECONDS", 0.0)
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content)["events"][0]["idempotency_key"])
        if len(seen) == 1:
            raise httpx.ReadError("connection reset after the server stored it")
        body = {"results": [{"idempotency_key": seen[-1], "outcome": "duplicate"}]}
        return httpx.Response(200, json={**body, "accepted": 0, "duplicate": 1, "rejected": 0})

    assert mock_client(handler).click("shop", "k1", "i" * 22, "item") == "accepted"
    assert seen == ["k1", "k1"]


@pytest.mark.parametrize(
    ("status", "error"), [(401, AuthenticationError), (404, NotFoundError), (422, ValidationError)]
)
def test_client_errors_name_the_problem(status, error):
    client = mock_client(lambda request: httpx.Response(status, json={"error": {"type": "x", "message": "nope"}}))
    with pytest.raises(error, match=f"shop: HTTP {status}: nope"):
        client.suggestions("shop")


def test_the_loop_waits_while_the_pool_is_not_ready():
    answers = iter([503, 503, 200])
    shown = {"impression_id": "i" * 22, "iteration": 0, "items": [{"item_id": "x", "text": "a"}]}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={"results": [{"idempotency_key": "k", "outcome": "accepted"}]})
        status = next(answers)
        if status == 503:
            error = {"error": {"type": "pool_not_ready", "message": "no pool yet"}}
            return httpx.Response(503, json=error, headers={"Retry-After": "2"})
        return httpx.Response(200, json=shown)

    slept = []
    run = run_traffic(
        TrafficPlan(("shop",), sessions=1),
        mock_client(handler),
        {"shop": Audience("t", users({"a": 10.0}))},
        sleep=slept.append,
    )
    assert run.sessions == 1 and slept == [2.0, 2.0] and run.waited_s == 4.0


def test_a_run_that_loses_the_service_keeps_what_it_counted(monkeypatch):
    monkeypatch.setattr(client_module, "BACKOFF_SECONDS", 0.0)
    shown = {"impression_id": "i" * 22, "iteration": 0, "items": [{"item_id": "x", "text": "a"}]}
    served = []

    def handler(request: httpx.Request) -> httpx.Response:
        if len(served) == 3:
            raise httpx.ConnectError("connection refused")
        if request.method == "POST":
            return httpx.Response(200, json={"results": [{"idempotency_key": "k", "outcome": "accepted"}]})
        served.append(1)
        return httpx.Response(200, json=shown)

    run = run_traffic(
        TrafficPlan(("shop",), sessions=10), mock_client(handler), {"shop": Audience("t", users({"a": 1.0}))}
    )
    assert run.sessions == 3 and run.status.startswith("stopped: cannot reach the service")
    assert run.error is not None and run.contexts["shop"].iterations[0].sessions == 3


# -- the loop against the app ------------------------------------------------------------------------


def test_traffic_against_the_app_is_what_the_store_counted(sqlite_api, tmp_path):
    detail = sqlite_api.ready_context("shop", schedule={"every_n_impressions": 0})
    admin = ServiceClient("http://testserver", sqlite_api.admin["Authorization"].split()[1], http=sqlite_api.http)
    audiences = build_audiences({"shop": admin.context("shop")}, JudgeSpec("length-words"), "Quality")
    assert audiences["shop"].topic == "Cookware Sets"
    first = run_traffic(TrafficPlan(("shop",), sessions=80, seed=1), admin, audiences, admin_view=True)
    assert sqlite_api.iterate(lease_seconds=5) is False  # schedule off: nothing due
    sqlite_api.http.post("/v1/contexts/shop/iterations", headers=sqlite_api.admin)
    assert sqlite_api.iterate()
    second = run_traffic(TrafficPlan(("shop",), sessions=70, seed=2), admin, audiences, admin_view=True)

    context = sqlite_api.store.get_context("shop")
    counts = sqlite_api.store.event_counts("shop")
    assert context.impressions_total == 150 and counts.get("accepted", 0) == first.clicks + second.clicks
    assert set(second.contexts["shop"].iterations) == {1} and set(first.contexts["shop"].iterations) == {0}
    summary = summarize(second, audiences, admin.url, "length-words")
    rows = {row["iteration"]: row for row in summary["contexts"]["shop"]["iterations"]}
    assert rows[1]["sessions"] == 70 and rows[1]["server"]["sessions"] == 70.0
    assert rows[1]["server"]["clicks"] == rows[1]["clicks"] == second.clicks
    assert rows[0]["sessions"] == 0 and rows[0]["server"]["clicks"] == first.clicks  # IP_0 seen in the history
    assert len(rows[0]["pool"]) == len(detail["pool"]["items"]) and 0 < rows[0]["expected_ctr"] < 1
    assert "shop (Cookware Sets):" in table(summary)
    assert json.loads(write_json(summary, tmp_path).read_text())["sessions"] == 70
    assert plot(summary, tmp_path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_client_key_needs_a_topic(sqlite_api):
    sqlite_api.ready_context("shop")
    client = ServiceClient("http://testserver", sqlite_api.client["Authorization"].split()[1], http=sqlite_api.http)
    assert client.context("shop") is None
    with pytest.raises(ConfigurationError, match="pass --topic"):
        build_audiences({"shop": None}, JudgeSpec("length-words"), "Quality")
    audiences = build_audiences({"shop": None}, JudgeSpec("length-words"), "Quality", topic="Pans")
    run = run_traffic(TrafficPlan(("shop",), sessions=10), client, audiences)
    assert run.sessions == 10 and run.contexts["shop"].detail is None
    summary = summarize(run, audiences, client.url, "length-words")
    assert summary["contexts"]["shop"]["admin_view"] is False and summary["contexts"]["shop"]["k_shown"] == 3


def test_length_judge_is_the_default_domain_judge():
    audiences = build_audiences({"x": None}, JudgeSpec("length-words"), "Quality,Price", topic="Pans")
    assert isinstance(audiences["x"].users.scores.judge, LengthWordsJudge)
    assert [p.name for p in audiences["x"].users.population.personas] == ["Quality", "Price"]


def test_the_llm_judge_goes_through_the_backend_registry_and_the_response_cache(tmp_path):
    spec = JudgeSpec("llm", llm="scripted", cache_dir=tmp_path)
    try:
        audiences = build_audiences({"x": None}, spec, "Quality", topic="Cookware Sets")
        users_x = audiences["x"].users
        outcome = users_x.session("Cookware Sets", ["Is it oven safe?", "Does it warp?"], np.random.default_rng(1))
        assert all(1 <= score <= 10 for score in outcome.scores)
        assert users_x.scores.judge.judge_id == "llm:parse"  # the scripted backend has no token probabilities
        assert (tmp_path / "llm-cache.sqlite").is_file()
    finally:
        spec.close()
    assert spec.backend is None
