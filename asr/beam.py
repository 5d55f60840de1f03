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
    beam: int = 64  # hypotheses kept per step (dev, book LM + lexicon: 16 / 32 / 64 / 96: WER 42.6 / 40.5 / 39.5 / 39.05 %)
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


def _ranking(item: tuple[str, _Hyp]) -> float:
    """The sort key of (prefix, hypothesis): its score, without the cost of two property calls."""
    h = item[1]
    return _lae(h.pb, h.pnb) + h.lm


class BeamDecoder:
    _prune = True  # the exact pruning of _step (the tests turn it off to compare)

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
        self._settled = False  # finalize() has scored the last words: the hypotheses no longer extend as _step's

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
        if not len(log_probs):
            return
        # Per chunk, not per step: numpy's per-call cost is most of what a step's sort costs.
        order = np.argsort(log_probs, axis=1)[:, ::-1][:, : self.cfg.max_tokens]
        floors = log_probs[np.arange(len(log_probs)), order[:, 0]] - self.cfg.token_beam
        for row, top, floor in zip(log_probs.tolist(), order.tolist(), floors.tolist()):
            self._step(row, top, floor)
            self.steps += 1

    def _step(self, row: list[float], top: list[int], floor: float) -> None:
        """One output step: row, its log-probs; top, its best tokens, best first; floor, the token beam's edge."""
        blank, step, lae = self.vocab.blank_id, self.steps, _lae
        cands = [k for k in top if k != blank and row[k] >= floor]
        chars, lexicon, spoken, boosts = self._chars, self._lexicon, self._spoken, self._prefix_boost
        p_blank, beams, size = row[blank], self.beams, self.cfg.beam
        totals = [lae(h.pb, h.pnb) for h in beams.values()]
        # Pruning that changes nothing: `bounds` holds lower bounds of the final scores of distinct hypotheses of
        # this step, `cut` the size-th largest once there are that many. A hypothesis scored below it cannot be
        # kept, so it is not made. With characters, a prefix not in the beam has one parent and one path here, so
        # its score is final when it is made; one in the beam scores at least its blank path plus its LM score
        # (the same for every path to a prefix). Words made of phones have several parents: no pruning.
        bounds = None
        if self._prune and spoken is None and not self._settled:
            bounds = [t + p_blank + h.lm for t, h in zip(totals, beams.values())]
            bounds = heapq.nlargest(size, bounds) if len(bounds) > size else bounds
            heapq.heapify(bounds)
        cut = bounds[0] if bounds is not None and len(bounds) >= size else NEG_INF
        best_bonus = max(boosts.values(), default=NEG_INF)
        nxt: dict[str, _Hyp] = {}
        for (prefix, hyp), total in zip(beams.items(), totals):
            pb, pnb, last = hyp.pb, hyp.pnb, hyp.last
            repeat = last >= 0 and last != blank  # the last token again, collapsed
            own = nxt.get(prefix)
            if own is None:  # the usual case, made whole at once (adding to minus infinity changes nothing)
                own = nxt[prefix] = _Hyp(total + p_blank, pnb + row[last] if repeat else NEG_INF, last, hyp.lm,
                                         hyp.lm_state, hyp.boost, hyp.tokens, hyp.last_nonblank)
            else:
                own.pb = lae(own.pb, total + p_blank)
                if repeat:
                    own.pnb = lae(own.pnb, pnb + row[last])
            if repeat and row[last] > p_blank and own.last_nonblank < step:
                own.last_nonblank = step
            if not cands:
                continue
            word = prefix.rsplit(" ", 1)[-1]  # the word in progress (empty after a space)
            # No letter can raise the LM score above this: below the cut, the lexicon need not be asked.
            lm_most = hyp.lm + max(best_bonus, -hyp.boost)
            for k in cands:
                p = (pb if k == last else total) + row[k]
                if p == NEG_INF:
                    continue
                ch = chars[k]
                if ch == " ":
                    if not prefix or prefix[-1] == " ":  # spaces around nothing add no word: the path stays
                        own.pnb = lae(own.pnb, p)
                        continue
                    if lexicon is not None and not (lexicon.is_word(word) or word in self._hot_words):
                        continue
                    if spoken is not None:  # the sounds of a word: every word that sounds so
                        kept = prefix[: len(prefix) - len(word)]
                        for said in spoken(word):
                            self._grow(nxt, kept + said + " ", hyp, k, p, row[k], step, said)
                        continue
                    grown = None
                else:
                    if p + lm_most < cut and bounds is not None and prefix + ch not in beams:
                        continue
                    grown = word + ch
                    if lexicon is not None and not (grown in boosts or lexicon.is_prefix(grown)):
                        continue
                new = prefix + ch
                h = nxt.get(new)
                if h is not None:
                    h.pnb = lae(h.pnb, p)
                    continue
                if grown is None:
                    lm, boost, state = self._word_done(hyp.lm, hyp.boost, hyp.lm_state, word)
                else:
                    state, bonus = hyp.lm_state, boosts.get(grown)
                    if bonus is None:  # no longer on the way to a hotword: take the advance back
                        lm, boost = hyp.lm - hyp.boost, 0.0
                    else:
                        lm, boost = hyp.lm + bonus, hyp.boost + bonus
                if bounds is not None and new not in beams:
                    score = p + lm
                    if score < cut:
                        continue
                    if len(bounds) < size:
                        heapq.heappush(bounds, score)
                        if len(bounds) == size:
                            cut = bounds[0]
                    elif score > cut:
                        heapq.heapreplace(bounds, score)
                        cut = bounds[0]
                nxt[new] = _Hyp(NEG_INF, p, k, lm, state, boost, hyp.tokens + (Token(k, step, row[k]),), step)
        ranked = sorted(nxt.items(), key=_ranking, reverse=True)  # stable, as heapq.nlargest
        self.beams = dict(ranked[:size])

    def _grow(self, nxt: dict, prefix: str, src: _Hyp, k: int, p: float, logprob: float, step: int,
              word: str) -> None:
        """src's path extended by a word boundary (token k) that makes its phones the word `word`, into prefix."""
        h = nxt.get(prefix)
        if h is None:
            lm, boost, state = self._word_done(src.lm, src.boost, src.lm_state, word)
            nxt[prefix] = _Hyp(NEG_INF, p, k, lm, state, boost, src.tokens + (Token(k, step, logprob),), step)
        else:
            h.pnb = _lae(h.pnb, p)

    def _spells_a_word(self, word: str, ch: str) -> bool:
        """Whether word + ch stays on the way to a lexicon word or hotword (a space: whether word is one)."""
        if ch == " ":
            return self._lexicon.is_word(word) or word in self._hot_words
        return word + ch in self._prefix_boost or self._lexicon.is_prefix(word + ch)

    def _word_done(self, lm: float, boost: float, state, word: str) -> tuple[float, float, object]:
        """A hypothesis's (lm, boost, lm_state) once word is complete."""
        if word not in self.cfg.hotwords:
            lm -= boost
        if self.lm is not None:  # the bonus balances the LM's per-word cost; without an LM it would only add words
            lp, state = self.lm.score(state, word)
            lm += self.cfg.lm_weight * lp + self.cfg.word_bonus
        return lm, 0.0, state

    def _complete_word(self, h: _Hyp, word: str) -> None:
        h.lm, h.boost, h.lm_state = self._word_done(h.lm, h.boost, h.lm_state, word)

    def finalize(self) -> None:
        """Score every hypothesis's last word and the end of the sentence, so the best one can be chosen."""
        done: dict[str, _Hyp] = {}
        self._settled = True
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
