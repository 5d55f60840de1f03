"""The pronunciation lexicon a phone model decodes with: words spelled in phones, for the prefix beam search.

A word's phones are written as a string with one character per phone token (a code from Unicode's private use
area, which no word holds), so the beam keeps the phones of a word in progress in its prefix string exactly as
it keeps the letters of a character model's, and asks the lexicon the character lexicon's questions: is this a
word (and which words sound so), does some word start so."""

from __future__ import annotations

import bisect

from .phones import Pronouncer, Pronunciation
from .vocab import Vocabulary

CODE_BASE = 0xE000


def phone_codes(vocab: Vocabulary) -> tuple[str, ...]:
    """Token id -> the one character the beam's prefixes hold for it (the word boundary stays a space)."""
    return tuple(t if t == " " else chr(CODE_BASE + i) for i, t in enumerate(vocab.tokens))


def is_code(ch: str) -> bool:
    return ord(ch) >= CODE_BASE


class PhoneLexicon:
    """Words and their pronunciations (several allowed), looked up by phone code string."""

    def __init__(self, pronunciations: dict[str, tuple[Pronunciation, ...]], vocab: Vocabulary):
        self.codes = phone_codes(vocab)
        self._ids = {t: i for i, t in enumerate(vocab.tokens)}
        self._words: dict[str, list[str]] = {}
        for word, prons in pronunciations.items():
            for pron in prons:
                code = self.spell(pron)
                if code:
                    homophones = self._words.setdefault(code, [])
                    if word not in homophones:
                        homophones.append(word)
        self._sorted = sorted(self._words)
        self._prefixes: dict[str, bool] = {}

    def __len__(self) -> int:
        return sum(len(w) for w in self._words.values())

    def spell(self, pron: Pronunciation) -> str:
        """A pronunciation as a code string ("" when a phone is not in the model's vocabulary)."""
        try:
            return "".join(self.codes[self._ids[p]] for p in pron)
        except KeyError:
            return ""

    def words_for(self, code: str) -> list[str]:
        return self._words.get(code, [])

    def is_word(self, code: str) -> bool:
        return code in self._words

    def is_prefix(self, code: str) -> bool:
        """A binary search, remembered boundedly, as the character lexicon (asr.lm.LanguageModel) does."""
        hit = self._prefixes.get(code)
        if hit is None:
            i = bisect.bisect_left(self._sorted, code)
            hit = i < len(self._sorted) and self._sorted[i].startswith(code)
            if len(self._prefixes) > 200_000:
                self._prefixes.clear()
            self._prefixes[code] = hit
        return hit


def lexicon_for(vocab: Vocabulary, words=None, pronouncer: Pronouncer | None = None) -> PhoneLexicon:
    """The lexicon of words (an LM's vocabulary) as CMUdict pronounces them, or of all of CMUdict's words when
    words is None. Words CMUdict lacks are left out: pronouncing a book LM's tens of thousands of them with
    espeak-ng would take a minute at every start; hotwords, few, get the fallback (asr.phonebeam)."""
    dictionary = (pronouncer or Pronouncer(fallback=False)).dictionary
    if words is None:
        return PhoneLexicon(dictionary, vocab)
    return PhoneLexicon({w: dictionary[w] for w in words if w in dictionary}, vocab)
