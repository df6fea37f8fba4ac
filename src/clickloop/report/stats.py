"""Numbers drawn from an experiment's ``summary.json``: accessors, z-tests, Wilson intervals, standard errors.

Everything here is pure: functions take the parsed summary (the mapping the experiment runner writes to
``RUN/summary.json``) and return values. **CTRs are fractions in [0, 1] in this module**; only the tables
and plots turn them into percentages.

The summary shape, documented once here::

    {"config": {...}, "versions": {...}, "iterations": I,
     "results": {POPULATION: {STRATEGY: {
         "ctr": [...],          # pool CTR of IP_0..IP_I, fraction, mean over cells (topics x seeds)
         "mean_score": [...],   # mean relevance score of the pool (1-10), mean over cells
         "avg_ctr": x,          # mean of ctr[1:]: the paper's "Avg." in Table 5
         "last_ctr": x,         # ctr[-1]: the paper's "Last" (CTR of IP_15) in Table 5
         "sessions": [...], "clicks": [...],   # per iteration, summed over cells
         "cells": [{"topic", "seed", "ctr", "mean_score"}, ...],
         "failed_cells": [...],  # optional: cells whose last attempt failed, left out of the means
         "llm": {ROLE: {"calls", "cache_hits", "prompt_tokens", "completion_tokens", "seconds"}}}}}}

A partially finished run may hold fewer than I+1 entries for some strategies; the helpers here use what is
there and :func:`incomplete_results` says where.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral
from typing import Any, Literal, NamedTuple

from clickloop.errors import ConfigurationError, UnknownIdError, ValidationError

Summary = Mapping[str, Any]
"""A parsed ``summary.json`` (see the module docstring)."""

STRATEGY_ORDER: tuple[str, ...] = ("no-drop", "random-ctr", "partial-ctr", "full-ctr", "explore-exploit")
"""The paper's method order (Table 5 columns, Figure 4 legend); other strategies follow alphabetically."""

_SERIES_KEYS = ("ctr", "mean_score", "sessions", "clicks")


# --------------------------------------------------------------------------- summary accessors


def ordered_strategies(names: Iterable[str]) -> list[str]:
    """``names`` in the paper's order (:data:`STRATEGY_ORDER`), then any others alphabetically."""
    unique = set(names)
    known = [name for name in STRATEGY_ORDER if name in unique]
    return known + sorted(unique - set(STRATEGY_ORDER))


def validate_summary(summary: object) -> None:
    """Raise :class:`ValidationError` naming the first problem unless ``summary`` has the runner's shape.

    Only the per-iteration series are required; ``cells``, ``llm``, ``config`` and ``versions`` are optional.
    """
    if not isinstance(summary, Mapping):
        raise ValidationError(f"summary must be a JSON object; received {type(summary).__name__}")
    results = summary.get("results")
    if not isinstance(results, Mapping):
        raise ValidationError("summary has no 'results' object; expected {population: {strategy: {...}}}")
    for population, by_strategy in results.items():
        if not isinstance(by_strategy, Mapping):
            raise ValidationError(f"results[{population!r}] must be an object of strategies")
        for strategy, result in by_strategy.items():
            where = f"results[{population!r}][{strategy!r}]"
            if not isinstance(result, Mapping):
                raise ValidationError(f"{where} must be an object")
            for key in _SERIES_KEYS:
                series = result.get(key)
                if not isinstance(series, list) or not all(_is_number(v) for v in series):
                    raise ValidationError(f"{where}[{key!r}] must be a list of numbers; received {series!r:.80}")
    iterations = summary.get("iterations")
    if iterations is not None and (not isinstance(iterations, int) or iterations < 0):
        raise ValidationError(f"summary 'iterations' must be an integer >= 0; received {iterations!r}")


def populations(summary: Summary) -> list[str]:
    """Population labels in the order the runner wrote them (e.g. ``"Quality"``, ``"3 Preference"``)."""
    return list(summary["results"])


def strategies(summary: Summary, population: str | None = None) -> list[str]:
    """Strategies of one population, or of all populations when ``population`` is None, in paper order."""
    if population is None:
        return ordered_strategies(name for by_strategy in summary["results"].values() for name in by_strategy)
    return ordered_strategies(_population(summary, population))


def strategy_result(summary: Summary, population: str, strategy: str) -> Mapping[str, Any]:
    """The result object of one (population, strategy); :class:`UnknownIdError` lists the valid ids."""
    by_strategy = _population(summary, population)
    if strategy not in by_strategy:
        raise UnknownIdError("strategy", strategy, ordered_strategies(by_strategy), f"population {population!r}")
    return by_strategy[strategy]


def n_iterations(summary: Summary) -> int:
    """I, the number of refinement iterations (the paper uses 15); series hold I+1 entries, IP_0..IP_I."""
    iterations = summary.get("iterations")
    if isinstance(iterations, int):
        return iterations
    lengths = [len(r["ctr"]) for by_strategy in summary["results"].values() for r in by_strategy.values()]
    return max(lengths, default=1) - 1


def incomplete_results(summary: Summary) -> list[tuple[str, str, int]]:
    """``(population, strategy, pools_present)`` for every series shorter than I+1 pools (IP_0..IP_I)."""
    expected = n_iterations(summary) + 1
    return [
        (population, strategy, len(result["ctr"]))
        for population in populations(summary)
        for strategy, result in ((s, strategy_result(summary, population, s)) for s in strategies(summary, population))
        if len(result["ctr"]) < expected
    ]


def failed_cells(summary: Summary) -> list[tuple[str, str, list[str]]]:
    """``(population, strategy, cell paths)`` where the runner recorded cells whose last attempt failed.

    Failed cells are left out of the means, so such a strategy rests on fewer cells than planned.
    """
    rows = []
    for population in populations(summary):
        for strategy in strategies(summary, population):
            failed = strategy_result(summary, population, strategy).get("failed_cells") or []
            if failed:
                rows.append((population, strategy, [str(path) for path in failed]))
    return rows


def avg_ctr(result: Mapping[str, Any]) -> float | None:
    """Table 5 "Avg.": mean pool CTR (fraction) over IP_1..IP_I; None when only IP_0 exists."""
    stored = result.get("avg_ctr")
    if isinstance(stored, int | float) and not isinstance(stored, bool) and len(result["ctr"]) > 1:
        return float(stored)
    after_initial = result["ctr"][1:]
    return statistics.fmean(after_initial) if after_initial else None


def last_ctr(result: Mapping[str, Any]) -> float | None:
    """Table 5 "Last": pool CTR (fraction) of the last pool present (IP_I when complete); None when empty."""
    stored = result.get("last_ctr")
    if isinstance(stored, int | float) and not isinstance(stored, bool):
        return float(stored)
    return float(result["ctr"][-1]) if result["ctr"] else None


def best_strategy(summary: Summary, population: str) -> str | None:
    """The strategy with the highest :func:`last_ctr` in ``population`` (first in paper order on ties)."""
    scored: list[tuple[float, str]] = []
    for name in strategies(summary, population):
        value = last_ctr(strategy_result(summary, population, name))
        if value is not None:
            scored.append((value, name))
    if not scored:
        return None
    best_value = max(value for value, _ in scored)
    return next(name for value, name in scored if value == best_value)


def standard_errors(result: Mapping[str, Any], key: str) -> list[float | None]:
    """Per-iteration standard error of the mean over cells (topics x seeds) for ``key`` (``ctr``/``mean_score``).

    Same unit as the series (CTR fraction, score points). None where fewer than 2 cells reach that iteration.
    """
    cells = [cell[key] for cell in result.get("cells") or [] if isinstance(cell.get(key), list)]
    length = max((len(values) for values in cells), default=0)
    errors: list[float | None] = []
    for index in range(length):
        values = [float(values[index]) for values in cells if index < len(values)]
        errors.append(statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None)
    return errors


# --------------------------------------------------------------------------- tests for proportions


def two_proportion_ztest(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """Two-sided z-test for two proportions with the pooled proportion (the paper's "Z-test for proportions").

    ``x1``/``n1``: clicks / sessions of the first arm (integers, ``0 <= x1 <= n1``, ``n1 > 0``); likewise
    ``x2``/``n2``. Returns ``(z, p)``: ``z = (x1/n1 - x2/n2) / sqrt(P(1-P)(1/n1 + 1/n2))`` with the pooled
    ``P = (x1+x2)/(n1+n2)``, positive when the first arm has the higher CTR, and the two-sided p-value in
    [0, 1]. When ``P`` is 0 or 1 both arms are identical and ``(0.0, 1.0)`` is returned.
    """
    _check_counts(x1, n1, "x1", "n1")
    _check_counts(x2, n2, "x2", "n2")
    pooled = (x1 + x2) / (n1 + n2)
    standard_error = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    if standard_error == 0.0:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / standard_error
    return z, min(1.0, math.erfc(abs(z) / math.sqrt(2.0)))


def wilson_interval(x: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` for the proportion ``x / n`` (fractions in [0, 1]).

    ``z``: the normal quantile (> 0); 1.96 gives a 95% interval.
    """
    _check_counts(x, n, "x", "n")
    if not (_is_number(z) and math.isfinite(z) and z > 0):
        raise ConfigurationError(f"z ({z!r}) must be a finite number > 0; use 1.96 for a 95% interval")
    p = x / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denominator
    half_width = z / denominator * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n))
    return max(0.0, center - half_width), min(1.0, center + half_width)


class PairwiseTest(NamedTuple):
    """One row of :func:`pairwise_tests`: strategy ``a`` against ``b``.

    ``ctr_a``/``ctr_b``: summed clicks / summed sessions (fractions); ``z`` > 0 when ``a`` is ahead;
    ``p``: two-sided p-value.
    """

    a: str
    b: str
    ctr_a: float
    ctr_b: float
    z: float
    p: float


Which = Literal["last", "all"]


def pairwise_tests(
    summary: Summary, population: str, which: Which = "last", against: str | None = None
) -> list[PairwiseTest]:
    """Z-test every pair of strategies of ``population`` on summed clicks/sessions (cells pooled).

    ``which="last"``: the last pool (IP_I); ``"all"``: every pool after IP_0 (IP_1..IP_I) summed.
    ``against``: when given, only ``(against, other)`` pairs; otherwise every unordered pair in paper order.
    A strategy that stopped early is compared on the iterations both arms have; a pair with no such
    iteration is left out. Sessions are treated as independent trials (the cells' clustering is ignored)
    and no multiple-comparison correction is applied.
    """
    if which not in ("last", "all"):
        raise ConfigurationError(f"which ({which!r}) must be 'last' (IP_I only) or 'all' (IP_1..IP_I summed)")
    names = strategies(summary, population)
    if against is None:
        pairs = list(itertools.combinations(names, 2))
    else:
        strategy_result(summary, population, against)
        pairs = [(against, other) for other in names if other != against]
    rows = []
    for a, b in pairs:
        result_a, result_b = strategy_result(summary, population, a), strategy_result(summary, population, b)
        common = min(
            len(result_a["clicks"]), len(result_a["sessions"]), len(result_b["clicks"]), len(result_b["sessions"])
        )
        indices = [common - 1] if which == "last" else list(range(1, common))
        if not indices or indices[0] < 0:
            continue
        x1, n1 = _summed(result_a, indices)
        x2, n2 = _summed(result_b, indices)
        z, p = two_proportion_ztest(x1, n1, x2, n2)
        rows.append(PairwiseTest(a, b, x1 / n1, x2 / n2, z, p))
    return rows


# --------------------------------------------------------------------------- helpers


def _population(summary: Summary, population: str) -> Mapping[str, Any]:
    results = summary["results"]
    if population not in results:
        raise UnknownIdError("population", population, list(results))
    return results[population]


def _summed(result: Mapping[str, Any], indices: Sequence[int]) -> tuple[int, int]:
    return sum(int(result["clicks"][i]) for i in indices), sum(int(result["sessions"][i]) for i in indices)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_counts(x: int, n: int, x_name: str, n_name: str) -> None:
    for name, value in ((x_name, x), (n_name, n)):
        # Integral admits numpy integers; bool is an int subclass but never a count
        if not isinstance(value, Integral) or isinstance(value, bool):
            raise TypeError(f"{name} must be an integer count; received {type(value).__name__} {value!r}")
    if n <= 0:
        raise ConfigurationError(f"{n_name} ({n}) must be > 0: a proportion needs at least one session")
    if x < 0:
        raise ConfigurationError(f"{x_name} ({x}) must be >= 0: clicks cannot be negative")
    if x > n:
        raise ConfigurationError(f"{x_name} ({x}) must not exceed {n_name} ({n}): clicks cannot outnumber sessions")
