"""Tables from a ``summary.json``: the paper's Table 5, per-iteration series, z-tests and LLM accounting.

Pure string builders: each takes the parsed summary (shape in :mod:`clickloop.report.stats`) and returns
Markdown (or, for :func:`table5_plain`, fixed-width text). CTRs arrive as fractions and are shown as
percentages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from clickloop.errors import ConfigurationError
from clickloop.report.stats import (
    PairwiseTest,
    Summary,
    avg_ctr,
    incomplete_results,
    last_ctr,
    n_iterations,
    populations,
    strategies,
    strategy_result,
)

MISSING = "–"
"""Shown where a population has no result for a strategy (or no iteration after IP_0)."""

INCOMPLETE_MARK = "†"

_ROLE_ORDER = ("generator", "judge")
_LLM_FIELDS = (
    ("calls", "Calls"),
    ("cache_hits", "Cache hits"),
    ("prompt_tokens", "Prompt tokens"),
    ("completion_tokens", "Completion tokens"),
    ("seconds", "Seconds"),
)

Cell = tuple[float | None, float | None]  # (Avg, Last), fractions


# --------------------------------------------------------------------------- Table 5


def table5(summary: Summary) -> str:
    """The paper's Table 5 as Markdown: one row per population, "Avg" and "Last" CTR per strategy.

    "Avg": mean pool CTR over IP_1..IP_I; "Last": CTR of IP_I; both as percentages to one decimal. The best
    Avg and the best Last of each row are bold (every tie at the shown precision). Columns follow
    :data:`~clickloop.report.stats.STRATEGY_ORDER`. Values from a strategy that stopped early carry a
    ``†`` and a footnote below the table.
    """
    names, rows, incomplete = _table5_values(summary)
    header = ["Population"] + [f"{name} {kind}" for name in names for kind in ("Avg", "Last")]
    body = []
    for population, cells in rows:
        best = _best_per_kind(cells)
        line = [_escape(population)]
        for name, cell in zip(names, cells, strict=True):
            for kind, value in enumerate(cell):
                text = _percent(value) + (INCOMPLETE_MARK if (population, name) in incomplete else "")
                line.append(f"**{text}**" if value is not None and _rounded(value) == best[kind] else text)
        body.append(line)
    table = markdown_table(header, body, align=["l"] + ["r"] * (len(header) - 1))
    return table + _incomplete_footnote(summary)


def table5_plain(summary: Summary) -> str:
    """Table 5 as fixed-width text for a terminal; the best Avg and Last of each row end in ``*``."""
    names, rows, incomplete = _table5_values(summary)
    label_width = max([len("Population"), *(len(population) for population, _ in rows)])
    # each value: the number right-aligned, then one slot for the best mark and one for the incomplete mark
    value_width = max([8, *((len(name) + 3) // 2 for name in names)])
    group_width = 2 * value_width
    lines = [
        "Population".ljust(label_width) + "".join(f"{name:>{group_width - 2}}  " for name in names),
        " " * label_width + "".join(f"{'Avg':>{value_width - 2}}  {'Last':>{value_width - 2}}  " for _ in names),
    ]
    for population, cells in rows:
        best = _best_per_kind(cells)
        line = population.ljust(label_width)
        for name, cell in zip(names, cells, strict=True):
            for kind, value in enumerate(cell):
                line += _percent(value, sign=False).rjust(value_width - 2)
                line += "*" if value is not None and _rounded(value) == best[kind] else " "
                line += INCOMPLETE_MARK if (population, name) in incomplete else " "
        lines.append(line.rstrip())
    lines = [line.rstrip() for line in lines]
    lines.append("CTR in %; Avg = mean over IP_1..IP_I, Last = IP_I; * best in row")
    return "\n".join(lines) + _incomplete_footnote(summary)


# --------------------------------------------------------------------------- per-iteration series

Metric = Literal["ctr", "mean_score"]


def iteration_table(summary: Summary, population: str, metric: Metric = "ctr") -> str:
    """Per-iteration series of one population as Markdown: one row per pool IP_i, one column per strategy.

    ``metric="ctr"``: pool CTR in percent to one decimal; ``"mean_score"``: mean relevance score (1-10)
    to two decimals. Both are means over cells (topics x seeds).
    """
    if metric not in ("ctr", "mean_score"):
        raise ConfigurationError(f"metric ({metric!r}) must be 'ctr' or 'mean_score'")
    names = strategies(summary, population)
    series = [strategy_result(summary, population, name)[metric] for name in names]
    length = max([n_iterations(summary) + 1, *(len(values) for values in series)])
    body = []
    for index in range(length):
        row = [f"IP_{index}"]
        for values in series:
            if index >= len(values):
                row.append(MISSING)
            else:
                row.append(f"{100 * values[index]:.1f}" if metric == "ctr" else f"{values[index]:.2f}")
        body.append(row)
    return markdown_table(["Pool", *names], body, align=["l"] + ["r"] * len(names))


# --------------------------------------------------------------------------- z-tests


def ztest_table(rows: Sequence[PairwiseTest]) -> str:
    """Rows of :func:`~clickloop.report.stats.pairwise_tests` as Markdown.

    CTRs in percent (summed clicks / summed sessions), Δ in percentage points (A - B), z, two-sided p and
    stars: ``***`` p < .001, ``**`` p < .01, ``*`` p < .05.
    """
    header = ["A", "B", "CTR A (%)", "CTR B (%)", "Δ (pp)", "z", "p", ""]
    body = [
        [
            row.a,
            row.b,
            f"{100 * row.ctr_a:.2f}",
            f"{100 * row.ctr_b:.2f}",
            f"{100 * (row.ctr_a - row.ctr_b):+.2f}",
            f"{row.z:.2f}",
            format_p(row.p),
            _stars(row.p),
        ]
        for row in rows
    ]
    return markdown_table(header, body, align=["l", "l", "r", "r", "r", "r", "r", "l"])


def format_p(p: float) -> str:
    """A p-value for a table: ``<0.001`` below one in a thousand, else three decimals."""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


# --------------------------------------------------------------------------- LLM accounting


def llm_table(summary: Summary) -> str:
    """LLM use per strategy and role (``generator``, ``judge``, ...), summed over populations, as Markdown.

    Columns: calls, cache hits, prompt and completion tokens, and wall-clock seconds spent in the backend.
    A strategy without recorded accounting is left out; with none at all a one-line note is returned.
    """
    totals: dict[str, dict[str, dict[str, float]]] = {}
    for population in populations(summary):
        for name in strategies(summary, population):
            llm = strategy_result(summary, population, name).get("llm")
            for role, counts in (llm or {}).items():
                if isinstance(counts, Mapping):
                    target = totals.setdefault(name, {}).setdefault(role, dict.fromkeys(_field_keys(), 0.0))
                    for key in _field_keys():
                        target[key] += _as_float(counts.get(key))
    if not totals:
        return "_No LLM accounting recorded in summary.json._"
    body = []
    grand = dict.fromkeys(_field_keys(), 0.0)
    for name in [n for n in strategies(summary) if n in totals]:
        for role in _ordered_roles(totals[name]):
            counts = totals[name][role]
            body.append([name, role, *(_format_count(key, counts[key]) for key in _field_keys())])
            for key in _field_keys():
                grand[key] += counts[key]
    body.append(["**Total**", "", *(f"**{_format_count(key, grand[key])}**" for key in _field_keys())])
    header = ["Strategy", "Role", *(title for _, title in _LLM_FIELDS)]
    return markdown_table(header, body, align=["l", "l"] + ["r"] * len(_LLM_FIELDS))


# --------------------------------------------------------------------------- Markdown helpers


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str] | None = None) -> str:
    """A GitHub-flavoured Markdown table; ``align`` holds ``"l"``/``"r"``/``"c"`` per column (default left)."""
    rule = {"l": "---", "r": "---:", "c": ":---:"}
    alignments = list(align) if align is not None else ["l"] * len(header)
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(rule[a] for a in alignments) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- helpers


def _table5_values(summary: Summary) -> tuple[list[str], list[tuple[str, list[Cell]]], set[tuple[str, str]]]:
    names = strategies(summary)
    rows: list[tuple[str, list[Cell]]] = []
    for population in populations(summary):
        present = set(strategies(summary, population))
        cells: list[Cell] = []
        for name in names:
            if name in present:
                result = strategy_result(summary, population, name)
                cells.append((avg_ctr(result), last_ctr(result)))
            else:
                cells.append((None, None))
        rows.append((population, cells))
    incomplete = {(population, name) for population, name, _ in incomplete_results(summary)}
    return names, rows, incomplete


def _best_per_kind(cells: Sequence[Cell]) -> tuple[float | None, float | None]:
    """Best rounded Avg and best rounded Last of a row; rounding first makes shown ties bold together."""
    best: list[float | None] = []
    for kind in (0, 1):
        values = [round(100 * value, 1) for value in (cell[kind] for cell in cells) if value is not None]
        best.append(max(values) if values else None)
    return best[0], best[1]


def _incomplete_footnote(summary: Summary) -> str:
    incomplete = incomplete_results(summary)
    if not incomplete:
        return ""
    expected = n_iterations(summary) + 1
    parts = [
        f"{name} on {population}: {present} of {expected} pools (IP_0..IP_{present - 1})"
        for population, name, present in incomplete
    ]
    return f"\n\n{INCOMPLETE_MARK} Incomplete, values use the pools present: " + "; ".join(parts) + "."


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


def _percent(value: float | None, sign: bool = True) -> str:
    if value is None:
        return MISSING
    return f"{100 * value:.1f}" + ("%" if sign else "")


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _stars(p: float) -> str:
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def _field_keys() -> list[str]:
    return [key for key, _ in _LLM_FIELDS]


def _ordered_roles(roles: Mapping[str, Any]) -> list[str]:
    return [r for r in _ROLE_ORDER if r in roles] + sorted(set(roles) - set(_ROLE_ORDER))


def _as_float(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _format_count(key: str, value: float) -> str:
    return f"{value:,.1f}" if key == "seconds" else f"{int(value):,}"
