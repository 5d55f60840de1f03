"""Word and character error rates (Levenshtein distance over tokens)."""

from __future__ import annotations


def edit_distance(ref, hyp) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


class ErrorCounter:
    """Accumulates word and character edits over many utterances."""

    def __init__(self):
        self.word_edits = self.words = self.char_edits = self.chars = self.utterances = 0

    def add(self, ref: str, hyp: str) -> None:
        self.utterances += 1
        self.word_edits += edit_distance(ref.split(), hyp.split())
        self.words += len(ref.split())
        self.char_edits += edit_distance(ref, hyp)
        self.chars += len(ref)

    @property
    def wer(self) -> float:
        return self.word_edits / max(1, self.words)

    @property
    def cer(self) -> float:
        return self.char_edits / max(1, self.chars)
