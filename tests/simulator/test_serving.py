import numpy as np
import pytest

from clickloop.core.items import ItemStats
from clickloop.errors import ConfigurationError, UnknownIdError
from clickloop.simulator.click_model import ClickModel, expected_pool_ctr, simulate
from clickloop.simulator.serving import ThompsonServing, UniformServing, make_serving, simulate_served

MODEL = ClickModel()
# one persona; two excellent items among eighteen poor ones
SCORES = np.array([[10.0, 9.5] + [3.0] * 18])


def test_uniform_serving_is_the_paper_simulator():
    a = simulate_served(SCORES, MODEL, 2000, np.random.default_rng(5), UniformServing())
    b = simulate(SCORES, MODEL, 2000, np.random.default_rng(5))
    assert a.sessions_with_click == b.sessions_with_click
    assert a.impressions.tolist() == b.impressions.tolist()


def test_thompson_learns_to_show_the_good_items():
    n = 5000
    uniform = simulate_served(SCORES, MODEL, n, np.random.default_rng(1), UniformServing())
    thompson = simulate_served(SCORES, MODEL, n, np.random.default_rng(1), ThompsonServing())
    assert uniform.pool_ctr == pytest.approx(expected_pool_ctr(SCORES, MODEL), abs=0.02)
    assert thompson.pool_ctr > 2 * uniform.pool_ctr
    assert thompson.impressions.sum() == n * MODEL.k_shown
    assert thompson.impressions[:2].sum() > 0.4 * n  # the two good items are shown most


def test_thompson_starts_from_prior_stats():
    scores = np.array([[6.0] * 5])
    prior = [ItemStats(10000, 5000)] + [ItemStats(10000, 10)] * 4  # item 0 known to be far better
    result = simulate_served(scores, ClickModel(k_shown=1), 200, np.random.default_rng(0), ThompsonServing(), prior)
    assert result.impressions[0] == 200


def test_thompson_is_reproducible_with_a_seed():
    a = simulate_served(SCORES, MODEL, 1000, np.random.default_rng(9), ThompsonServing(batch_size=10))
    b = simulate_served(SCORES, MODEL, 1000, np.random.default_rng(9), ThompsonServing(batch_size=10))
    assert a.clicks.tolist() == b.clicks.tolist()


def test_pooled_prior_explores_a_new_item_less():
    # four items well measured at their true CTR (score 6.6: about 5% at K = 1) and a new one as good
    scores = np.array([[6.6] * 5])
    known = [ItemStats(2000, 100)] * 4 + [ItemStats()]

    def new_item_impressions(strength):
        policy = ThompsonServing(prior_strength=strength)
        model = ClickModel(k_shown=1)
        return sum(
            simulate_served(scores, model, 300, np.random.default_rng(seed), policy, known).impressions[4]
            for seed in range(10)
        )

    # Beta(1, 1) makes the new item look like a 50% CTR until it has been shown dozens of times
    assert new_item_impressions(None) > 1.5 * new_item_impressions(30)
    assert ThompsonServing(prior_strength=30).prior_for(known).alpha < 2


def test_bad_prior_strength():
    with pytest.raises(ConfigurationError, match="strength"):
        ThompsonServing(prior_strength=0)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_bad_batch_size(batch_size):
    with pytest.raises(ConfigurationError, match="batch_size"):
        ThompsonServing(batch_size=batch_size)


def test_prior_stats_must_match_the_pool():
    with pytest.raises(ConfigurationError, match="prior_stats has 2 entries for a pool of 20"):
        simulate_served(SCORES, MODEL, 10, np.random.default_rng(0), ThompsonServing(), [ItemStats()] * 2)


def test_bad_sessions_fail_before_simulating():
    with pytest.raises(ConfigurationError, match="n_sessions"):
        simulate_served(SCORES, MODEL, 0, np.random.default_rng(0), ThompsonServing())


def test_make_serving_lists_valid_ids():
    assert make_serving("thompson").name == "thompson"
    with pytest.raises(UnknownIdError, match="uniform, thompson"):
        make_serving("greedy")
