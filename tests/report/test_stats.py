import math
from statistics import NormalDist

import pytest

from clickloop.errors import UnknownIdError, ValidationError
from clickloop.report.stats import (
    avg_ctr,
    best_strategy,
    failed_cells,
    incomplete_results,
    last_ctr,
    ordered_strategies,
    pairwise_tests,
    standard_errors,
    two_proportion_ztest,
    validate_summary,
    wilson_interval,
)


def result(clicks, sessions, **extra):
    """One strategy's result from per-iteration clicks and sessions (CTR = clicks / sessions)."""
    ctr = [x / n for x, n in zip(clicks, sessions, strict=True)]
    return {"ctr": ctr, "mean_score": [5.0] * len(ctr), "clicks": clicks, "sessions": sessions, **extra}


def summary_of(by_strategy, iterations=2):
    return {"iterations": iterations, "results": {"Quality": by_strategy}}


# --------------------------------------------------------------------------- two_proportion_ztest


def test_ztest_matches_hand_computation():
    # p1 = 0.06, p2 = 0.05, pooled P = 550/10000 = 0.055
    z, p = two_proportion_ztest(300, 5000, 250, 5000)
    expected_z = 0.01 / math.sqrt(0.055 * 0.945 * (2 / 5000))
    assert z == pytest.approx(expected_z, rel=1e-12)
    assert z == pytest.approx(2.1932, abs=1e-4)
    assert p == pytest.approx(2 * (1 - NormalDist().cdf(expected_z)), rel=1e-9)
    assert p == pytest.approx(0.02829, abs=1e-5)


def test_ztest_unequal_sample_sizes():
    z, p = two_proportion_ztest(45, 300, 30, 400)
    pooled = 75 / 700
    expected_z = (0.15 - 0.075) / math.sqrt(pooled * (1 - pooled) * (1 / 300 + 1 / 400))
    assert z == pytest.approx(expected_z, rel=1e-12)
    assert p == pytest.approx(2 * NormalDist().cdf(-expected_z), rel=1e-9)


def test_ztest_is_antisymmetric_in_z_and_symmetric_in_p():
    z_ab, p_ab = two_proportion_ztest(120, 1000, 95, 900)
    z_ba, p_ba = two_proportion_ztest(95, 900, 120, 1000)
    assert z_ab == pytest.approx(-z_ba)
    assert p_ab == pytest.approx(p_ba)
    assert z_ab > 0


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"),
    [(0, 10, 10, 10), (0, 1, 0, 1), (5, 5, 5, 5), (1, 5000, 4999, 5000), (300, 5000, 300, 5000), (7, 9, 1, 11)],
)
def test_ztest_p_is_a_probability(x1, n1, x2, n2):
    z, p = two_proportion_ztest(x1, n1, x2, n2)
    assert math.isfinite(z)
    assert 0.0 <= p <= 1.0


@pytest.mark.parametrize(("x1", "n1", "x2", "n2"), [(0, 10, 0, 20), (10, 10, 20, 20), (3, 10, 6, 20)])
def test_ztest_equal_proportions_give_z_zero_p_one(x1, n1, x2, n2):
    assert two_proportion_ztest(x1, n1, x2, n2) == pytest.approx((0.0, 1.0))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((1, 0, 1, 10), r"n1 \(0\) must be > 0"),
        ((1, 10, 1, -5), r"n2 \(-5\) must be > 0"),
        ((6, 5, 1, 10), r"x1 \(6\) must not exceed n1 \(5\)"),
        ((1, 10, 11, 10), r"x2 \(11\) must not exceed n2 \(10\)"),
        ((-1, 10, 1, 10), r"x1 \(-1\) must be >= 0"),
    ],
)
def test_ztest_rejects_invalid_counts(args, match):
    with pytest.raises(ValueError, match=match):
        two_proportion_ztest(*args)


@pytest.mark.parametrize(
    ("args", "match"),
    [((0.5, 10, 1, 10), r"x1 must be an integer count; received float"), ((1, True, 1, 10), r"n1 must be an integer")],
)
def test_ztest_rejects_non_integer_counts(args, match):
    with pytest.raises(TypeError, match=match):
        two_proportion_ztest(*args)


# --------------------------------------------------------------------------- wilson_interval


def test_wilson_interval_known_value():
    low, high = wilson_interval(50, 100)
    assert (low, high) == pytest.approx((0.4038, 0.5962), abs=1e-4)


@pytest.mark.parametrize(("x", "n"), [(0, 10), (10, 10), (3, 7), (300, 5000)])
def test_wilson_interval_contains_the_proportion_and_stays_in_unit_range(x, n):
    low, high = wilson_interval(x, n)
    assert 0.0 <= low <= x / n <= high <= 1.0
    assert low < high


def test_wilson_interval_narrows_with_smaller_z():
    wide, narrow = wilson_interval(30, 100, z=2.576), wilson_interval(30, 100, z=1.0)
    assert wide[0] < narrow[0] and narrow[1] < wide[1]


@pytest.mark.parametrize(
    ("x", "n", "z", "match"),
    [(1, 0, 1.96, r"n \(0\) must be > 0"), (5, 4, 1.96, r"x \(5\) must not exceed n \(4\)"), (1, 4, 0, r"z \(0\)")],
)
def test_wilson_interval_rejects_invalid_input(x, n, z, match):
    with pytest.raises(ValueError, match=match):
        wilson_interval(x, n, z)


# --------------------------------------------------------------------------- pairwise_tests


@pytest.fixture
def three_strategies():
    return summary_of(
        {
            "full-ctr": result([50, 60, 70], [1000, 1000, 1000]),
            "no-drop": result([50, 50, 50], [1000, 1000, 1000]),
            "explore-exploit": result([50, 80, 100], [1000, 1000, 1000]),
        }
    )


def test_pairwise_last_compares_every_pair_in_paper_order(three_strategies):
    rows = pairwise_tests(three_strategies, "Quality", "last")
    assert [(row.a, row.b) for row in rows] == [
        ("no-drop", "full-ctr"),
        ("no-drop", "explore-exploit"),
        ("full-ctr", "explore-exploit"),
    ]
    first = rows[0]
    assert (first.ctr_a, first.ctr_b) == pytest.approx((0.05, 0.07))
    assert (first.z, first.p) == pytest.approx(two_proportion_ztest(50, 1000, 70, 1000))


def test_pairwise_all_sums_the_iterations_after_ip0(three_strategies):
    rows = pairwise_tests(three_strategies, "Quality", "all", against="explore-exploit")
    assert [(row.a, row.b) for row in rows] == [("explore-exploit", "no-drop"), ("explore-exploit", "full-ctr")]
    versus_full = rows[1]
    assert (versus_full.ctr_a, versus_full.ctr_b) == pytest.approx((180 / 2000, 130 / 2000))
    assert (versus_full.z, versus_full.p) == pytest.approx(two_proportion_ztest(180, 2000, 130, 2000))
    assert versus_full.z > 0


def test_pairwise_uses_common_iterations_for_a_strategy_that_stopped_early():
    summary = summary_of(
        {"full-ctr": result([50, 60, 70], [1000] * 3), "explore-exploit": result([50, 90], [1000] * 2)}
    )
    (last,) = pairwise_tests(summary, "Quality", "last")
    assert (last.ctr_a, last.ctr_b) == pytest.approx((0.06, 0.09))
    only_ip0 = summary_of({"full-ctr": result([50, 60], [1000] * 2), "explore-exploit": result([50], [1000])})
    assert pairwise_tests(only_ip0, "Quality", "all") == []


@pytest.mark.parametrize(
    ("population", "which", "against", "error", "match"),
    [
        ("Quality", "first", None, ValueError, r"which \('first'\) must be 'last'"),
        ("Price", "last", None, UnknownIdError, r"unknown population 'Price'; expected one of: Quality"),
        ("Quality", "last", "ucb", UnknownIdError, r"unknown strategy 'ucb'"),
    ],
)
def test_pairwise_rejects_invalid_arguments(three_strategies, population, which, against, error, match):
    with pytest.raises(error, match=match):
        pairwise_tests(three_strategies, population, which, against=against)


# --------------------------------------------------------------------------- summary accessors


def test_ordered_strategies_puts_paper_order_first_then_alphabetical():
    names = ["zeta", "explore-exploit", "alpha", "no-drop", "full-ctr", "partial-ctr", "random-ctr"]
    assert ordered_strategies(names) == [
        "no-drop",
        "random-ctr",
        "partial-ctr",
        "full-ctr",
        "explore-exploit",
        "alpha",
        "zeta",
    ]


def test_avg_and_last_ctr_prefer_stored_values_and_fall_back_to_the_series():
    stored = {"ctr": [0.1, 0.2, 0.3], "avg_ctr": 0.25, "last_ctr": 0.3}
    assert (avg_ctr(stored), last_ctr(stored)) == (0.25, 0.3)
    computed = {"ctr": [0.1, 0.2, 0.4]}
    assert (avg_ctr(computed), last_ctr(computed)) == pytest.approx((0.3, 0.4))
    assert avg_ctr({"ctr": [0.1]}) is None
    assert last_ctr({"ctr": []}) is None


def test_best_strategy_by_last_ctr(three_strategies):
    assert best_strategy(three_strategies, "Quality") == "explore-exploit"


def test_standard_errors_over_cells():
    cells = [{"ctr": [0.1, 0.2]}, {"ctr": [0.3, 0.2]}, {"ctr": [0.2]}]
    errors = standard_errors({"cells": cells}, "ctr")
    assert errors[0] == pytest.approx(0.1 / math.sqrt(3))
    assert errors[1] == pytest.approx(0.0)
    assert standard_errors({"cells": [{"ctr": [0.1, 0.2]}]}, "ctr") == [None, None]
    assert standard_errors({}, "ctr") == []


def test_incomplete_results_lists_short_series(three_strategies):
    assert incomplete_results(three_strategies) == []
    three_strategies["results"]["Quality"]["full-ctr"] = result([50], [1000])
    assert incomplete_results(three_strategies) == [("Quality", "full-ctr", 1)]


def test_failed_cells_lists_the_runners_failed_cells(three_strategies):
    assert failed_cells(three_strategies) == []
    three_strategies["results"]["Quality"]["full-ctr"]["failed_cells"] = ["quality/full-ctr/spray-bottles/seed-2"]
    assert failed_cells(three_strategies) == [("Quality", "full-ctr", ["quality/full-ctr/spray-bottles/seed-2"])]


@pytest.mark.parametrize(
    ("summary", "match"),
    [
        ([], r"summary must be a JSON object; received list"),
        ({"iterations": 2}, r"summary has no 'results' object"),
        ({"results": {"Quality": []}}, r"results\['Quality'\] must be an object of strategies"),
        ({"results": {"Quality": {"full-ctr": {"ctr": [0.1]}}}}, r"\['mean_score'\] must be a list of numbers"),
        ({"results": {}, "iterations": -1}, r"'iterations' must be an integer >= 0"),
    ],
)
def test_validate_summary_names_the_problem(summary, match):
    with pytest.raises(ValidationError, match=match):
        validate_summary(summary)
