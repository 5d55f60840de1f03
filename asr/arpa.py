"""ARPA n-gram files read and scored in pure Python: the vocabulary for the beam's lexicon, and a back-off
scorer giving the kenlm module's log10 probabilities for runtimes without kenlm (tests/test_beam.py checks it)."""

from __future__ import annotations


def is_arpa(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(64).lstrip().startswith(b"\\data\\")


def _sections(path: str):
    """(order, fields) for every n-gram line: fields = [log10 prob, 'w1 w2 ...', optional back-off]. Raises
    ValueError, as KenLM does, for a file whose sections do not match its \\data\\ counts or that is cut short."""
    declared, seen, order, header, ended = {}, {}, 0, False, False
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                if line == "\\data\\":
                    header = True
                elif line == "\\end\\":
                    ended = True
                    break
                elif line.startswith("\\") and line.endswith("-grams:") and line[1:-7].isdigit():
                    order, header = int(line[1:-7]), False
                    seen.setdefault(order, 0)
                elif header:
                    name, _, count = line.partition("=")
                    if not (name.split()[:1] == ["ngram"] and name.split()[1:2] and count.strip().isdigit()):
                        raise ValueError(f"{path}: bad \\data\\ line {line[:40]!r}")
                    declared[int(name.split()[1])] = int(count)
                elif order:
                    fields = line.split("\t")
                    if len(fields) == 1:  # space-separated, as some tools write
                        words = line.split()
                        fields = [words[0], " ".join(words[1:order + 1])] + words[order + 1:]
                    seen[order] += 1
                    yield order, fields
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    if not declared.get(1):
        raise ValueError(f"{path}: no unigrams declared in its \\data\\ header")
    for n, count in sorted(declared.items()):
        if seen.get(n, 0) != count:
            raise ValueError(f"{path}: {seen.get(n, 0)} {n}-grams where its header declares {count}")
    if not ended:
        raise ValueError(f"{path}: cut short (no \\end\\ line)")


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
            try:
                entry = (float(fields[0]), float(fields[2]) if len(fields) > 2 else 0.0)
            except (ValueError, IndexError):
                raise ValueError(f"{path}: bad {order}-gram line {chr(9).join(fields)[:40]!r}") from None
            self.grams[tuple(fields[1].split(" "))] = entry
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
