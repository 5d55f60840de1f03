"""The character vocabulary shared by training, export and the runtime."""

from __future__ import annotations

import re

BLANK = "<blank>"
# Order matters: token ids are positions in this tuple and are baked into every model file.
DEFAULT_TOKENS: tuple[str, ...] = (BLANK, " ", "'", *"abcdefghijklmnopqrstuvwxyz")

_SPACES = re.compile(r"\s+")
_NOT_IN_VOCAB = re.compile(r"[^a-z' ]")
# What strict normalisation may turn into word breaks; any other character outside a-z, apostrophe and white
# space (a digit, an accented letter) cannot be spelled, and changing it into something else would be a lie.
_UNSPELLABLE = re.compile(r"[^a-z'\s.,;:!?\"()\[\]{}«»“”‘\-–—_/]")


def normalize_text(text: str, strict: bool = False) -> str | None:
    """The one text normalisation: lower-case, curly apostrophes straight, every other character outside a-z and
    apostrophe a word break, single spaces (how evaluation compares texts).

    strict (corpus import and training targets): None for text holding a character that is neither in the
    vocabulary, white space nor punctuation; and apostrophes at the ends of words (quotes) are dropped, those
    inside (contractions) kept."""
    text = text.lower().replace("’", "'")
    if strict and _UNSPELLABLE.search(text):
        return None
    text = _SPACES.sub(" ", _NOT_IN_VOCAB.sub(" ", text)).strip()
    return " ".join(w.strip("'") or w for w in text.split(" ")) if strict else text


class Vocabulary:
    def __init__(self, tokens: tuple[str, ...] | list[str] = DEFAULT_TOKENS, blank_id: int = 0):
        self.tokens = tuple(tokens)
        self.blank_id = blank_id
        self._ids = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Token ids of already-normalised text; raises ValueError for characters outside the vocabulary."""
        try:
            return [self._ids[ch] for ch in text]
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids) -> str:
        return "".join(self.tokens[i] for i in ids if i != self.blank_id)
