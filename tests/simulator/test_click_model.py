import math

import numpy as np
import pytest

from clickloop.errors import ConfigurationError
from clickloop.simulator.click_model import (
    ClickModel,
    expected_pool_ctr,
    simulate,
    simulate_loop,
    theoretical_ctr,
)

PAPER = ClickModel()


@pytest.mark.parametrize(
    ("score", "percent"),
    [(1, 0.4), (5, 5.2), (7, 17.2), (8, 28.9), (9, 44.2), (10, 60.6)],
)
def test_theoretical_ctr_matches_the_paper_curve(score, percent):
    assert round(100 * theoretical_ctr(score, PAPER), 1) == percent


def test_theoretical_ctr_depends_only_on_rs_minus_s_over_t():
    shifted = ClickModel(temperature=1.5, rejection_score=9.0)
    assert theoretical_ctr(8, shifted) == pytest.approx(theoretical_ctr(10, PAPER))


def test_expected_pool_ctr_equals_closed_form_for_equal_scores():
    scores = np.full((2, 5), 9.0)
    assert expected_pool_ctr(scores, PAPER) == pytest.approx(theoretical_ctr(9, PAPER))


@pytest.mark.parametrize("score", [4.0, 8.0, 10.0])
def test_simulated_pool_ctr_is_within_tolerance_of_closed_form(score):
    n = 200_000
    result = simulate(np.full((1, 5), score), PAPER, n, np.random.default_rng(7))
    p = theoretical_ctr(score, PAPER)
    assert abs(result.pool_ctr - p) < 4.5 * math.sqrt(p * (1 - p) / n)


def test_mixed_pool_and_personas_match_exact_expectation():
    scores = np.array([[1, 3, 6, 9, 10], [10, 8, 2, 2, 5]], dtype=float)
    n = 200_000
    result = simulate(scores, PAPER, n, np.random.default_rng(3))
    p = expected_pool_ctr(scores, PAPER)
    assert abs(result.pool_ctr - p) < 4.5 * math.sqrt(p * (1 - p) / n)
    # item 3 scores (9, 2) and dominates item 2's (6, 2) for both personas
    assert result.item_ctr[3] > result.item_ctr[2]


def test_impressions_are_uniform_and_clicks_consistent():
    n = 60_000
    result = simulate(np.full((1, 5), 7.0), PAPER, n, np.random.default_rng(1))
    assert result.impressions.sum() == 3 * n
    expected = 3 * n / 5
    assert np.all(np.abs(result.impressions - expected) < 5 * math.sqrt(expected))
    assert result.clicks.sum() == result.sessions_with_click
    assert np.all(result.clicks <= result.impressions)


def test_vectorised_agrees_with_plain_loop():
    scores = np.array([[2, 9, 5, 7, 10]], dtype=float)
    fast = simulate(scores, PAPER, 40_000, np.random.default_rng(11))
    slow = simulate_loop(scores, PAPER, 40_000, np.random.default_rng(12))
    assert fast.pool_ctr == pytest.approx(slow.pool_ctr, abs=0.015)
    assert np.allclose(fast.item_ctr, slow.item_ctr, atol=0.02)


def test_same_seed_same_result_and_k_equal_pool_size():
    scores = np.array([[2, 9, 5]], dtype=float)
    model = ClickModel(k_shown=3)
    a = simulate(scores, model, 1000, np.random.default_rng(5))
    b = simulate(scores, model, 1000, np.random.default_rng(5))
    assert a.sessions_with_click == b.sessions_with_click
    assert list(a.impressions) == [1000, 1000, 1000]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": 0}, "temperature"),
        ({"temperature": -1.5}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"k_shown": 0}, "k_shown"),
        ({"rejection_score": float("inf")}, "rejection_score"),
    ],
)
def test_invalid_click_model(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        ClickModel(**kwargs)


def test_k_shown_larger_than_pool_is_rejected_with_fix():
    with pytest.raises(ConfigurationError, match=r"k_shown \(4\) must not exceed the pool size \(3\)"):
        simulate(np.ones((1, 3)), ClickModel(k_shown=4), 10, np.random.default_rng(0))


@pytest.mark.parametrize("n", [0, -5])
def test_invalid_session_count(n):
    with pytest.raises(ConfigurationError, match="n_sessions"):
        simulate(np.ones((1, 5)), PAPER, n, np.random.default_rng(0))


def test_large_pool_path_matches_exact_expectation():
    # C(30, 5) subsets exceed the enumeration limit: the per-session key path runs
    scores = np.random.default_rng(2).uniform(1, 10, size=(2, 30))
    model = ClickModel(k_shown=5)
    n = 100_000
    result = simulate(scores, model, n, np.random.default_rng(4))
    assert result.impressions.sum() == 5 * n
    slow = simulate_loop(scores, model, 20_000, np.random.default_rng(5))
    assert result.pool_ctr == pytest.approx(slow.pool_ctr, abs=0.02)
