"""``guided-ee``: explore-exploit where code handles the numbers and the LLM only writes text.

The paper's optimizer asks the LLM to read CTRs, find the best question, count questions per topic
and decide; only GPT-4 managed that (paper notes, Section 5). Here every decision is made in code on
Beta-Binomial posteriors of the items' clicks and impressions (:mod:`clickloop.core.posterior`; by
default summed over every iteration, ``history_weight`` discounts the earlier ones), and recorded on
the new item's provenance:

1. **Drop** only items that are confidently worse: at least ``min_impressions`` impressions and
   P(theta_i < theta_best other) >= ``drop_confidence``; or, so near-equal pools still turn over,
   ``patience_impressions`` impressions. ``min_impressions`` is low (20) on purpose: under adaptive
   serving (Thompson sampling) a bad item is shown ever less, so a high floor shields exactly the bad,
   new items while the drops fall on old, well-measured, good ones (``bench_policies.py`` measured it);
   the posterior already demands more evidence of an item that is not clearly worse.
   At most ``n_explore + n_exploit`` go, lowest posterior mean first, and as many new items come in,
   so |IP| stays put. With nothing to drop the pool is kept and no LLM call is made. The new items'
   ``dropped`` note lists each dropped id with its P(worse).
2. **Exploit** target by Thompson sampling over the kept items (``exploit_target="mean"``: the highest
   posterior mean CTR first), skipping targets whose aspect already has ``max_per_aspect`` live items
   (the paper's "more than 2 questions on that topic" rule, enforced by
   :class:`~clickloop.strategies.aspects.AspectGrouper`). The LLM sees no numbers: the ``n_ranked``
   items of the history with the highest posterior mean CTR, ordered from least to most clicked (what
   users like, as an order a small model can follow), the target and the items on its aspect; it
   writes one new item on that aspect. ``exploit_prompt="paper"`` writes it from explore-exploit's
   exploit prompt instead (the whole history with each item's latest CTR; the LLM picks the topic),
   so that only the writing differs from the paper's exploit step. ``exploit_candidates`` > 1 asks for
   that many questions in one answer and keeps the first that passes the checks, instead of re-asking
   a single question that breaks one (the word limit, say).
3. **Explore** asks for ``n_candidates`` items on aspects the questions it lists do not cover (the
   whole history by default; ``explore_lists="pool"``: the live pool, as the paper's explore prompt)
   and keeps the one most novel against the whole history (and anything written this step);
   ``explore_prompt="paper"`` writes one item from explore-exploit's explore prompt instead.

``shorten``: a single question over the word limit is shortened by a short request of its own
instead of being re-asked with the whole prompt (:meth:`ItemWriter.write_one`), the model's choice
of what to ask kept (on the provenance: ``shortened_from``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np

from clickloop.core.items import Item, ItemOrigin, ItemRecord, ItemStats
from clickloop.core.pool import ContextState, add_items, advance, drop_items
from clickloop.core.posterior import BetaPrior, posteriors, prob_below_best, thompson_order
from clickloop.embedding.minilm import check_installed
from clickloop.errors import ConfigurationError
from clickloop.strategies.aspects import AspectGrouper
from clickloop.strategies.paper import write_paper_exploit
from clickloop.strategies.writer import ItemWriter, render_questions

EXPLORE_LISTS = ("history", "pool")
EXPLORE_PROMPTS = ("candidates", "paper")
EXPLOIT_PROMPTS = ("guided", "paper")
EXPLOIT_TARGETS = ("thompson", "mean")


def _with_notes(item: Item, notes: dict[str, str]) -> Item:
    provenance = replace(item.provenance, notes=tuple(sorted({**dict(item.provenance.notes), **notes}.items())))
    return replace(item, provenance=provenance)


@dataclass(frozen=True)
class GuidedExploreExploit:
    """Statistics-guided explore-exploit (see the module docstring for the rules).

    ``min_impressions``/``patience_impressions``: impressions (summed over every iteration an item was
    live) before it may be dropped when confidently worse / in any case. ``drop_confidence``: the
    posterior probability of being worse than the best other item that makes an item droppable.
    ``prior_alpha``/``prior_beta``: the Beta prior of every item's CTR (pseudo-clicks / -non-clicks).
    ``aspect_method``/``aspect_threshold``: how items are grouped by aspect (``words`` or ``minilm``) and
    at what similarity (None: the method's default); see :class:`AspectGrouper`. ``n_ranked``: history
    items the exploit prompt lists in order of posterior mean CTR (0: none). ``monotone_drops``: drop
    only the lowest-ranked items by posterior mean, so that an item is never dropped while one that
    looks worse stays for want of impressions. ``history_weight``: the weight of clicks and
    impressions from before the latest iteration in the posteriors that rank, drop and target items
    (1: all iterations count alike; 0: the latest alone, as the paper's CTRs). An item's CTR falls as
    the pool around it improves, since users click at most one item, so old evidence flatters old
    items. The impression gates count every iteration. ``explore_lists``: which questions the explore
    prompt lists as already covered: ``history`` (every item so far) or ``pool`` (the live items and
    those written this step); novelty is judged against the whole history either way.
    ``explore_prompt``: ``candidates`` (the ``guided_explore`` prompt asks for ``n_candidates`` questions
    on uncovered aspects and the most novel is kept) or ``paper`` (explore-exploit's ``iterate_plain``
    prompt writes one question, as the paper's explore step does; ``n_candidates`` is then unused).
    ``exploit_prompt``: ``guided`` (the ``guided_exploit`` prompt on the Thompson-sampled target, no
    numbers shown) or ``paper`` (explore-exploit's ``exploit`` prompt: every item so far with its latest
    CTR, lowest first; the target and aspect cap are then not used, the model chooses the topic).
    ``exploit_target``: the order in which kept items are tried as the exploit target: ``thompson`` (one
    posterior draw each, highest first) or ``mean`` (posterior mean CTR, highest first).
    ``exploit_candidates``: with ``guided`` exploit prompts, how many questions one answer is asked for
    (the ``guided_exploit_list`` prompt; the first that passes the constraints is kept). 1: one
    question from ``guided_exploit``, re-asked while it breaks a constraint.
    """

    n_explore: int = 1
    n_exploit: int = 1
    n_candidates: int = 3
    max_per_aspect: int = 2
    min_impressions: int = 20
    drop_confidence: float = 0.9
    patience_impressions: int = 2000
    prior_alpha: float = 1.0
    prior_beta: float = 1.0
    aspect_threshold: float | None = None
    aspect_method: str = "words"
    n_ranked: int = 10
    history_weight: float = 1.0
    monotone_drops: bool = False
    explore_lists: str = "history"
    explore_prompt: str = "candidates"
    exploit_prompt: str = "guided"
    exploit_target: str = "thompson"
    exploit_candidates: int = 1
    shorten: bool = False
    name = "guided-ee"

    def __post_init__(self) -> None:
        for field_name, minimum in (
            ("n_explore", 0),
            ("n_exploit", 0),
            ("n_candidates", 1),
            ("exploit_candidates", 1),
            ("max_per_aspect", 1),
            ("min_impressions", 0),
            ("patience_impressions", 1),
            ("n_ranked", 0),
        ):
            value = getattr(self, field_name)
            if not isinstance(value, int) or value < minimum:
                raise ConfigurationError(f"guided-ee {field_name} ({value!r}) must be an integer >= {minimum}")
        if self.n_explore + self.n_exploit < 1:
            raise ConfigurationError("guided-ee needs n_explore + n_exploit >= 1")
        for field_name, low, high, closed, hint in (
            ("drop_confidence", 0.5, 1, False, "e.g. 0.9"),
            ("history_weight", 0, 1, True, "1 counts every iteration alike"),
        ):
            value = getattr(self, field_name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not (number and low <= value and (value <= high if closed else value < high)):
                interval = f"[{low}, {high}{']' if closed else ')'}"
                raise ConfigurationError(f"guided-ee {field_name} ({value!r}) must be in {interval}; {hint}")
        for field_name, choices in (
            ("explore_lists", EXPLORE_LISTS),
            ("explore_prompt", EXPLORE_PROMPTS),
            ("exploit_prompt", EXPLOIT_PROMPTS),
            ("exploit_target", EXPLOIT_TARGETS),
        ):
            if getattr(self, field_name) not in choices:
                raise ConfigurationError(
                    f"guided-ee {field_name} ({getattr(self, field_name)!r}) must be one of {', '.join(choices)}"
                )
        if not isinstance(self.shorten, bool):
            raise ConfigurationError(f"guided-ee shorten ({self.shorten!r}) must be true or false")
        if self.exploit_candidates > 1 and self.exploit_prompt != "guided":
            raise ConfigurationError(
                f"guided-ee exploit_candidates ({self.exploit_candidates}) applies to exploit_prompt 'guided' only, "
                f"not {self.exploit_prompt!r}; set one of them back to its default"
            )
        BetaPrior(self.prior_alpha, self.prior_beta)
        AspectGrouper(self.aspect_threshold, self.aspect_method)  # validates both
        if self.aspect_method == "minilm":
            check_installed()  # up front, not at the first step that groups

    @property
    def grouper(self) -> AspectGrouper:
        return AspectGrouper(self.aspect_threshold, self.aspect_method)

    @property
    def prior(self) -> BetaPrior:
        return BetaPrior(self.prior_alpha, self.prior_beta)

    def evidence(self, record: ItemRecord) -> ItemStats:
        """The clicks and impressions the posteriors use: the latest iteration's, plus ``history_weight``
        of the earlier ones (rounded)."""
        if self.history_weight == 1:
            return record.total
        older = ItemStats(
            record.total.impressions - record.stats.impressions, record.total.clicks - record.stats.clicks
        )
        return ItemStats(
            record.stats.impressions + round(self.history_weight * older.impressions),
            record.stats.clicks + round(self.history_weight * older.clicks),
        )

    def posterior_means(self, evidence: list[ItemStats]) -> np.ndarray:
        """The posterior mean CTR of each of ``evidence`` (clicks per impression) under :attr:`prior`."""
        alpha, beta = posteriors(evidence, self.prior)
        return alpha / (alpha + beta)

    def droppable(self, records: list[ItemRecord], rng: np.random.Generator) -> tuple[list[str], dict[str, float]]:
        """Ids that may go (lowest posterior mean first, at most ``n_explore + n_exploit``) and, per pool
        item, P(worse than the best other)."""
        stats = [r.total for r in records]
        evidence = [self.evidence(r) for r in records]
        p_worse = prob_below_best(evidence, rng, self.prior)
        means = self.posterior_means(evidence)
        eligible = [
            k
            for k, s in enumerate(stats)
            if (s.impressions >= self.min_impressions and p_worse[k] >= self.drop_confidence)
            or s.impressions >= max(self.min_impressions, self.patience_impressions)
        ]
        eligible.sort(key=lambda k: (means[k], k))
        if self.monotone_drops:  # never drop an item while one that looks worse stays (too few impressions)
            ranked = sorted(range(len(records)), key=lambda k: (means[k], k))
            eligible = list(itertools.takewhile(set(eligible).__contains__, ranked))
        drop = [records[k].item.item_id for k in eligible[: self.n_explore + self.n_exploit]]
        return drop, {r.item.item_id: float(p) for r, p in zip(records, p_worse, strict=True)}

    def ranked(self, records: list[ItemRecord]) -> str:
        """The ``n_ranked`` records of highest posterior mean CTR, ascending, as ``Question:`` lines."""
        if self.n_ranked == 0:
            return "(none yet)"
        means = self.posterior_means([self.evidence(r) for r in records])
        best = sorted(range(len(records)), key=lambda k: (means[k], -k))[-self.n_ranked :]
        return render_questions([records[k] for k in best])

    def step(self, state: ContextState, writer: ItemWriter, rng: np.random.Generator) -> ContextState:
        drop, p_worse = self.droppable(state.pool_records, rng)
        if not drop:
            return advance(state)
        grouper = self.grouper
        kept = [r for r in state.pool_records if r.item.item_id not in drop]
        n_exploit = min(self.n_exploit, len(drop)) if kept else 0
        n_explore = len(drop) - n_exploit
        dropped_note = ",".join(f"{i}:{p_worse[i]:.3f}" for i in drop)
        new: list[Item] = []
        for _ in range(n_exploit):
            new.append(self._exploit(state, writer, rng, grouper, kept, new, dropped_note))
        for _ in range(n_explore):
            new.append(self._explore(state, writer, grouper, kept, new, dropped_note))
        return advance(add_items(drop_items(state, drop), new))

    def _exploit(
        self,
        state: ContextState,
        writer: ItemWriter,
        rng: np.random.Generator,
        grouper: AspectGrouper,
        kept: list[ItemRecord],
        new: list[Item],
        dropped_note: str,
    ) -> Item:
        topic = state.context.topic
        if self.exploit_prompt == "paper":
            return self._exploit_paper(state, writer, grouper, new, dropped_note)
        live_texts = [r.item.text for r in kept] + [i.text for i in new]
        evidence = [self.evidence(r) for r in kept]
        if self.exploit_target == "thompson":
            order = thompson_order(evidence, rng, self.prior)
        else:
            means = self.posterior_means(evidence)
            order = sorted(range(len(kept)), key=lambda k: (-means[k], k))
        target, skipped = kept[order[0]], []
        for k in order:
            on_aspect = sum(grouper.similarity(kept[k].item.text, t, topic) >= grouper.cutoff for t in live_texts)
            if on_aspect < self.max_per_aspect:
                target = kept[k]
                break
            skipped.append(kept[k].item.item_id)
        else:
            skipped.append("cap-unmet")
        siblings = [
            r for r in state.records if grouper.similarity(target.item.text, r.item.text, topic) >= grouper.cutoff
        ]
        existing = [r.item.text for r in state.records] + [i.text for i in new]
        parents = (target.item.item_id, *(r.item.item_id for r in siblings if r is not target))
        target_text, sibling_lines, ranked = target.item.text, render_questions(siblings), self.ranked(state.records)
        notes: dict[str, str] = {}
        if self.exploit_candidates == 1:
            item = writer.write_one(
                state.context,
                "guided_exploit",
                ItemOrigin.EXPLOIT,
                state.iteration + 1,
                existing,
                parents,
                shorten=self.shorten,
                target=target_text,
                siblings=sibling_lines,
                ranked=ranked,
            )
        else:  # one list answer: a question over the length limit costs no re-ask while another passes
            candidates = writer.write_candidates(
                state.context,
                "guided_exploit_list",
                ItemOrigin.EXPLOIT,
                state.iteration + 1,
                existing,
                self.exploit_candidates,
                parents,
                target=target_text,
                siblings=sibling_lines,
                ranked=ranked,
            )
            item = candidates[0]  # the model's own first choice among those that pass
            notes["candidates"] = " | ".join(c.text for c in candidates)
        return _with_notes(
            item,
            {
                **notes,
                "strategy": self.name,
                "dropped": dropped_note,
                "target": target.item.item_id,
                f"{self.exploit_target}_order": ",".join(kept[k].item.item_id for k in order),
                "skipped_targets": ",".join(skipped),
                "aspect": grouper.label(target.item.text, topic),
                "aspect_similarity": f"{grouper.similarity(target.item.text, item.text, topic):.2f}",
            },
        )

    def _exploit_paper(
        self, state: ContextState, writer: ItemWriter, grouper: AspectGrouper, new: list[Item], dropped_note: str
    ) -> Item:
        """The exploit item from explore-exploit's prompt: the history with CTRs, the LLM picks the topic."""
        item = write_paper_exploit(writer, state, new, {}, shorten=self.shorten)
        notes = {"strategy": self.name, "dropped": dropped_note, "exploit_prompt": self.exploit_prompt}
        return _with_notes(item, {**notes, "aspect": grouper.label(item.text, state.context.topic)})

    def _explore(
        self,
        state: ContextState,
        writer: ItemWriter,
        grouper: AspectGrouper,
        kept: list[ItemRecord],
        new: list[Item],
        dropped_note: str,
    ) -> Item:
        topic = state.context.topic
        existing = [r.item.text for r in state.records] + [i.text for i in new]
        listed = existing if self.explore_lists == "history" else [*(r.item.text for r in kept), *(i.text for i in new)]
        questions = "\n".join(f"Question: {t}" for t in listed)
        parents = tuple(r.item.item_id for r in state.records)
        iteration = state.iteration + 1
        if self.explore_prompt == "paper":
            candidates = [
                writer.write_one(
                    state.context,
                    "iterate_plain",
                    ItemOrigin.EXPLORE,
                    iteration,
                    existing,
                    parents,
                    shorten=self.shorten,
                    questions=questions,
                )
            ]
        else:
            candidates = writer.write_candidates(
                state.context,
                "guided_explore",
                ItemOrigin.EXPLORE,
                iteration,
                existing,
                self.n_candidates,
                parents=parents,
                questions=questions,
            )
        novelty = [grouper.novelty(c.text, existing, topic) for c in candidates]
        best = int(np.argmax(novelty))  # the first of equals: the model's own order
        return _with_notes(
            candidates[best],
            {
                "strategy": self.name,
                "dropped": dropped_note,
                "candidates": " | ".join(f"{c.text} ({n:.2f})" for c, n in zip(candidates, novelty, strict=True)),
                "novelty": f"{novelty[best]:.2f}",
                "explore_prompt": self.explore_prompt,
                "aspect": grouper.label(candidates[best].text, topic),
            },
        )
