import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from clickloop.cli import cli, resolve_topics, split_list

COMMANDS = [
    [],
    ["simulate"],
    ["demo"],
    ["report"],
    ["ctr-theory"],
    ["models"],
    ["models", "list"],
    ["models", "prepare"],
    ["models", "verify"],
    ["serve"],
    ["worker"],
    ["keys"],
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "revoke"],
    ["openapi"],
]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_on_every_command(command):
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def run_main(*args, cwd=None):
    """The installed entry point in a subprocess: exit codes and stderr as a user sees them."""
    return subprocess.run(
        [sys.executable, "-c", "from clickloop.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_ctr_theory_json():
    result = run_main("ctr-theory", "--score", "10", "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["ctr"] == pytest.approx(0.6063, abs=1e-4)
    table = run_main("ctr-theory", "--rejection-score", "9")
    assert "score 8: CTR 60.6 %" in table.stdout


def test_simulate_scripted_writes_summary_and_report(tmp_path):
    out = tmp_path / "run"
    result = run_main(
        "simulate",
        "--llm",
        "scripted",
        "--topics",
        "Cookware Sets;Racks, Shelves & Drawers",
        "--population",
        "Quality",
        "--population",
        "Price,Quality",
        "--strategies",
        "full-ctr,explore-exploit",
        "--iterations",
        "2",
        "--sessions",
        "500",
        "--seed",
        "1,2",
        "--no-cache",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["results"]) == {"Quality", "Price + Quality"}
    entry = summary["results"]["Price + Quality"]["explore-exploit"]
    assert len(entry["ctr"]) == 3 and len(entry["cells"]) == 4
    assert summary["config"]["topics"] == ["Cookware Sets", "Racks, Shelves & Drawers"]
    assert "Avg" in result.stdout and (out / "report.md").is_file()
    again = run_main("report", str(out))
    assert again.returncode == 0 and "report:" in again.stdout


def test_config_file_and_flag_precedence(tmp_path):
    config = tmp_path / "exp.toml"
    config.write_text('llm = "scripted"\niterations = 1\nn_sessions = 300\nstrategies = ["no-drop"]\nno_cache = true\n')
    out = tmp_path / "run"
    result = run_main("simulate", "--config", str(config), "--sessions", "200", "--out", str(out), "--no-report")
    assert result.returncode == 0, result.stderr
    resolved = json.loads((out / "config.json").read_text())["config"]
    assert resolved["n_sessions"] == 200 and resolved["iterations"] == 1 and resolved["strategies"] == ["no-drop"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--temperature", "0"], "temperature"),
        (["--k-shown", "9"], "k_shown (--k-shown): must not exceed the pool size (5); lower k_shown"),
        (["--sessions", "0"], "n_sessions (--sessions): must be >= 1; the paper uses 5000 (got 0)"),
        (["--iterations", "-1"], "iterations (--iterations): must be >= 0; the paper uses 15 (got -1)"),
        (["--llm", "llamacpp:nosuch"], "unknown embedded model 'nosuch'; expected one of: llamacpp:qwen2.5"),
        (["--strategies", "full-ctr,greedy"], "expected one of: no-drop, random-ctr"),
        (["--population", "Shoppers"], "unknown persona 'Shoppers'"),
        (["--domain", "recipes"], "unknown domain 'recipes'"),
        (["--judge", "oracle"], "unknown judge 'oracle'"),
        (["--llm", "gemini"], "unknown LLM backend 'gemini'"),
        (["--seed", "x"], "--seed 'x'"),
        (["--topics", "first:99"], "N must be in [1, 50]"),
        (["--config", "/nonexistent.json"], "no such file"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    result = run_main("simulate", "--llm", "scripted", "--no-cache", "--out", str(tmp_path / "x"), *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert "(got {" not in result.stderr  # the field's value, not the whole configuration
    assert not (tmp_path / "x").exists()


def test_config_file_errors_name_the_field(tmp_path):
    config = tmp_path / "exp.json"
    config.write_text(json.dumps({"llm": "scripted", "n_sessions": 0, "no_cache": True}))
    result = run_main("simulate", "--config", str(config), "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert "n_sessions (--sessions): must be >= 1; the paper uses 5000 (got 0)" in result.stderr


@pytest.mark.parametrize("score", ["11", "-1", "0", "10.5", "nan"])
def test_ctr_theory_rejects_scores_outside_1_to_10(score):
    result = run_main("ctr-theory", "--score", score, "--json")
    assert result.returncode == 2 and result.stdout == ""
    assert "'--score': must be in [1, 10]" in result.stderr and "omit --score" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("score", "ctr"), [("1", 0.0038), ("10", 0.6063)])
def test_ctr_theory_accepts_the_ends_of_the_scale(score, ctr):
    result = run_main("ctr-theory", "--score", score, "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["ctr"] == pytest.approx(ctr, abs=1e-4)


def test_unreachable_openai_server_is_one_clear_error(tmp_path):
    result = run_main(
        "simulate",
        "--llm",
        "openai:some-model",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--iterations",
        "1",
        "--no-cache",
        "--out",
        str(tmp_path / "x"),
    )
    assert result.returncode == 2
    assert "cannot reach the OpenAI-compatible server at http://127.0.0.1:9/v1" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()  # no empty config.json / summary.json left behind


def test_report_on_missing_run_folder(tmp_path):
    result = run_main("report", str(tmp_path / "nothing"))
    assert result.returncode == 2 and "summary.json" in result.stderr


def test_list_helpers():
    assert split_list("a, b,,c") == ["a", "b", "c"]
    assert split_list("Racks, Shelves & Drawers; Fuses") == ["Racks, Shelves & Drawers", "Fuses"]
    assert resolve_topics("first:2", "ecommerce") == ["Spray Bottles", "Home Bar Furniture"]
    assert len(resolve_topics("all", "wikipedia")) == 50


def test_the_example_domain_file_runs_from_the_cli(tmp_path):
    from pathlib import Path

    example = Path(__file__).parents[1] / "examples" / "recipes-domain.json"
    out = tmp_path / "run"
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--domain",
            str(example),
            "--topics",
            "Banana Bread",
            "--population",
            "Everyone",
            "--strategies",
            "full-ctr",
            "--iterations",
            "1",
            "--sessions",
            "300",
            "--llm",
            "scripted",
            "--no-report",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["domain"] == str(example)
    assert len(summary["results"]["Everyone"]["full-ctr"]["ctr"]) == 2
