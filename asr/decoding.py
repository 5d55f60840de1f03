"""Streaming greedy CTC decoding with token times, and grouping of characters into words."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .results import Token, Word
from .vocab import Vocabulary


@dataclass
class GreedyDecoder:
    """Collapses repeats and drops blanks across chunk boundaries; keeps per-token step and score."""

    vocab: Vocabulary
    tokens: list[Token] = field(default_factory=list)
    steps: int = 0  # output steps seen so far
    last_nonblank_step: int = -1
    _prev: int = -1

    def finalize(self) -> None:
        """Nothing to do: greedy text is final as it stands."""

    def reset(self) -> None:
        """Forget the hypothesis (at an endpoint) but keep the clock running."""
        self.tokens = []
        self.last_nonblank_step = -1
        self._prev = -1

    def accept(self, log_probs: np.ndarray) -> None:
        best = log_probs.argmax(axis=-1)
        blank = self.vocab.blank_id
        for i, tok in enumerate(best):
            tok = int(tok)
            step = self.steps + i
            if tok != blank:
                self.last_nonblank_step = step
                if tok != self._prev:
                    self.tokens.append(Token(tok, step, float(log_probs[i, tok])))
                else:  # a repeated frame of the same token: keep the most confident frame's score
                    self.tokens[-1].logprob = max(self.tokens[-1].logprob, float(log_probs[i, tok]))
            self._prev = tok
        self.steps += len(best)

    @property
    def text(self) -> str:
        return " ".join(self.vocab.decode(t.id for t in self.tokens).split())

    word_texts = None  # the tokens spell the words


def tokens_to_words(tokens: list[Token], vocab: Vocabulary, step_seconds: float,
                    texts: list[str] | None = None) -> list[Word]:
    """Group tokens into words at the space token; a word spans its first to its last token's step. texts: the
    words' texts when the tokens do not spell them (phones); groups past the last text (a word in progress) are
    left out."""
    words: list[Word] = []
    current: list[Token] = []

    def flush():
        if current and (texts is None or len(words) < len(texts)):
            text = "".join(vocab.tokens[t.id] for t in current) if texts is None else texts[len(words)]
            conf = float(np.exp(np.mean([t.logprob for t in current])))
            start = current[0].step * step_seconds
            end = (current[-1].step + 1) * step_seconds
            words.append(Word(text, round(start, 3), round(end, 3), round(conf, 4)))
        current.clear()

    for t in tokens:
        if vocab.tokens[t.id] == " ":
            flush()
        else:
            current.append(t)
    flush()
    return words


def greedy_text(log_probs: np.ndarray, vocab: Vocabulary) -> str:
    """Offline convenience for one utterance's [T, V] log-probs."""
    d = GreedyDecoder(vocab)
    d.accept(log_probs)
    return d.text
