import json

import pytest

from clickloop.domains import load_domain
from clickloop.errors import BadResponseError, ConfigurationError, StorageError, TransportError, UnknownIdError
from clickloop.experiment.cell import RETRY_SEED_STRIDE, last_finished, retry_number
from clickloop.experiment.config import build_config
from clickloop.experiment.runner import plan_cells, run_experiment
from clickloop.llm.scripted import ScriptedLLM, canned_backend, canned_responder

GRID = dict(
    topics=["Cookware Sets", "Spray Bottles"],
    populations=["Quality", "3 Preference"],
    strategies=["no-drop", "random-ctr", "partial-ctr", "full-ctr", "explore-exploit"],
    iterations=3,
    n_sessions=2000,
    no_cache=True,
)


def config(**overrides):
    return build_config({**GRID, **overrides})


def iteration_files(out):
    return sorted(p.relative_to(out).as_posix() for p in (out / "cells").rglob("iter-*.json"))


def test_full_grid_writes_iterations_and_summary(tmp_path):
    outcome = run_experiment(config(), tmp_path, backend=canned_backend())
    assert outcome.failures == []
    assert len(iteration_files(tmp_path)) == 2 * 5 * 2 * 4
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["n_sessions"] == 2000 and "numpy" in summary["versions"]
    for population in ("Quality", "3 Preference"):
        for strategy in GRID["strategies"]:
            entry = summary["results"][population][strategy]
            assert len(entry["ctr"]) == len(entry["mean_score"]) == 4 and entry["complete"]
            assert entry["last_ctr"] == entry["ctr"][-1]
            assert entry["avg_ctr"] == pytest.approx(sum(entry["ctr"][1:]) / 3)
            assert entry["sessions"] == [4000] * 4
            assert entry["llm"]["generator"]["calls"] >= 3 * 2
    no_drop = json.loads(next((tmp_path / "cells").rglob("no-drop/*/seed-1/iter-003.json")).read_text())
    assert len(no_drop["pool"]) == 8
    record = json.loads(next((tmp_path / "cells").rglob("explore-exploit/*/seed-1/iter-002.json")).read_text())
    assert {"scores", "impressions", "clicks", "ctr", "provenance"} <= set(record["pool"][0])
    assert record["llm"]["generator"]["calls"] >= 2
    assert record["run"]["config"]["n_sessions"] == 2000 and "clickloop" in record["run"]["versions"]
    assert (tmp_path / "config.json").is_file()


def test_same_initial_pool_and_clicks_for_every_strategy(tmp_path):
    run_experiment(config(populations=["Quality"]), tmp_path, backend=canned_backend())
    firsts = {
        json.dumps([r["clicks"] for r in json.loads(p.read_text())["pool"]])
        for p in (tmp_path / "cells").rglob("iter-000.json")
        if "cookware" in p.as_posix()
    }
    assert len(firsts) == 1


class FlakyAfter:
    """Canned answers, then an error from call ``fail_at`` on (a crash mid-run)."""

    def __init__(self, fail_at):
        self.inner = canned_backend()
        self.calls = 0
        self.fail_at = fail_at
        self.backend_id, self.supports_logprobs, self.max_concurrency = "scripted", False, 1

    def start(self):
        pass

    def close(self):
        pass

    def complete(self, request):
        self.calls += 1
        if self.calls >= self.fail_at:
            raise BadResponseError("server went away")
        return self.inner.complete(request)


def test_crash_mid_run_then_resume_matches_an_uninterrupted_run(tmp_path):
    small = config(populations=["Quality"], strategies=["explore-exploit"], topics=["Cookware Sets"], iterations=4)
    outcome = run_experiment(small, tmp_path / "a", backend=FlakyAfter(fail_at=12))
    assert len(outcome.failures) == 1 and "server went away" in outcome.failures[0]["error"]
    partial = iteration_files(tmp_path / "a")
    assert 0 < len(partial) < 5
    assert list((tmp_path / "a" / "cells").rglob("error.json"))
    assert not list((tmp_path / "a" / "cells").rglob("*.tmp"))
    assert (
        json.loads((tmp_path / "a" / "summary.json").read_text())["results"]["Quality"]["explore-exploit"]["complete"]
        is False
    )

    resumed_llm = ScriptedLLM(canned_responder)
    outcome = run_experiment(small, tmp_path / "a", backend=resumed_llm)
    assert outcome.failures == [] and not list((tmp_path / "a" / "cells").rglob("error.json"))
    run_experiment(small, tmp_path / "b", backend=canned_backend())
    a = json.loads((tmp_path / "a" / "summary.json").read_text())["results"]["Quality"]["explore-exploit"]
    b = json.loads((tmp_path / "b" / "summary.json").read_text())["results"]["Quality"]["explore-exploit"]
    assert a["ctr"] == b["ctr"] and a["mean_score"] == b["mean_score"]


def test_rerun_skips_finished_work_and_extends(tmp_path):
    small = config(populations=["Quality"], strategies=["full-ctr"], topics=["Cookware Sets"], iterations=2)
    run_experiment(small, tmp_path, backend=canned_backend())
    first = (tmp_path / "cells").rglob("iter-001.json").__next__()
    stamp = first.stat().st_mtime_ns
    idle = ScriptedLLM([])
    run_experiment(small, tmp_path, backend=idle)
    assert idle.requests == []
    longer = small.model_copy(update={"iterations": 4})
    run_experiment(longer, tmp_path, backend=canned_backend())
    assert first.stat().st_mtime_ns == stamp
    assert len(iteration_files(tmp_path)) == 5


def test_response_cache_serves_a_second_run(tmp_path):
    cached = config(
        populations=["Quality"],
        strategies=["full-ctr"],
        topics=["Cookware Sets"],
        iterations=2,
        no_cache=False,
        cache_dir=str(tmp_path / "cache"),
    )
    run_experiment(cached, tmp_path / "one", backend=canned_backend())
    second = canned_backend()
    run_experiment(cached, tmp_path / "two", backend=second)
    assert second.requests == []
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    usage = summary["results"]["Quality"]["full-ctr"]["llm"]["generator"]
    assert usage["calls"] == usage["cache_hits"] > 0


def test_changed_settings_are_refused_in_an_old_folder(tmp_path):
    small = config(populations=["Quality"], strategies=["full-ctr"], topics=["Cookware Sets"], iterations=1)
    run_experiment(small, tmp_path, backend=canned_backend())
    with pytest.raises(ConfigurationError, match=r"n_sessions: 2000 -> 300"):
        run_experiment(small.model_copy(update={"n_sessions": 300}), tmp_path, backend=canned_backend())


def test_corrupt_iteration_file_is_reported(tmp_path):
    cell = tmp_path / "cell"
    cell.mkdir()
    (cell / "iter-000.json").write_text("{not json")
    with pytest.raises(StorageError, match="delete it"):
        last_finished(cell)
    (cell / "iter-000.json").unlink()
    (cell / ".iter-000.json.123.tmp").write_text("{}")
    assert last_finished(cell) == (-1, None)


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"temperature": 0}, ConfigurationError, "temperature"),
        ({"k_shown": 6}, ConfigurationError, r"k_shown: must not exceed the pool size \(5\).*\(got 6\)"),
        ({"n_sessions": 0}, ConfigurationError, "n_sessions"),
        ({"seeds": []}, ConfigurationError, "seeds"),
        ({"strategies": ["full-ctr", "greedy"]}, UnknownIdError, "explore-exploit"),
        ({"populations": ["Qualty"]}, UnknownIdError, "Quality"),
        ({"domain": "recipes"}, UnknownIdError, "ecommerce"),
        ({"judge": "gpt"}, UnknownIdError, "length-words"),
        ({"llm": "ollama:x"}, UnknownIdError, "openai:MODEL"),
        ({"llm": "llamacpp:nosuch"}, UnknownIdError, r"unknown embedded model 'nosuch'.*\.gguf"),
        ({"bogus": 1}, ConfigurationError, "bogus"),
    ],
)
def test_bad_input_fails_before_any_llm_call(tmp_path, overrides, error, match):
    llm = ScriptedLLM([])
    with pytest.raises(error, match=match):
        run_experiment(config(**overrides), tmp_path, backend=llm if "llm" not in overrides else None)
    assert llm.requests == []


class DownAfter(FlakyAfter):
    def complete(self, request):
        self.calls += 1
        if self.calls >= self.fail_at:
            raise TransportError("cannot reach the OpenAI-compatible server at http://127.0.0.1:9/v1")
        return self.inner.complete(request)


def test_server_outage_stops_the_run_and_keeps_finished_iterations(tmp_path):
    small = config(populations=["Quality"], strategies=["full-ctr"], topics=["Cookware Sets"], iterations=3)
    with pytest.raises(TransportError, match="cannot reach"):
        run_experiment(small, tmp_path, backend=DownAfter(fail_at=9))
    kept = iteration_files(tmp_path)
    assert 0 < len(kept) < 4 and not list((tmp_path / "cells").rglob("error.json"))
    assert (tmp_path / "summary.json").is_file()
    run_experiment(small, tmp_path, backend=canned_backend())
    assert len(iteration_files(tmp_path)) == 4


def test_skip_failed_steps_carries_the_pool_over(tmp_path):
    def stubborn(request):
        if "New Question" in request.messages[0].content and "CTR" in request.messages[0].content:
            return "I will not write a question."
        return canned_responder(request)

    small = config(populations=["Quality"], strategies=["full-ctr"], topics=["Cookware Sets"], iterations=2)
    outcome = run_experiment(small, tmp_path / "stop", backend=ScriptedLLM(stubborn))
    assert len(outcome.failures) == 1 and "I will not" in outcome.failures[0]["error"]
    skipping = small.model_copy(update={"skip_failed_steps": True})
    outcome = run_experiment(skipping, tmp_path / "skip", backend=ScriptedLLM(stubborn))
    assert outcome.failures == []
    entry = outcome.summary["results"]["Quality"]["full-ctr"]
    assert entry["skipped_steps"] == 2 and entry["complete"]
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "skip" / "cells").rglob("iter-*.json"))]
    assert [r["pool"] for r in records][0][0]["text"] == records[2]["pool"][0]["text"]
    assert "ParseError" in records[1]["step_error"] and "step_error" not in records[0]


def records(out, strategy):
    """The iteration records of one strategy's Cookware Sets cell, IP_0 first."""
    paths = sorted((out / "cells").rglob(f"{strategy}/cookware*/seed-1/iter-*.json"))
    return [json.loads(p.read_text()) for p in paths]


def test_fixed_pool_bandit_and_guided_ee_run_in_the_same_grid(tmp_path):
    cfg = config(populations=["Quality"], strategies=["guided-ee", "fixed-pool"], n_sessions=300, judge="length-words")
    outcome = run_experiment(cfg, tmp_path, backend=canned_backend())
    assert outcome.failures == []
    bandit = records(tmp_path, "fixed-pool")
    assert [len(r["pool"]) for r in bandit] == [20] * 4
    assert {r["serving"] for r in bandit} == {"thompson"}
    assert all(r["llm"].get("generator", {}).get("calls", 0) == 0 for r in bandit[1:])  # one generation, up front
    assert {tuple(x["item_id"] for x in r["pool"]) for r in bandit} == {tuple(x["item_id"] for x in bandit[0]["pool"])}
    guided = records(tmp_path, "guided-ee")
    assert {r["serving"] for r in guided} == {"uniform"} and all(len(r["pool"]) == 5 for r in guided)
    origins = {x["provenance"]["origin"] for r in guided for x in r["pool"]}
    assert origins >= {"initial", "explore"} or origins >= {"initial", "exploit"}


def test_thompson_serving_is_a_result_field(tmp_path):
    run_experiment(
        config(populations=["Quality"], strategies=["full-ctr"], iterations=1), tmp_path, backend=canned_backend()
    )
    with pytest.raises(ConfigurationError, match="serving: 'uniform' -> 'thompson'"):
        run_experiment(
            config(populations=["Quality"], strategies=["full-ctr"], iterations=1, serving="thompson"),
            tmp_path,
            backend=canned_backend(),
        )


def test_unknown_serving_fails_before_any_llm_call(tmp_path):
    llm = ScriptedLLM(canned_responder)
    with pytest.raises(UnknownIdError, match="uniform, thompson"):
        run_experiment(config(serving="greedy"), tmp_path, backend=llm)
    assert llm.requests == []


GARBAGE = "Sure! Here are some thoughts about cookware in general."


def garbage_until_retry(request):
    """Malformed answers to full-ctr's iterative prompt on the seeds of a first try, good ones after."""
    prompt = request.messages[0].content
    if "New Question" in prompt and "CTR" in prompt and request.seed < RETRY_SEED_STRIDE:
        return GARBAGE
    return canned_responder(request)


def test_rerun_after_malformed_output_asks_anew_and_keeps_finished_work(tmp_path):
    cached = config(
        populations=["Quality"],
        strategies=["full-ctr"],
        topics=["Cookware Sets"],
        iterations=3,
        no_cache=False,
        cache_dir=str(tmp_path / "cache"),
    )
    out = tmp_path / "a"
    first = ScriptedLLM(garbage_until_retry)
    outcome = run_experiment(cached, out, backend=first)
    assert len(outcome.failures) == 1 and "ParseError" in outcome.failures[0]["error"]
    assert GARBAGE in outcome.failures[0]["error"]
    error = json.loads(next((out / "cells").rglob("error.json")).read_text())
    assert error["retry"] == 0
    assert all(r.seed < RETRY_SEED_STRIDE for r in first.requests)  # a run that never failed: today's seeds
    ip0 = next((out / "cells").rglob("iter-000.json"))
    stamp = ip0.stat().st_mtime_ns
    assert iteration_files(out) == [ip0.relative_to(out).as_posix()]

    # the same command again: the failed step is asked with new seeds, IP_0 is kept
    second = ScriptedLLM(garbage_until_retry)
    outcome = run_experiment(cached, out, backend=second)
    assert outcome.failures == [] and not list((out / "cells").rglob("error.json"))
    assert ip0.stat().st_mtime_ns == stamp
    assert second.requests and all(r.seed >= RETRY_SEED_STRIDE for r in second.requests)
    assert [r["retry"] for r in records(out, "full-ctr")] == [0, 1, 1, 1]
    assert outcome.summary["results"]["Quality"]["full-ctr"]["complete"]

    # a new folder on the same cache replays the first try, then its rerun is served from the cache
    outcome = run_experiment(cached, tmp_path / "b", backend=ScriptedLLM(garbage_until_retry))
    assert len(outcome.failures) == 1
    idle = ScriptedLLM([])
    outcome = run_experiment(cached, tmp_path / "b", backend=idle)
    assert outcome.failures == [] and idle.requests == []
    pools = [(r["pool"], r["pool_ctr"], r["retry"]) for r in records(out, "full-ctr")]
    assert [(r["pool"], r["pool_ctr"], r["retry"]) for r in records(tmp_path / "b", "full-ctr")] == pools


def test_retry_number_counts_parse_errors_only(tmp_path):
    assert retry_number(tmp_path) == 0
    (tmp_path / "error.json").write_text(json.dumps({"error": "BadResponseError: server went away", "retry": 2}))
    assert retry_number(tmp_path) == 2
    (tmp_path / "error.json").write_text(json.dumps({"error": "ParseError: no valid question; raw output: 'x'"}))
    assert retry_number(tmp_path) == 1
    (tmp_path / "iter-000.json").write_text(json.dumps({"retry": 3}))
    assert retry_number(tmp_path) == 4


@pytest.mark.parametrize(
    ("strategy", "options", "iterations", "match"),
    [
        (
            "explore-exploit",
            {"n_explore": 0, "n_exploit": 1, "n_drop": 2},
            3,
            r"strategy_options\.explore-exploit \(n_explore=0, n_exploit=1, n_drop=2\) writes 1 and drops 2 .*"
            r"from pool_size 5 to 2 at iteration 3, below k_shown \(3\); .*n_drop=1.*iterations to 2",
        ),
        (
            "full-ctr",
            {"n_drop": 6},
            1,
            r"strategy_options\.full-ctr \(n_drop=6\) drops 6 items per iteration, but at iteration 1 the pool "
            r"holds 5 \(pool_size 5\); lower n_drop to at most 5",
        ),
        ("random-ctr", {"n_drop": 7}, 1, r"random-ctr \(n_drop=7\) drops 7"),
    ],
)
def test_strategy_counts_are_checked_against_the_pool_before_any_llm_call(
    tmp_path, strategy, options, iterations, match
):
    llm = ScriptedLLM([])
    bad = config(strategies=[strategy], strategy_options={strategy: options}, iterations=iterations)
    with pytest.raises(ConfigurationError, match=match):
        run_experiment(bad, tmp_path, backend=llm)
    assert llm.requests == [] and not (tmp_path / "config.json").exists()


def test_strategy_counts_that_fit_the_run_are_accepted(tmp_path):
    domain = load_domain("ecommerce")
    shrinking = {"explore-exploit": {"n_explore": 0, "n_exploit": 1, "n_drop": 2}, "full-ctr": {"n_drop": 5}}
    fits = config(strategies=["explore-exploit", "full-ctr", "no-drop", "guided-ee"], strategy_options=shrinking)
    assert len(plan_cells(fits.model_copy(update={"iterations": 2}), domain)) == 4 * 2 * 2
    with pytest.raises(ConfigurationError, match="explore-exploit"):
        plan_cells(fits, domain)


def test_a_run_that_fails_at_start_up_leaves_no_run_folder(tmp_path):
    small = config(populations=["Quality"], strategies=["full-ctr"], topics=["Cookware Sets"], iterations=1)
    with pytest.raises(TransportError, match="cannot reach"):
        run_experiment(small, tmp_path / "new", backend=DownAfter(fail_at=1))
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(TransportError):
        run_experiment(small, tmp_path / "mine", backend=DownAfter(fail_at=1))
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]
    # a folder that already holds a run keeps it all
    run_experiment(small, tmp_path / "old", backend=canned_backend())
    before = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "old").rglob("*"))
    with pytest.raises(TransportError):
        run_experiment(small.model_copy(update={"iterations": 2}), tmp_path / "old", backend=DownAfter(fail_at=1))
    assert sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "old").rglob("*")) == before


def test_unknown_embedded_model_fails_before_anything_is_written(tmp_path):
    with pytest.raises(UnknownIdError, match=r"llamacpp:qwen2\.5-coder-1\.5b.*llamacpp:/path/to/model\.gguf"):
        run_experiment(config(llm="llamacpp:nosuch"), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_guided_ee_shorten_from_the_config_reaches_the_writer(tmp_path):
    """``strategy_options`` ``shorten`` as a user sets it: over-long questions come back shortened."""

    def long_winded(request):
        answer = canned_responder(request)
        prompt = request.messages[0].content
        if answer.startswith("New Question:") and len(request.messages) == 1 and "Rewrite this" not in prompt:
            return answer.rstrip("?") + " when you compare every option on offer across many shops and years?"
        return answer

    cfg = config(
        populations=["Quality"],
        topics=["Cookware Sets"],
        strategies=["guided-ee"],
        strategy_options={"guided-ee": {"shorten": True}},
        n_sessions=300,
        judge="length-words",
    )
    outcome = run_experiment(cfg, tmp_path, backend=ScriptedLLM(long_winded))
    assert outcome.failures == []
    written = [x for r in records(tmp_path, "guided-ee") for x in r["pool"] if x["provenance"]["origin"] != "initial"]
    shortened = [x for x in written if "shortened_from" in x["provenance"]["notes"]]
    assert shortened, "no over-long question was shortened"
    for item in shortened:
        assert len(item["text"].split()) <= 15 < len(item["provenance"]["notes"]["shortened_from"].split())
        assert item["provenance"]["notes"]["rejected"].startswith("too-long")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["strategy_options"] == {"guided-ee": {"shorten": True}}
