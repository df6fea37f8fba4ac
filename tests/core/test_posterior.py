import numpy as np
import pytest

from clickloop.core.items import ItemStats
from clickloop.core.posterior import (
    BetaPosterior,
    BetaPrior,
    pooled_prior,
    posteriors,
    prob_below_best,
    thompson_order,
    thompson_top_k,
)
from clickloop.errors import ConfigurationError


@pytest.mark.parametrize(
    ("alpha", "beta", "match"),
    [(0, 1, "alpha"), (1, -2, "beta"), (float("nan"), 1, "alpha"), ("1", 1, "alpha")],
)
def test_prior_rejects_bad_pseudo_counts(alpha, beta, match):
    with pytest.raises(ConfigurationError, match=match):
        BetaPrior(alpha, beta)


def test_posterior_adds_clicks_and_non_clicks_to_the_prior():
    post = BetaPrior(1, 1).posterior(ItemStats(100, 10))
    assert (post.alpha, post.beta) == (11, 91)
    assert post.mean == pytest.approx(11 / 102)
    low, high = post.interval(0.95)
    assert low < 0.10 < high and high - low < 0.15


def test_interval_narrows_with_impressions():
    small = BetaPrior().posterior(ItemStats(50, 5)).interval()
    large = BetaPrior().posterior(ItemStats(5000, 500)).interval()
    assert large[1] - large[0] < (small[1] - small[0]) / 5


def test_posterior_sd_matches_draws():
    post = BetaPosterior(30, 270)
    draws = np.random.default_rng(1).beta(30, 270, size=50000)
    assert post.sd == pytest.approx(draws.std(), rel=0.03)


def test_prob_below_best_is_near_one_only_for_clearly_worse_items():
    rng = np.random.default_rng(0)
    stats = [ItemStats(3000, 30), ItemStats(3000, 300), ItemStats(3000, 290)]
    p = prob_below_best(stats, rng)
    assert p[0] > 0.99  # 1% against 10%
    assert 0.2 < p[2] < 0.8  # 9.7% against 10%: not confidently worse
    assert 0.2 < p[1] < 0.8  # the best, compared with the runner-up


def test_prob_below_best_needs_evidence():
    rng = np.random.default_rng(0)
    few = prob_below_best([ItemStats(10, 0), ItemStats(10, 1)], rng)
    many = prob_below_best([ItemStats(1000, 0), ItemStats(1000, 100)], rng)
    assert few[0] < 0.9 < many[0]


def test_single_item_is_never_below_best():
    assert prob_below_best([ItemStats(100, 1)], np.random.default_rng(0)).tolist() == [0.0]


def test_thompson_order_prefers_the_better_item_in_proportion_to_evidence():
    rng = np.random.default_rng(3)
    stats = [ItemStats(200, 10), ItemStats(200, 30)]
    firsts = [thompson_order(stats, rng)[0] for _ in range(2000)]
    share = np.mean(np.array(firsts) == 1)
    assert 0.9 < share < 1.0  # mostly the 15% item, the 5% item still drawn sometimes


def test_thompson_top_k_returns_distinct_items_per_session():
    alpha, beta = posteriors([ItemStats(100, k * 5) for k in range(6)])
    shown = thompson_top_k(alpha, beta, 3, np.random.default_rng(0), n_sessions=500)
    assert shown.shape == (500, 3)
    assert all(len(set(row)) == 3 for row in shown.tolist())
    counts = np.bincount(shown.ravel(), minlength=6)
    assert counts[5] > counts[0]


@pytest.mark.parametrize("k", [0, 4])
def test_thompson_top_k_rejects_bad_k(k):
    alpha, beta = posteriors([ItemStats()] * 3)
    with pytest.raises(ConfigurationError, match="k"):
        thompson_top_k(alpha, beta, k, np.random.default_rng(0))


def test_pooled_prior_centres_on_the_pool_ctr():
    prior = pooled_prior([ItemStats(300, 30), ItemStats(100, 0), ItemStats()], strength=20)
    assert prior.alpha + prior.beta == pytest.approx(20)
    assert prior.alpha / (prior.alpha + prior.beta) == pytest.approx(31 / 402)
    # a new item's posterior mean is the pool's, not Beta(1, 1)'s 0.5
    alpha, beta = posteriors([ItemStats()], prior)
    assert alpha[0] / (alpha[0] + beta[0]) < 0.1


def test_pooled_prior_falls_back_before_any_impression():
    fallback = BetaPrior(2, 3)
    assert pooled_prior([ItemStats(), ItemStats()], 20, fallback) == fallback


@pytest.mark.parametrize("strength", [0, -1, float("inf"), True, "20"])
def test_pooled_prior_rejects_bad_strength(strength):
    with pytest.raises(ConfigurationError, match="strength"):
        pooled_prior([ItemStats(10, 1)], strength)
