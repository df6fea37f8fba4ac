"""BERT's uncased WordPiece tokenizer, in pure Python (what ``tokenizer.json`` of MiniLM specifies).

Normalization: control characters dropped, whitespace unified, CJK characters spaced, lower-cased and
accents stripped (``BertNormalizer`` with ``lowercase`` and ``strip_accents`` unset). Pre-tokenization:
split on whitespace and around every punctuation character (``BertPreTokenizer``). Each word is then cut
into the longest vocabulary pieces from the left, continuations prefixed ``##``; a word with no such cut
(or longer than ``max_chars`` characters) is ``[UNK]``. ``[CLS] ... [SEP]`` wrap the ids.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(code: int) -> bool:
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


def normalize(text: str) -> str:
    """``BertNormalizer``: clean, space CJK characters, lower-case, strip accents."""
    out: list[str] = []
    for char in text:
        code = ord(char)
        if code == 0 or code == 0xFFFD or (unicodedata.category(char).startswith("C") and char not in "\t\n\r"):
            continue
        if char.isspace():
            out.append(" ")
        elif _is_cjk(code):
            out.append(f" {char} ")
        else:
            out.append(char)
    lowered = "".join(out).lower()
    return "".join(c for c in unicodedata.normalize("NFD", lowered) if unicodedata.category(c) != "Mn")


def pre_tokenize(text: str) -> list[str]:
    """``BertPreTokenizer``: whitespace-separated words, every punctuation character a word of its own."""
    words: list[str] = []
    for chunk in text.split():
        current = ""
        for char in chunk:
            if _is_punctuation(char):
                if current:
                    words.append(current)
                words.append(char)
                current = ""
            else:
                current += char
        if current:
            words.append(current)
    return words


@dataclass(frozen=True)
class WordPiece:
    """``vocab``: piece -> id (continuations carry ``prefix``). ``max_chars``: longer words are ``unk``."""

    vocab: Mapping[str, int]
    unk: str = "[UNK]"
    cls: str = "[CLS]"
    sep: str = "[SEP]"
    prefix: str = "##"
    max_chars: int = 100
    _cache: dict[str, list[int]] = field(default_factory=dict, compare=False, repr=False)

    def word_ids(self, word: str) -> list[int]:
        """The ids of one pre-tokenized word: greedy longest match from the left."""
        if word in self._cache:
            return self._cache[word]
        ids: list[int] = []
        if len(word) > self.max_chars:
            ids = [self.vocab[self.unk]]
        else:
            start = 0
            while start < len(word):
                end, piece_id = len(word), None
                while end > start:
                    piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                    if piece in self.vocab:
                        piece_id = self.vocab[piece]
                        break
                    end -= 1
                if piece_id is None:
                    ids = [self.vocab[self.unk]]
                    break
                ids.append(piece_id)
                start = end
        self._cache[word] = ids
        return ids

    def encode(self, text: str, max_length: int = 256) -> list[int]:
        """``[CLS]`` + the pieces of ``text`` + ``[SEP]``, cut to ``max_length`` ids in all."""
        ids = [i for word in pre_tokenize(normalize(text)) for i in self.word_ids(word)]
        return [self.vocab[self.cls], *ids[: max_length - 2], self.vocab[self.sep]]
