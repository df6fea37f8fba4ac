import importlib.util
import json
import re
import sys

import pytest

import clickloop.report
from clickloop.errors import ConfigurationError, NotFoundError, StorageError
from clickloop.report import build_report, plot_curves
from clickloop.report.plots import plot_file_names

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="plots extra missing")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STRATEGIES = {"no-drop": 0.0, "partial-ctr": 0.004, "explore-exploit": 0.01}  # CTR gain per iteration


def make_summary(populations=("Quality", "3 Preference"), iterations=4, n_cells=2, sessions=1000):
    """A small summary in the runner's shape: every cell's CTR rises linearly with a strategy's gain."""
    results = {}
    for p_index, population in enumerate(populations):
        results[population] = {}
        for name, gain in STRATEGIES.items():
            cells = []
            for c_index in range(n_cells):
                base = 0.04 + 0.01 * p_index + 0.005 * c_index
                ctr = [round(base + gain * i, 4) for i in range(iterations + 1)]
                score = [4.5 + 50 * gain * i + 0.1 * c_index for i in range(iterations + 1)]
                cells.append({"topic": f"topic {c_index}", "seed": 0, "ctr": ctr, "mean_score": score})
            ctr = [sum(cell["ctr"][i] for cell in cells) / n_cells for i in range(iterations + 1)]
            results[population][name] = {
                "ctr": ctr,
                "mean_score": [sum(cell["mean_score"][i] for cell in cells) / n_cells for i in range(iterations + 1)],
                "avg_ctr": sum(ctr[1:]) / iterations,
                "last_ctr": ctr[-1],
                "sessions": [sessions * n_cells] * (iterations + 1),
                "clicks": [round(sum(cell["ctr"][i] for cell in cells) * sessions) for i in range(iterations + 1)],
                "cells": cells,
                "llm": {
                    "generator": {
                        "calls": iterations,
                        "cache_hits": 0,
                        "prompt_tokens": 900,
                        "completion_tokens": 60,
                        "seconds": 0.5,
                    }
                },
            }
    return {
        "config": {
            "domain": "ecommerce",
            "topics": ["topic 0", "topic 1"],
            "populations": list(populations),
            "iterations": iterations,
            "n_sessions": sessions,
            "seeds": [0],
            "llm": {"backend": "scripted"},
            "judge": "scripted",
        },
        "versions": {"clickloop": "0.1.0", "python": "3.11.0"},
        "iterations": iterations,
        "results": results,
    }


def write_run(tmp_path, summary):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return run_dir


@needs_matplotlib
def test_build_report_writes_markdown_and_pngs(tmp_path):
    run_dir = write_run(tmp_path, make_summary())
    report_path = build_report(run_dir)
    assert report_path == run_dir / "report.md"
    report = report_path.read_text(encoding="utf-8")

    pngs = sorted(path.name for path in (run_dir / "plots").iterdir())
    assert pngs == ["3-preference.png", "ctr_all.png", "quality.png"]
    for name in pngs:
        assert (run_dir / "plots" / name).read_bytes().startswith(PNG_SIGNATURE)
        assert f"](plots/{name})" in report
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report):
        assert (run_dir / link).is_file()


@needs_matplotlib
def test_report_contains_every_section(tmp_path):
    report = build_report(write_run(tmp_path, make_summary())).read_text(encoding="utf-8")
    for expected in [
        "# clickloop report: run",
        "| Domain | ecommerce |",
        "| LLM backend | scripted |",
        "| Sessions per iteration (S) | 1000 |",
        "## Table 5: average and last CTR",
        "| Population | no-drop Avg | no-drop Last | partial-ctr Avg |",
        "## Pool CTR per iteration (%)",
        "## Mean relevance score per iteration (1–10)",
        "### Quality: explore-exploit vs others, last pool (IP_I)",
        "### 3 Preference: explore-exploit vs others, all pools after IP_0 (IP_1..IP_I)",
        "| explore-exploit | no-drop |",
        "## LLM accounting",
        "| clickloop | 0.1.0 |",
    ]:
        assert expected in report
    assert "Incomplete run" not in report


@needs_matplotlib
def test_report_flags_an_incomplete_run(tmp_path):
    summary = make_summary()
    partial = summary["results"]["Quality"]["explore-exploit"]
    for key in ("ctr", "mean_score", "sessions", "clicks"):
        partial[key] = partial[key][:3]
    for cell in partial["cells"]:
        cell["ctr"], cell["mean_score"] = cell["ctr"][:3], cell["mean_score"][:3]
    partial["failed_cells"] = ["quality/explore-exploit/topic-1/seed-0"]
    report = build_report(write_run(tmp_path, summary)).read_text(encoding="utf-8")
    assert "## Incomplete run" in report
    assert "- explore-exploit on Quality: `quality/explore-exploit/topic-1/seed-0`" in report
    assert "explore-exploit on Quality: 3 of 5 pools" in report
    assert "explore-exploit stopped at IP_2" in report


def test_build_report_without_plots_needs_no_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    run_dir = write_run(tmp_path, make_summary())
    report = build_report(run_dir, plots=False).read_text(encoding="utf-8")
    assert not (run_dir / "plots").exists()
    assert "Plots were not drawn" in report


def test_plots_without_matplotlib_name_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ConfigurationError, match=r"plots need matplotlib: pip install -e '\.\[plots\]'"):
        plot_curves(make_summary(), tmp_path)


@needs_matplotlib
def test_one_population_one_cell_gives_one_png_without_band(tmp_path):
    paths = plot_curves(make_summary(populations=("Quality",), n_cells=1), tmp_path / "plots")
    assert [path.name for path in paths] == ["quality.png"]
    assert paths[0].read_bytes().startswith(PNG_SIGNATURE)


def test_plot_file_names_are_slugs_and_unique():
    assert plot_file_names(["3 Preference", "Features & Functionality", "3-preference", "!!"]) == {
        "3 Preference": "3-preference.png",
        "Features & Functionality": "features-functionality.png",
        "3-preference": "3-preference-2.png",
        "!!": "population.png",
    }


def test_missing_summary_raises_not_found_with_the_fix(tmp_path):
    with pytest.raises(NotFoundError, match=r"no summary\.json in .*run `clickloop simulate --out .*` first"):
        build_report(tmp_path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('{"results": ', r"summary\.json is not valid JSON \(line 1, column 13"),
        ('{"iterations": 3}', r"summary\.json is not a clickloop summary: summary has no 'results' object"),
        ('{"results": {"Quality": {"full-ctr": {"ctr": "high"}}}}', r"\['ctr'\] must be a list of numbers"),
    ],
)
def test_invalid_summary_raises_storage_error_with_the_path(tmp_path, content, match):
    (tmp_path / "summary.json").write_text(content, encoding="utf-8")
    with pytest.raises(StorageError, match=match) as caught:
        build_report(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_public_api_is_exported():
    for name in clickloop.report.__all__:
        assert hasattr(clickloop.report, name), name
    public = {name for name in vars(clickloop.report) if not name.startswith("_")}
    modules = {"markdown", "plots", "stats", "tables"}
    assert public - modules == set(clickloop.report.__all__)
