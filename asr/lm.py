"""Word n-gram language model for beam search: a KenLM model (ARPA or binary) via the kenlm module, or, when
kenlm is not installed, an ARPA file scored in pure Python (arpa.ArpaModel) with the same results."""

from __future__ import annotations

import math
import os

from .arpa import ArpaModel, arpa_words, is_arpa
from .quiet import quiet_stderr

LN10 = math.log(10)


class LanguageModel:
    def __init__(self, path: str):
        if not os.path.isfile(path):
            raise ValueError(f"{path}: language model file not found")
        self.path = path
        try:
            import kenlm
        except ImportError:
            if not is_arpa(path):
                raise ValueError(f"{path}: not an ARPA file; a binary KenLM model needs the kenlm module "
                                 "(pip install kenlm)") from None
            try:
                self.model = ArpaModel(path)
            except (ValueError, IndexError):
                raise ValueError(f"{path}: not a readable ARPA language model") from None
            self.words = self.model.words
        else:
            self.model = _KenLM(kenlm, path)
            self.words = arpa_words(path)
        # The beam spells only these words (and hotwords) when the file lists them (ARPA); binary: open vocabulary.
        self.prefixes = frozenset(w[:i] for w in self.words for i in range(1, len(w) + 1))

    def begin(self):
        return self.model.begin()

    def score(self, state, word: str):
        """Natural-log probability of word after state, and the new state."""
        lp, out = self.model.score(state, word)
        return lp * LN10, out

    def end(self, state) -> float:
        return self.score(state, "</s>")[0]


class _KenLM:
    """The kenlm module behind ArpaModel's interface (log10 scores, opaque states)."""

    def __init__(self, kenlm, path: str):
        self.kenlm = kenlm
        with quiet_stderr():  # KenLM prints a progress bar and advice while loading
            try:
                self.model = kenlm.Model(path)
            except (OSError, RuntimeError) as e:
                raise ValueError(f"{path}: not a KenLM/ARPA language model ({str(e).splitlines()[0]})") from None

    def begin(self):
        state = self.kenlm.State()
        self.model.BeginSentenceWrite(state)
        return state

    def score(self, state, word: str):
        out = self.kenlm.State()
        return self.model.BaseScore(state, word, out), out
