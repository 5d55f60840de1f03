"""Streaming CTC prefix beam search with an optional word language model and hotword boosting.

A decoders.Decoder like decoding.GreedyDecoder; its finalize() scores the last word and the end of sentence
before a segment is closed.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from .results import Token
from .vocab import Vocabulary

NEG_INF = -math.inf


def _lae(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    m = max(a, b)
    return m + math.log1p(math.exp(-abs(a - b)))


@dataclass
class BeamConfig:
    beam: int = 32  # hypotheses kept per step (dev, book LM + lexicon: 8 -> 16 -> 32 gave WER 47.0 / 42.5 / 40.8 %)
    token_beam: float = 8.0  # only tokens within this log-prob of the best are extended (dev, beam 32: 10 -> 8 -> 6
    # cost 0.019 / 0.016 / 0.012 CPU-s per audio-s and gave WER 41.7 / 41.9 / 42.2 % on a third of dev)
    max_tokens: int = 8  # and at most this many per step
    lm_weight: float = 0.5
    word_bonus: float = 1.0  # added per word with an LM (balances its per-word cost); tuned on dev
    hotwords: dict[str, float] = field(default_factory=dict)  # word or phrase -> bonus (natural log)
    lexicon: bool = True  # with an LM: only its words (and hotwords) may be spelled out


@dataclass(slots=True)  # millions are made per audio hour: slots make them cheaper to build and read
class _Hyp:
    pb: float = NEG_INF  # paths ending in blank
    pnb: float = NEG_INF  # paths ending in the last token
    last: int = -1
    lm: float = 0.0  # LM, word bonus and hotword scores so far
    lm_state: object = None
    boost: float = 0.0  # hotword prefix bonus given to the word in progress (taken back if it diverges)
    tokens: tuple = ()
    last_nonblank: int = -1

    @property
    def acoustic(self) -> float:
        return _lae(self.pb, self.pnb)

    @property
    def score(self) -> float:
        return self.acoustic + self.lm


class BeamDecoder:
    def __init__(self, vocab: Vocabulary, config: BeamConfig | None = None, lm=None):
        self.vocab, self.cfg, self.lm = vocab, config or BeamConfig(), lm
        self.space = vocab.tokens.index(" ")
        self._prefix_boost = _hotword_prefixes(self.cfg.hotwords)
        self._lexicon = lm if self.cfg.lexicon and lm is not None and lm.words else None
        self._chars = vocab.tokens  # what a token adds to a prefix
        self._hot_words = self.cfg.hotwords  # the words in progress that complete a hotword
        # For units that do not spell words (asr.phonebeam): the words a completed word in progress may be.
        self._spoken = None
        self.steps = 0
        self.reset()

    def reset(self) -> None:
        self.beams = {"": _Hyp(pb=0.0, lm_state=self.lm.begin() if self.lm else None)}

    @property
    def best(self) -> tuple[str, _Hyp]:
        return max(self.beams.items(), key=lambda kv: kv[1].score)

    @property
    def text(self) -> str:
        return " ".join(self.best[0].split())

    @property
    def tokens(self) -> list[Token]:
        return list(self.best[1].tokens)

    @property
    def word_texts(self) -> list[str] | None:
        """The words of the best hypothesis when its tokens do not spell them (None: they do)."""
        return None

    @property
    def last_nonblank_step(self) -> int:
        return self.best[1].last_nonblank

    def accept(self, log_probs: np.ndarray) -> None:
        for row in log_probs:
            self._step(row)
            self.steps += 1

    def _step(self, row: np.ndarray) -> None:
        blank, step = self.vocab.blank_id, self.steps
        order = np.argsort(row)[::-1][: self.cfg.max_tokens]
        cands = [int(k) for k in order if k != blank and row[k] >= row[order[0]] - self.cfg.token_beam]
        nxt: dict[str, _Hyp] = {}

        def slot(prefix: str, src: _Hyp) -> _Hyp:
            h = nxt.get(prefix)
            if h is None:
                h = nxt[prefix] = _Hyp(last=src.last, lm=src.lm, lm_state=src.lm_state, boost=src.boost,
                                       tokens=src.tokens, last_nonblank=src.last_nonblank)
            return h

        def grow(new_prefix: str, src: _Hyp, k: int, p: float, score, *args) -> None:
            """src extended by token k into new_prefix: scored (score(h, *args)) when it is new here."""
            fresh = new_prefix not in nxt
            h = slot(new_prefix, src)
            if fresh:
                h.last = k
                h.tokens = src.tokens + (Token(k, step, float(row[k])),)
                h.last_nonblank = step
                score(h, *args)
            h.pnb = _lae(h.pnb, p)

        for prefix, hyp in self.beams.items():
            total = hyp.acoustic
            word = prefix.rsplit(" ", 1)[-1]  # the word in progress (empty after a space)
            h = slot(prefix, hyp)
            h.pb = _lae(h.pb, total + float(row[blank]))
            if hyp.last >= 0 and hyp.last != blank:  # the last token again, collapsed
                h.pnb = _lae(h.pnb, hyp.pnb + float(row[hyp.last]))
                if row[hyp.last] > row[blank]:
                    h.last_nonblank = max(h.last_nonblank, step)
            for k in cands:
                p = (hyp.pb if k == hyp.last else total) + float(row[k])
                if p == NEG_INF:
                    continue
                ch = self._chars[k]
                if ch == " " and (not prefix or prefix.endswith(" ")):
                    # Spaces around nothing add no word: the path stays on this prefix.
                    h = slot(prefix, hyp)
                    h.pnb = _lae(h.pnb, p)
                    continue
                if self._lexicon is not None and not self._spells_a_word(word, ch):
                    continue
                if ch == " " and self._spoken is not None:  # the sounds of a word: every word that sounds so
                    kept = prefix[: len(prefix) - len(word)]
                    for spoken in self._spoken(word):
                        grow(kept + spoken + " ", hyp, k, p, self._complete_word, spoken)
                    continue
                grow(prefix + ch, hyp, k, p, self._score_extension, prefix, ch)
        self.beams = dict(heapq.nlargest(self.cfg.beam, nxt.items(), key=lambda kv: kv[1].score))

    def _spells_a_word(self, word: str, ch: str) -> bool:
        """Whether word + ch stays on the way to a lexicon word or hotword (a space: whether word is one)."""
        if ch == " ":
            return self._lexicon.is_word(word) or word in self._hot_words
        return word + ch in self._prefix_boost or self._lexicon.is_prefix(word + ch)

    def _score_extension(self, h: _Hyp, prefix: str, ch: str) -> None:
        """LM, word bonus and hotwords for a hypothesis just extended by ch (h starts as a copy of its parent)."""
        word = prefix.rsplit(" ", 1)[-1]
        if ch == " ":
            self._complete_word(h, word)
            return
        word += ch
        bonus = self._prefix_boost.get(word)
        if bonus is None:  # no longer on the way to a hotword: take the advance back
            h.lm -= h.boost
            h.boost = 0.0
        else:
            h.lm += bonus
            h.boost += bonus

    def _complete_word(self, h: _Hyp, word: str) -> None:
        if word not in self.cfg.hotwords:
            h.lm -= h.boost
        h.boost = 0.0
        if self.lm is not None:  # the bonus balances the LM's per-word cost; without an LM it would only add words
            lp, h.lm_state = self.lm.score(h.lm_state, word)
            h.lm += self.cfg.lm_weight * lp + self.cfg.word_bonus

    def finalize(self) -> None:
        """Score every hypothesis's last word and the end of the sentence, so the best one can be chosen."""
        done: dict[str, _Hyp] = {}
        for prefix, hyp in self._whole_words():
            word = prefix.rsplit(" ", 1)[-1]
            if word:
                self._complete_word(hyp, word)
            if self.lm is not None and prefix.strip():
                hyp.lm += self.cfg.lm_weight * self.lm.end(hyp.lm_state)
            key = prefix.strip()
            if key not in done or hyp.score > done[key].score:
                done[key] = hyp
        self.beams = done

    def _whole_words(self) -> list[tuple[str, _Hyp]]:
        """The hypotheses to finish: with a lexicon, a word cut off mid-way is no word, so those without one."""
        beams = self.beams
        if self._lexicon is not None:
            whole = {p: h for p, h in beams.items()
                     if not p.strip() or p.endswith(" ") or self._spells_a_word(p.rsplit(" ", 1)[-1], " ")}
            beams = whole or {self._cut_last_word(p, h): h for p, h in beams.items()}
        return list(beams.items())

    @staticmethod
    def _cut_last_word(prefix: str, hyp: _Hyp) -> str:
        """Drop an unfinished word (and its hotword advance); its tokens are its characters, one each."""
        word = prefix.rsplit(" ", 1)[-1]
        kept = prefix[: len(prefix) - len(word)]
        hyp.tokens = hyp.tokens[: len(hyp.tokens) - len(word)]
        hyp.lm -= hyp.boost
        hyp.boost = 0.0
        return kept


def _hotword_prefixes(hotwords: dict[str, float]) -> dict[str, float]:
    """Every proper prefix and the whole of each hotword -> bonus per character (the largest if shared)."""
    out: dict[str, float] = {}
    for word, bonus in hotwords.items():
        for i in range(1, len(word) + 1):
            out[word[:i]] = max(out.get(word[:i], 0.0), bonus / len(word))
    return out


MAX_HOTWORDS = 1000  # per stream or command: the beam checks every extension against them
MAX_HOTWORD_CHARS = 64  # per word: no English word is longer, and prefixes cost memory per character
MAX_HOTWORD_BONUS = 100.0
# Measured with scripts/hotword_eval.py (20 hotwords, 60 synthetic utterances, 100 dev ones, book LM, beam 32):
# recall 50 / 63 / 72 % at 5 / 8 / 12, false alarms 0.02 / 0.02 / 0.17 per utterance: 8 is the knee.
DEFAULT_HOTWORD_BONUS = 8.0


def hotword_boosts(items: list[str]) -> dict[str, float]:
    """parse_hotwords, with phrases boosted word by word (the decoder boosts single words)."""
    out = {w: b for phrase, b in parse_hotwords(items).items() for w in phrase.split()}
    if len(out) > MAX_HOTWORDS:
        raise ValueError(f"{len(out)} hotwords: at most {MAX_HOTWORDS} are allowed")
    return out


def parse_hotwords(items: list[str], default_bonus: float = DEFAULT_HOTWORD_BONUS) -> dict[str, float]:
    """`word` or `word:bonus` items (from the command line or a file, one per line) -> dict. Words longer than
    MAX_HOTWORD_CHARS, more than MAX_HOTWORDS items and bonuses that are not finite numbers within
    +/-MAX_HOTWORD_BONUS are refused (ValueError) before anything is expanded."""
    out = {}
    for item in items:
        item = item.strip()
        if len(out) >= MAX_HOTWORDS:
            raise ValueError(f"more than {MAX_HOTWORDS} hotwords")
        word, sep, bonus = item.rpartition(":")
        if not sep:
            word, bonus = item, str(default_bonus)
        word = word.strip().lower()
        if not word.split():
            raise ValueError(f"hotword {item[:40]!r} has no word")
        longest = max(word.split(), key=len, default="")
        if len(longest) > MAX_HOTWORD_CHARS:
            raise ValueError(f"hotword {longest[:20]!r}... is {len(longest)} characters long: at most "
                             f"{MAX_HOTWORD_CHARS} per word")
        try:
            value = float(bonus)
        except ValueError:
            raise ValueError(f"hotword {item[:40]!r}: bonus must be a number") from None
        if not abs(value) <= MAX_HOTWORD_BONUS:  # also refuses nan
            raise ValueError(f"hotword {word[:40]!r}: bonus {bonus[:20]!r} is not a number within +/-{MAX_HOTWORD_BONUS:g}")
        out[word] = value
    return out
