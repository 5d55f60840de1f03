"""Word n-gram language model for beam search: a KenLM model (ARPA or binary) via the kenlm module."""

from __future__ import annotations

import math
import os

from .quiet import quiet_stderr

LN10 = math.log(10)


class LanguageModel:
    def __init__(self, path: str):
        try:
            import kenlm
        except ImportError:
            raise ValueError("a language model needs the kenlm module: pip install kenlm") from None
        if not os.path.isfile(path):
            raise ValueError(f"{path}: language model file not found")
        self._kenlm = kenlm
        with quiet_stderr():  # KenLM prints a progress bar and advice while loading
            try:
                self.model = kenlm.Model(path)
            except (OSError, RuntimeError) as e:
                raise ValueError(f"{path}: not a KenLM/ARPA language model ({str(e).splitlines()[0]})") from None
        self.path = path

    def begin(self):
        state = self._kenlm.State()
        self.model.BeginSentenceWrite(state)
        return state

    def score(self, state, word: str):
        """Natural-log probability of word after state, and the new state."""
        out = self._kenlm.State()
        return self.model.BaseScore(state, word, out) * LN10, out

    def end(self, state) -> float:
        return self.model.BaseScore(state, "</s>", self._kenlm.State()) * LN10

    def __contains__(self, word: str) -> bool:
        return word in self.model
