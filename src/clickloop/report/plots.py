"""Curves like the paper's Figures 4 and 5: mean relevance score and CTR per iteration, one line per strategy.

matplotlib is an optional dependency (the ``plots`` extra) and is imported only when a plot is drawn.
Figures are built with the object-oriented ``Figure`` API and rendered by Agg, never through ``pyplot``, so
drawing works without a display and leaves the caller's matplotlib backend and open figures alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clickloop.errors import ConfigurationError, StorageError
from clickloop.report.stats import (
    STRATEGY_ORDER,
    Summary,
    n_iterations,
    populations,
    standard_errors,
    strategies,
    strategy_result,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

COMBINED_NAME = "ctr_all.png"
"""File of the all-populations CTR figure; slugs use ``-`` only, so no population can collide with it."""

_DPI = 130
# tab10 is colour-blind friendlier than the default cycle's order; explore-exploit gets the strong red
_PALETTE = ("#7f7f7f", "#bcbd22", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def plot_file_names(labels: Iterable[str]) -> dict[str, str]:
    """Population label -> PNG file name, slugified (``"3 Preference"`` -> ``3-preference.png``), unique."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for label in labels:
        stem = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "population"
        candidate, suffix = stem, 2
        while candidate in used:
            candidate, suffix = f"{stem}-{suffix}", suffix + 1
        used.add(candidate)
        names[label] = f"{candidate}.png"
    return names


def strategy_colors(names: Sequence[str]) -> dict[str, str]:
    """A fixed colour per strategy, so a strategy looks the same in every figure of a report."""
    ordered = list(STRATEGY_ORDER) + sorted(set(names) - set(STRATEGY_ORDER))
    return {name: _PALETTE[ordered.index(name) % len(_PALETTE)] for name in names}


def plot_curves(summary: Summary, out_dir: Path) -> list[Path]:
    """Write one two-panel PNG per population, plus ``ctr_all.png`` when there is more than one population.

    Left panel: mean relevance score of the pool (1-10) per iteration; right panel: pool CTR in percent;
    x is the iteration i of IP_i, 0..I. Lines are the means over cells (topics x seeds); the shaded band is
    ±1 standard error over cells wherever more than one cell reaches that iteration. Returns the paths in
    population order, then ``ctr_all.png`` if written. Raises :class:`ConfigurationError` without
    matplotlib and :class:`StorageError` when ``out_dir`` cannot be written.
    """
    figure_class = _figure_class()
    colors = strategy_colors(strategies(summary))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the plot folder {out_dir}: {exc}; check the path and permissions") from exc
    labels = populations(summary)
    file_names = plot_file_names(labels)
    paths = []
    for population in labels:
        figure = figure_class(figsize=(12, 4.6), layout="constrained")
        score_axes, ctr_axes = figure.subplots(1, 2)
        for name in strategies(summary, population):
            result = strategy_result(summary, population, name)
            _draw_series(score_axes, result, "mean_score", 1.0, name, colors[name])
            _draw_series(ctr_axes, result, "ctr", 100.0, name, colors[name])
        _style_axes(score_axes, summary, "Mean relevance score (1–10)", "Mean question score")
        _style_axes(ctr_axes, summary, "CTR (%)", "CTR")
        ctr_axes.legend(loc="best", fontsize="small", frameon=False)
        figure.suptitle(f"{population}{_cells_note(summary, population)}", fontsize="large")
        paths.append(_save(figure, out_dir / file_names[population]))
    if len(labels) > 1:
        paths.append(_save(_combined_ctr_figure(figure_class, summary, colors), out_dir / COMBINED_NAME))
    return paths


# --------------------------------------------------------------------------- drawing helpers


def _figure_class() -> type[Figure]:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ConfigurationError("plots need matplotlib: pip install -e '.[plots]'") from exc
    return Figure


def _draw_series(axes: Axes, result: Mapping[str, Any], key: str, scale: float, label: str, color: str) -> None:
    values = [scale * float(v) for v in result[key]]
    if not values:
        return
    x = list(range(len(values)))
    axes.plot(x, values, label=label, color=color, linewidth=1.8, marker="o", markersize=3.5)
    errors = standard_errors(result, key)[: len(values)]
    if any(e is not None for e in errors):
        errors += [None] * (len(values) - len(errors))
        low = [v - scale * e if e is not None else math.nan for v, e in zip(values, errors, strict=True)]
        high = [v + scale * e if e is not None else math.nan for v, e in zip(values, errors, strict=True)]
        axes.fill_between(x, low, high, color=color, alpha=0.15, linewidth=0)


def _style_axes(axes: Axes, summary: Summary, ylabel: str, title: str) -> None:
    iterations = n_iterations(summary)
    axes.set_xlim(-0.3, iterations + 0.3)
    step = 1 if iterations <= 20 else math.ceil(iterations / 20)
    axes.set_xticks(range(0, iterations + 1, step))
    axes.set_xlabel("Iteration i (pool IP_i)")
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize="medium")
    axes.grid(True, alpha=0.3)


def _cells_note(summary: Summary, population: str) -> str:
    counts = {len(strategy_result(summary, population, s).get("cells") or []) for s in strategies(summary, population)}
    cells = max(counts, default=0)
    if cells > 1:
        return f" (mean ± 1 SE over {cells} cells)"
    return " (1 cell, no error band)" if cells == 1 else ""


def _combined_ctr_figure(figure_class: type[Figure], summary: Summary, colors: Mapping[str, str]) -> Figure:
    labels = populations(summary)
    columns = min(3, len(labels))
    rows = math.ceil(len(labels) / columns)
    figure = figure_class(figsize=(4.6 * columns, 3.4 * rows + 0.8), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False, sharex=True)
    for index, axes in enumerate(grid.flat):
        if index >= len(labels):
            axes.set_visible(False)
            continue
        for name in strategies(summary, labels[index]):
            _draw_series(axes, strategy_result(summary, labels[index], name), "ctr", 100.0, name, colors[name])
        _style_axes(axes, summary, "CTR (%)", labels[index])
    label_to_line: dict[str, Line2D] = {}
    for axes in grid.flat:
        for line in axes.get_lines():
            label_to_line.setdefault(str(line.get_label()), line)
    names = [name for name in strategies(summary) if name in label_to_line]
    if names:
        lines = [label_to_line[name] for name in names]
        figure.legend(lines, names, loc="outside lower center", ncols=min(5, len(names)), frameon=False)
    figure.suptitle("Pool CTR per iteration, all populations", fontsize="large")
    return figure


def _save(figure: Figure, path: Path) -> Path:
    try:
        figure.savefig(path, dpi=_DPI, format="png")
    except OSError as exc:
        raise StorageError(f"cannot write the plot {path}: {exc}; check the path and permissions") from exc
    return path
