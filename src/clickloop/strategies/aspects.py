"""Which aspect of a topic an item asks about, decided in code: lexical aspect keys and grouping.

The paper's exploit prompt asks the LLM to notice when "more than 2 questions" are on one topic; a
1.5B model does not do that reliably, so ``guided-ee`` groups items here and enforces the cap itself.

An item's aspect key is the set of its content-word stems: lower-cased words, minus stop words,
question words and the words of the topic itself ("cookware sets" says nothing about the aspect of a
question about cookware sets), each cut to a crude stem so "materials"/"material" and
"cleaning"/"clean" meet. Two items share an aspect when the overlap coefficient of their keys
(|A & B| / min(|A|, |B|)) reaches ``threshold``; groups are formed greedily in the order given, each
item joining the group it overlaps most on average (average linkage).

The other method, ``minilm``, compares sentence embeddings instead (all-MiniLM-L6-v2, run in NumPy by
:mod:`clickloop.embedding.minilm`): two items share an aspect when the cosine similarity of their
embeddings reaches ``threshold``, with the same greedy grouping.

How well each agrees with a person's grouping is measured in ``benchmarks/bench_aspects.py`` against
hand-labelled questions (pairwise precision / recall / F1).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from clickloop.errors import ConfigurationError

_WORD = re.compile(r"[a-z]+")
K = TypeVar("K")

STOP_WORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing done down during each either else ever every
    few for from further get gets getting give had has have having he her here hers him his how i if in
    into is it its itself just kind kinds let like made make makes many may me might more most much must
    my need needs no nor not now of off often on once one only or other others our out over own per
    really same shall she should so some such than that the their theirs them then there these they
    thing things this those through to too type types under until up upon us use used uses using very
    was way ways we well were what whats when which while who whom whose why will with within without
    would yes yet you your yours
    typically usually generally common commonly available good great new different various typical
    product products item items someone people customer customers buy buying purchase choose choosing
    question questions
    effective effectively efficient optimal optimize specific need needs right ideal perfect benefit
    benefits advantage advantages factor factors consider considering tip tips find suggest recommend
    unique key difference differences differ compare compared comparison properly proper important
    crucial ensure ensuring maximum improve help market experience describe relationship affect affects
    impact impacts role reason reasons based while still both either able possible
    """.split()
)


def stem(word: str) -> str:
    """A crude suffix-stripping stem (enough to merge plural and -ing/-ed forms of one word)."""
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""), ("ly", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + keep
            break
    return word


def aspect_key(text: str, topic: str = "") -> frozenset[str]:
    """The content-word stems of ``text`` that are not stop words and not words of ``topic``."""
    topic_stems = {stem(w) for w in _WORD.findall(topic.lower())}
    words = _WORD.findall(text.lower())
    return frozenset(s for w in words if w not in STOP_WORDS and len(w) > 2 and (s := stem(w)) not in topic_stems)


def overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """Overlap coefficient |a & b| / min(|a|, |b|) in [0, 1]; 0 when either key is empty."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def greedy_groups(keys: Sequence[K], similarity: Callable[[K, K], float], threshold: float) -> list[int]:
    """Average-linkage grouping in the order given: each key joins the group it is most similar to on
    average if that reaches ``threshold``, else starts a new one. A group number per key."""
    members: list[list[int]] = []
    labels: list[int] = []
    for i, key in enumerate(keys):
        best, best_score = -1, 0.0
        for g, group in enumerate(members):
            score = sum(similarity(key, keys[m]) for m in group) / len(group)
            if score > best_score:
                best, best_score = g, score
        if best >= 0 and best_score >= threshold:
            members[best].append(i)
            labels.append(best)
        else:
            members.append([i])
            labels.append(len(members) - 1)
    return labels


ASPECT_METHODS = ("words", "minilm")
DEFAULT_THRESHOLDS = {"words": 0.5, "minilm": 0.7}


_VECTORS: dict[str, np.ndarray] = {}  # text -> its embedding, for the life of the process
_MAX_VECTORS = 20_000


def _embeddings(texts: Sequence[str]) -> np.ndarray:
    """Unit embeddings of ``texts`` (non-empty), one row each. Each text is encoded alone (never padded
    in a batch), so its vector, and every decision taken on it, does not depend on what it was encoded
    with."""
    from clickloop.embedding.minilm import load_minilm  # the model loads on first use only

    for text in dict.fromkeys(texts):
        if text not in _VECTORS:
            if len(_VECTORS) >= _MAX_VECTORS:
                _VECTORS.clear()
            _VECTORS[text] = load_minilm().encode([text])[0]
    return np.stack([_VECTORS[t] for t in texts])


@dataclass(frozen=True)
class AspectGrouper:
    """Groups item texts by aspect.

    ``method``: ``words`` (content-word stems, overlap coefficient; ``topic`` words never count) or
    ``minilm`` (cosine of sentence embeddings; needs the MiniLM package, see
    :mod:`clickloop.embedding.minilm`). ``threshold``: the similarity in (0, 1] at which two items share
    an aspect; None takes the method's default (0.5 for ``words``: half of the shorter key; 0.7 for
    ``minilm``).
    """

    threshold: float | None = None
    method: str = "words"

    def __post_init__(self) -> None:
        if self.method not in ASPECT_METHODS:
            raise ConfigurationError(f"aspect_method must be one of {', '.join(ASPECT_METHODS)} (got {self.method!r})")
        if self.threshold is not None and not (
            isinstance(self.threshold, int | float) and not isinstance(self.threshold, bool) and 0 < self.threshold <= 1
        ):
            raise ConfigurationError(f"AspectGrouper.threshold ({self.threshold!r}) must be in (0, 1], e.g. 0.5")

    @property
    def cutoff(self) -> float:
        """The threshold in use."""
        return DEFAULT_THRESHOLDS[self.method] if self.threshold is None else float(self.threshold)

    def matrix(self, a: Sequence[str], b: Sequence[str], topic: str = "") -> np.ndarray:
        """Similarities in [0, 1] of every text of ``a`` (rows) to every text of ``b`` (columns)."""
        if not a or not b:
            return np.zeros((len(a), len(b)))
        if self.method == "minilm":
            return np.clip(_embeddings(a) @ _embeddings(b).T, 0.0, 1.0)
        keys_b = [aspect_key(t, topic) for t in b]
        return np.array([[overlap(aspect_key(t, topic), k) for k in keys_b] for t in a])

    def similarity(self, a: str, b: str, topic: str = "") -> float:
        return float(self.matrix([a], [b], topic)[0, 0])

    def groups(self, texts: Sequence[str], topic: str = "") -> list[int]:
        """A group number per text (0, 1, ... in order of first appearance)."""
        pairs = self.matrix(texts, texts, topic)
        return greedy_groups(list(range(len(texts))), lambda i, j: float(pairs[i, j]), self.cutoff)

    def novelty(self, text: str, others: Sequence[str], topic: str = "") -> float:
        """1 - the highest similarity of ``text`` to any of ``others`` (1 = a wholly new aspect)."""
        return 1.0 - float(self.matrix([text], others, topic).max(initial=0.0))

    def label(self, text: str, topic: str = "") -> str:
        """A short readable name of the aspect: its content-word stems, sorted (for either method)."""
        return " ".join(sorted(aspect_key(text, topic))) or "(none)"
