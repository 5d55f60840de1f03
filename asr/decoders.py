"""The decoder interface, the one decoding configuration, and the one factory that builds a decoder from it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from .beam import BeamConfig, BeamDecoder
from .decoding import GreedyDecoder
from .results import Token
from .vocab import Vocabulary


class Decoder(Protocol):
    """Turns a stream's log-prob chunks into tokens; decoding.GreedyDecoder and beam.BeamDecoder."""

    steps: int  # output steps accepted since the stream began (reset() keeps counting)

    def accept(self, log_probs: np.ndarray) -> None:
        """Advance over [steps, V] log-probs."""

    @property
    def text(self) -> str:
        """The best hypothesis of the segment so far (a partial)."""

    @property
    def tokens(self) -> list[Token]:
        ...

    @property
    def word_texts(self) -> list[str] | None:
        """The words' texts when the tokens do not spell them (a phone model's), else None."""

    @property
    def last_nonblank_step(self) -> int:
        ...

    def finalize(self) -> None:
        """The segment ends here: settle the hypothesis before text and tokens are read as final."""

    def reset(self) -> None:
        """Begin a new segment."""


@dataclass
class DecodingConfig:
    """How a Recognizer decodes: greedy unless beam search is asked for, there is an LM, or there are hotwords."""

    lm: str | bool | None = True  # a word LM file; True: the book LM (when built) for the bundled model
    beam_search: bool = False  # beam search even without an LM or hotwords
    beam: BeamConfig = field(default_factory=BeamConfig)  # its settings, hotwords included


def make_decoder(config: DecodingConfig, vocab: Vocabulary, lm=None, hotwords: dict[str, float] | None = None,
                 use_lm: bool = True, lexicon=None, pronouncer=None) -> Decoder:
    """The decoder for one stream. lm: the loaded LanguageModel (config.lm resolved), or None; hotwords: the
    stream's own, added to the configured ones; use_lm=False leaves the LM out (what `asr client --no-lm` asks
    for), which means greedy decoding unless beam search or hotwords are configured. lexicon: a phone model's
    (asr.lexicon.PhoneLexicon): its tokens spell no words, so it always decodes with the lexicon beam, a small one
    without an LM unless beam search was asked for."""
    if not use_lm:
        lm = None
    cfg = replace(config.beam, hotwords={**config.beam.hotwords, **hotwords}) if hotwords else config.beam
    if lexicon is not None:
        from .phonebeam import NO_LM_BEAM, PhoneBeamDecoder

        if lm is None and not config.beam_search:
            cfg = replace(cfg, beam=min(cfg.beam, NO_LM_BEAM))
        return PhoneBeamDecoder(vocab, cfg, lm, lexicon, pronouncer)
    beam = bool(hotwords or config.beam_search or lm is not None or config.beam.hotwords)
    if not beam:
        return GreedyDecoder(vocab)
    return BeamDecoder(vocab, cfg, lm)
