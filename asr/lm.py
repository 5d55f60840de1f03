"""Word n-gram language model for beam search, behind one interface (begin, score, end, is_word, is_prefix):
asr's compact binary format (asr/ngram.py, always pure Python), or a KenLM model (ARPA or binary) via the kenlm
module, or, when kenlm is not installed, an ARPA file scored in pure Python (asr/arpa.py) with the same results."""

from __future__ import annotations

import bisect
import math
import os

from .arpa import ArpaModel, arpa_words, is_arpa
from .messages import first_line
from .ngram import CompactModel, is_ngram_file
from .quiet import quiet_stderr

LN10 = math.log(10)


class LanguageModel:
    def __init__(self, path: str):
        if not os.path.isfile(path):
            raise ValueError(f"{path}: language model file not found")
        self.path = path
        if is_ngram_file(path):
            self.model = CompactModel(path)
            words = self.model.words
        else:
            self.model, words = _kenlm_or_arpa(path)
        # The beam spells only these words (and hotwords) when the file lists them (ARPA, compact);
        # a KenLM binary does not: open vocabulary.
        self.words = frozenset(words)
        self._sorted = sorted(self.words)
        self._cache: dict = {}
        self._prefixes: dict[str, bool] = {}

    def is_word(self, word: str) -> bool:
        return word in self.words

    def is_prefix(self, text: str) -> bool:
        """Whether some word of the vocabulary starts with text (a binary search: no table of prefixes; the answers
        the beam asks for again and again, the words in progress, are remembered, boundedly)."""
        hit = self._prefixes.get(text)
        if hit is None:
            i = bisect.bisect_left(self._sorted, text)
            hit = i < len(self._sorted) and self._sorted[i].startswith(text)
            if len(self._prefixes) > 200_000:
                self._prefixes.clear()
            self._prefixes[text] = hit
        return hit

    def begin(self):
        return self.model.begin()

    def score(self, state, word: str):
        """Natural-log probability of word after state, and the new state."""
        key = (state, word) if isinstance(state, tuple) else None
        hit = self._cache.get(key) if key is not None else None
        if hit is None:
            lp, out = self.model.score(state, word)
            hit = (lp * LN10, out)
            if key is not None:
                if len(self._cache) > 200_000:  # bounded: a long stream must not grow it forever
                    self._cache.clear()
                self._cache[key] = hit
        return hit

    def end(self, state) -> float:
        return self.score(state, "</s>")[0]


def _kenlm_or_arpa(path: str):
    try:
        import kenlm
    except ImportError:
        if not is_arpa(path):
            raise ValueError(f"{path}: not an ARPA or asr n-gram file; a binary KenLM model needs the kenlm module "
                             "(pip install kenlm)") from None
        model = ArpaModel(path)
        return model, model.words
    return _KenLM(kenlm, path), arpa_words(path)


class _KenLM:
    """The kenlm module behind ArpaModel's interface (log10 scores, opaque states)."""

    def __init__(self, kenlm, path: str):
        self.kenlm = kenlm
        with quiet_stderr():  # KenLM prints a progress bar and advice while loading
            try:
                self.model = kenlm.Model(path)
            except (OSError, RuntimeError, ValueError) as e:  # ValueError: KenLM quotes undecodable bytes
                raise ValueError(f"{path}: not a KenLM/ARPA language model ({first_line(e)[:80]})") from None

    def begin(self):
        state = self.kenlm.State()
        self.model.BeginSentenceWrite(state)
        return state

    def score(self, state, word: str):
        out = self.kenlm.State()
        return self.model.BaseScore(state, word, out), out
