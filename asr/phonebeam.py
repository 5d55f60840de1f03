"""The prefix beam search (asr.beam) for a phone model: tokens are phones and the word boundary, words come
from a pronunciation lexicon, the word LM scores them as it scores a character model's words.

A hypothesis's prefix holds its finished words as text and the word in progress as phone codes
(asr.lexicon); at a word boundary the phones become each word that sounds so (homophones are separate
hypotheses, which the LM tells apart). Hotwords are pronounced at run time: CMUdict, else espeak-ng."""

from __future__ import annotations

from dataclasses import replace

from .beam import BeamConfig, BeamDecoder, _Hyp
from .lexicon import PhoneLexicon, is_code
from .phones import RUNTIME_ESPEAK_SECONDS, Pronouncer, PronunciationError
from .vocab import Vocabulary

NO_LM_BEAM = 8  # without an LM the lexicon alone orders hypotheses: a wide beam buys little


class PhoneBeamDecoder(BeamDecoder):
    def __init__(self, vocab: Vocabulary, config: BeamConfig | None, lm, lexicon: PhoneLexicon,
                 pronouncer: Pronouncer | None = None):
        config = config or BeamConfig()
        super().__init__(vocab, config, lm)
        self._lexicon = lexicon
        self._chars = lexicon.codes
        self._spoken = self._words_for
        self._hot_codes: dict[str, list[str]] = {}
        boosts: dict[str, float] = {}
        if config.hotwords:
            pronouncer = pronouncer or Pronouncer(timeout=RUNTIME_ESPEAK_SECONDS)
            pronouncer.prepare(config.hotwords)  # one espeak-ng process for all the words CMUdict lacks
        for word, bonus in config.hotwords.items():
            prons = pronouncer.get(word)
            codes = [c for c in (lexicon.spell(p) for p in prons) if c]
            if not codes:
                raise PronunciationError(f"hotword {word[:40]!r} has no pronunciation")
            for code in codes:
                self._hot_codes.setdefault(code, []).append(word)
                for i in range(1, len(code) + 1):  # the character beam's prefix bonus, per phone
                    boosts[code[:i]] = max(boosts.get(code[:i], 0.0), bonus / len(code))
        self._prefix_boost = boosts
        self._hot_words = self._hot_codes

    def _words_for(self, code: str) -> list[str]:
        words = self._lexicon.words_for(code)
        hot = self._hot_codes.get(code)
        return words + [w for w in hot if w not in words] if hot else words

    @property
    def text(self) -> str:
        return " ".join(self.word_texts)

    @property
    def word_texts(self) -> list[str]:
        """The best hypothesis's finished words (the phones of a word in progress are no word yet)."""
        prefix = self.best[0]
        last = prefix.rsplit(" ", 1)[-1]
        if last and is_code(last[0]):
            prefix = prefix[: len(prefix) - len(last)]
        return prefix.split()

    def _whole_words(self) -> list[tuple[str, _Hyp]]:
        """Each hypothesis whose last phones make a word, once for every word they make; the others only when
        there is none (their unfinished word dropped)."""
        whole: list[tuple[str, _Hyp]] = []
        for prefix, hyp in self.beams.items():
            last = prefix.rsplit(" ", 1)[-1]
            if not last or not is_code(last[0]):
                whole.append((prefix, hyp))
            elif self._spells_a_word(last, " "):
                kept = prefix[: len(prefix) - len(last)]
                whole += [(kept + w, replace(hyp)) for w in self._words_for(last)]
        return whole or [(self._cut_last_word(p, h), h) for p, h in self.beams.items()]
