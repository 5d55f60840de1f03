"""What a run's output heads learn: characters (the default) or phones, and the optional auxiliary phone head of
a character model (TrainConfig.targets, aux_phone_weight)."""

from __future__ import annotations

from dataclasses import dataclass

from asr.phones import PHONE_TOKENS, Pronouncer
from asr.vocab import Vocabulary, normalize_text

from .data import char_encoder


@dataclass
class Heads:
    units: str  # the model file's asr.units
    vocab: Vocabulary  # the output layer's
    aux_vocab: Vocabulary | None  # the training-only phone head's, or None
    encoders: list  # normalised text -> target ids (or why not), one per head: output first, then aux
    pronouncer: Pronouncer | None

    def prepare(self, utts) -> None:
        """Pronounce in one go every word CMUdict lacks (espeak-ng), before utterances are encoded one by one."""
        if self.pronouncer is not None:
            words = {w for u in utts for w in (normalize_text(u.text, strict=True) or "").split()}
            missing = self.pronouncer.prepare(words)
            if missing:
                print(f"{len(missing)} of {len(words)} words not in CMUdict, pronounced by espeak-ng", flush=True)


def phone_vocabulary() -> Vocabulary:
    return Vocabulary(PHONE_TOKENS)


def phone_encoder(vocab: Vocabulary, pronouncer: Pronouncer):
    def encode(text: str):
        phones = pronouncer.phones(text)
        return "no pronunciation" if phones is None else vocab.encode(phones)
    return encode


def heads_for(targets: str, aux_phone_weight: float) -> Heads:
    if targets == "phones":
        vocab, pronouncer = phone_vocabulary(), Pronouncer()
        return Heads("phones", vocab, None, [phone_encoder(vocab, pronouncer)], pronouncer)
    vocab = Vocabulary()
    if not aux_phone_weight:
        return Heads("chars", vocab, None, [char_encoder(vocab)], None)
    aux, pronouncer = phone_vocabulary(), Pronouncer()
    return Heads("chars", vocab, aux, [char_encoder(vocab), phone_encoder(aux, pronouncer)], pronouncer)


def as_heads(heads: Heads | Vocabulary) -> Heads:
    """Heads as they are; a bare vocabulary is a character model's one head."""
    return heads if isinstance(heads, Heads) else Heads("chars", heads, None, [char_encoder(heads)], None)


def render(ids, vocab: Vocabulary, units: str) -> str:
    """Target or hypothesis ids as text to score: characters as they are, phones one word each with the word
    boundary as "|" (so a phone model's WER during training is its phone error rate, boundaries included)."""
    if units == "chars":
        return vocab.decode(ids)
    return " ".join("|" if vocab.tokens[i] == " " else vocab.tokens[i] for i in ids if i != vocab.blank_id)
