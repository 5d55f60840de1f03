"""ARPA n-gram files read and scored in pure Python: the vocabulary for the beam's lexicon, and a back-off
scorer giving the kenlm module's log10 probabilities for runtimes without kenlm (tests/test_beam.py checks it)."""

from __future__ import annotations


def is_arpa(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(64).lstrip().startswith(b"\\data\\")


def _sections(path: str):
    """(order, fields) for every n-gram line: fields = [log10 prob, 'w1 w2 ...', optional back-off]."""
    order = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if line.startswith("\\"):
                order = int(line[1]) if line.endswith("-grams:") else 0
            elif order and line:
                yield order, line.split("\t")


def arpa_words(path: str) -> frozenset[str]:
    """The vocabulary of an ARPA file (its 1-grams, without <s>, </s>, <unk>); empty for any other file."""
    if not is_arpa(path):
        return frozenset()
    words = set()
    for order, fields in _sections(path):
        if order > 1:
            break
        words.add(fields[1])
    return _vocabulary(words)


def _vocabulary(unigrams) -> frozenset[str]:
    return frozenset(unigrams) - {"<s>", "</s>", "<unk>"}


class ArpaModel:
    """Back-off scoring: log10 p(w | h) is the longest n-gram ending in w that the file lists, plus the back-off
    weights of the longer contexts it had to drop. Unknown words score as <unk> with every back-off charged."""

    def __init__(self, path: str):
        self.grams: dict[tuple[str, ...], tuple[float, float]] = {}
        self.order = 1
        for order, fields in _sections(path):
            self.grams[tuple(fields[1].split(" "))] = (float(fields[0]), float(fields[2]) if len(fields) > 2 else 0.0)
            self.order = max(self.order, order)
        self.unk = self.grams.get(("<unk>",), (-100.0, 0.0))[0]
        self.words = _vocabulary(gram[0] for gram in self.grams if len(gram) == 1)

    def begin(self) -> tuple[str, ...]:
        return ("<s>",)

    def score(self, state: tuple[str, ...], word: str) -> tuple[float, tuple[str, ...]]:
        """log10 p(word | state) and the next state (the matched n-gram, at most order - 1 words)."""
        backoff = 0.0
        for i in range(len(state) + 1):
            gram = state[i:] + (word,)
            entry = self.grams.get(gram)
            if entry is not None:
                return backoff + entry[0], gram[-(self.order - 1):] if self.order > 1 else ()
            context = self.grams.get(state[i:])
            backoff += context[1] if context else 0.0
        return backoff + self.unk, ()
