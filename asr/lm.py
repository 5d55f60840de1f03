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
        # The beam spells only these words (and hotwords) when the file lists them (ARPA); binary: open vocabulary.
        self.words = _arpa_words(path)
        self.prefixes = frozenset(w[:i] for w in self.words for i in range(1, len(w) + 1))

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


def _arpa_words(path: str) -> frozenset[str]:
    """The vocabulary of an ARPA file (its 1-grams, without <s>, </s>, <unk>); empty for a binary KenLM file."""
    words = set()
    with open(path, "rb") as f:
        if not f.read(64).lstrip().startswith(b"\\data\\"):
            return frozenset()
        f.seek(0)
        in_unigrams = False
        for line in f:
            line = line.strip()
            if line.startswith(b"\\"):
                if in_unigrams:
                    break
                in_unigrams = line == b"\\1-grams:"
            elif in_unigrams and line:
                words.add(line.split(b"\t")[1].decode("utf-8", "replace"))
    return frozenset(words - {"<s>", "</s>", "<unk>"})
