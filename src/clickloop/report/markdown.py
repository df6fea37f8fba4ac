"""``RUN/report.md``: an experiment run's summary rendered as the paper's tables and figures.

:func:`build_report` is the IO edge (reads ``summary.json``, writes plots and ``report.md``);
:func:`render_report` is the pure part that turns a parsed summary into Markdown.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clickloop.errors import NotFoundError, StorageError, ValidationError
from clickloop.report.plots import plot_curves
from clickloop.report.stats import (
    Summary,
    Which,
    best_strategy,
    failed_cells,
    incomplete_results,
    n_iterations,
    pairwise_tests,
    populations,
    strategies,
    strategy_result,
    validate_summary,
)
from clickloop.report.tables import Metric, iteration_table, llm_table, markdown_table, table5, ztest_table

SUMMARY_NAME = "summary.json"
REPORT_NAME = "report.md"
PLOTS_DIR = "plots"

# Config keys differ between runner versions; the first key found (top level, then one level down) wins.
_CONFIG_ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Domain", ("domain",)),
    ("Topics", ("topics", "n_topics")),
    ("Populations", ("populations", "population")),
    ("Strategies", ("strategies", "strategy")),
    ("Iterations (I)", ("iterations", "n_iterations")),
    ("Sessions per iteration (S)", ("n_sessions", "sessions", "sessions_per_iteration")),
    ("Seeds", ("seeds", "seed", "n_seeds")),
    ("Pool size", ("pool_size", "n_items")),
    ("Temperature (T)", ("temperature",)),
    ("Rejection score (RS)", ("rejection_score",)),
    ("Items shown (K)", ("k_shown",)),
    ("LLM backend", ("llm", "backend", "generator", "model")),
    ("Generator temperature", ("generator_temperature",)),
    ("Judge", ("judge", "relevance_judge")),
    ("Judge mode", ("judge_mode",)),
)
_ID_KEYS = ("id", "name", "label", "backend", "model")
_COMPARISONS: tuple[tuple[Which, str], ...] = (
    ("last", "last pool (IP_I)"),
    ("all", "all pools after IP_0 (IP_1..IP_I)"),
)


def build_report(run_dir: Path, *, plots: bool = True) -> Path:
    """Read ``run_dir/summary.json``; write ``run_dir/plots/*.png`` and ``run_dir/report.md``; return the latter.

    ``plots=False`` skips the figures (and the matplotlib requirement). Raises :class:`NotFoundError` when
    the summary is missing, :class:`StorageError` when it is unreadable or files cannot be written, and
    :class:`~clickloop.errors.ConfigurationError` when plots are asked for without matplotlib.
    """
    run_dir = Path(run_dir)
    summary = load_summary(run_dir)
    plot_links: dict[str, str] = {}
    combined_plot = None
    if plots:
        paths = [path.relative_to(run_dir).as_posix() for path in plot_curves(summary, run_dir / PLOTS_DIR)]
        labels = populations(summary)
        plot_links = dict(zip(labels, paths, strict=False))
        combined_plot = paths[len(labels)] if len(paths) > len(labels) else None
    text = render_report(
        summary,
        title=f"clickloop report: {run_dir.name}",
        plot_links=plot_links,
        combined_plot=combined_plot,
        plots_drawn=plots,
    )
    return _write_text(run_dir / REPORT_NAME, text)


def load_summary(run_dir: Path) -> dict[str, Any]:
    """The parsed and shape-checked ``run_dir/summary.json``."""
    path = Path(run_dir) / SUMMARY_NAME
    fix = f"run `clickloop simulate --out {run_dir}` first"
    if not path.is_file():
        raise NotFoundError(f"no {SUMMARY_NAME} in {run_dir} ({path} does not exist); {fix}")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise StorageError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); the run may have "
            f"been interrupted while writing it: {fix.replace('first', 'again')}"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise StorageError(f"cannot read {path}: {exc}; check the file's permissions and encoding") from exc
    try:
        validate_summary(summary)
    except ValidationError as exc:
        raise StorageError(f"{path} is not a clickloop summary: {exc}; {fix.replace('first', 'again')}") from exc
    return summary


def render_report(
    summary: Summary,
    *,
    title: str = "clickloop report",
    plot_links: Mapping[str, str] | None = None,
    combined_plot: str | None = None,
    plots_drawn: bool = True,
) -> str:
    """The report as Markdown. ``plot_links``: population -> image path relative to the report."""
    sections = [
        f"# {title}",
        _run_section(summary),
        _incomplete_section(summary),
        "## Table 5: average and last CTR\n\n"
        "Pool CTR in percent, mean over cells (topics x seeds). **Avg** = mean over IP_1..IP_I, "
        "**Last** = IP_I; the best Avg and the best Last of each population are bold.\n\n" + table5(summary),
        _figures_section(summary, plot_links or {}, combined_plot, plots_drawn),
        _iterations_section(summary, "ctr", "## Pool CTR per iteration (%)"),
        _iterations_section(summary, "mean_score", "## Mean relevance score per iteration (1–10)"),
        _ztest_section(summary),
        "## LLM accounting\n\nSummed over populations; seconds are wall-clock time inside the backend.\n\n"
        + llm_table(summary),
        _versions_section(summary),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


# --------------------------------------------------------------------------- sections


def _run_section(summary: Summary) -> str:
    raw_config = summary.get("config")
    config: Mapping[str, Any] = raw_config if isinstance(raw_config, Mapping) else {}
    fallbacks = {
        "Populations": populations(summary),
        "Strategies": strategies(summary),
        "Iterations (I)": n_iterations(summary),
    }
    rows = []
    for label, keys in _CONFIG_ROWS:
        value = _lookup(config, keys)
        if value is None:
            value = fallbacks.get(label)
        if value is not None:
            rows.append([label, _escape(_describe(value))])
    rows.append(["Cells per population and strategy", _cells_description(summary)])
    details = ""
    if config:
        details = (
            "\n\n<details><summary>Resolved config</summary>\n\n```json\n"
            + json.dumps(config, indent=2, sort_keys=True, default=str)
            + "\n```\n\n</details>"
        )
    return "## Run\n\n" + markdown_table(["Setting", "Value"], rows) + details


def _incomplete_section(summary: Summary) -> str:
    incomplete, failed = incomplete_results(summary), failed_cells(summary)
    if not incomplete and not failed:
        return ""
    expected = n_iterations(summary) + 1
    parts = ["## Incomplete run"]
    if incomplete:
        lines = [f"- {name} on {population}: {present} of {expected} pools" for population, name, present in incomplete]
        parts.append(
            "Some strategies stopped before IP_I. Their Avg and Last use the pools present, their curves end "
            "early, and z-tests compare each pair on the iterations both have.\n\n" + "\n".join(lines)
        )
    if failed:
        lines = [
            f"- {name} on {population}: {', '.join(f'`{path}`' for path in paths)}"
            for population, name, paths in failed
        ]
        parts.append(
            "Cells whose last attempt failed; rerun the same command to retry them. "
            "Curves and tables average only the cells that produced pools.\n\n" + "\n".join(lines)
        )
    return "\n\n".join(parts)


def _figures_section(
    summary: Summary, plot_links: Mapping[str, str], combined_plot: str | None, plots_drawn: bool
) -> str:
    if not plots_drawn:
        return "## Figures\n\n_Plots were not drawn (`plots=False`)._"
    parts = [
        "## Figures\n\nLike the paper's Figures 4 and 5: left, mean relevance score of the pool; right, pool CTR. "
        "Lines are means over cells; bands are ±1 standard error over cells."
    ]
    if combined_plot:
        parts.append(f"![Pool CTR per iteration, all populations]({combined_plot})")
    for population in populations(summary):
        if population in plot_links:
            parts.append(
                f"### {population}\n\n![{population}: mean score and CTR per iteration]({plot_links[population]})"
            )
    return "\n\n".join(parts)


def _iterations_section(summary: Summary, metric: Metric, heading: str) -> str:
    parts = [heading]
    for population in populations(summary):
        parts.append(f"### {population}\n\n{iteration_table(summary, population, metric)}")
    return "\n\n".join(parts)


def _ztest_section(summary: Summary) -> str:
    parts = [
        "## Significance: two-proportion z-test\n\n"
        "Each strategy against the population's best by last CTR, on summed clicks / summed sessions "
        "(the paper's Z-test for proportions). Sessions are treated as independent; no correction for "
        "multiple comparisons. `***` p < .001, `**` p < .01, `*` p < .05."
    ]
    for population in populations(summary):
        best = best_strategy(summary, population)
        if best is None or len(strategies(summary, population)) < 2:
            parts.append(f"### {population}\n\n_Fewer than two strategies with results: nothing to compare._")
            continue
        for which, caption in _COMPARISONS:
            rows = pairwise_tests(summary, population, which, against=best)
            body = ztest_table(rows) if rows else "_No iterations in common to compare._"
            parts.append(f"### {population}: {best} vs others, {caption}\n\n{body}")
        stopped = [(name, present) for label, name, present in incomplete_results(summary) if label == population]
        if stopped:
            notes = "; ".join(f"{name} stopped at IP_{present - 1}" for name, present in stopped)
            parts.append(f"_{notes}: a pair with it is compared up to that pool, not IP_I._")
    return "\n\n".join(parts)


def _versions_section(summary: Summary) -> str:
    versions = summary.get("versions")
    if not isinstance(versions, Mapping) or not versions:
        return "## Versions\n\n_No versions recorded in summary.json._"
    rows = [[_escape(str(key)), _escape(_describe(value))] for key, value in versions.items()]
    return "## Versions\n\n" + markdown_table(["Component", "Version"], rows)


# --------------------------------------------------------------------------- helpers


def _lookup(config: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    for value in config.values():
        if isinstance(value, Mapping):
            for key in keys:
                if value.get(key) is not None:
                    return value[key]
    return None


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        for key in _ID_KEYS:
            if isinstance(value.get(key), str | int | float):
                return str(value[key])
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, list | tuple):
        names = [_describe(item) for item in value]
        if len(names) <= 6:
            return ", ".join(names) if names else "(none)"
        return f"{len(names)}: " + ", ".join(names[:5]) + ", …"
    return str(value)


def _cells_description(summary: Summary) -> str:
    counts = sorted(
        {
            len(strategy_result(summary, population, name).get("cells") or [])
            for population in populations(summary)
            for name in strategies(summary, population)
        }
    )
    if not counts or counts == [0]:
        return "not recorded"
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _write_text(path: Path, text: str) -> Path:
    # write-then-rename, so an interrupted run never leaves a half-written report behind
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc}; check the folder's permissions and free space") from exc
    return path
