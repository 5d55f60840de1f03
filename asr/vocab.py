"""The character vocabulary shared by training, export and the runtime."""

from __future__ import annotations

import re

BLANK = "<blank>"
# Order matters: token ids are positions in this tuple and are baked into every model file.
DEFAULT_TOKENS: tuple[str, ...] = (BLANK, " ", "'", *"abcdefghijklmnopqrstuvwxyz")

_SPACES = re.compile(r"\s+")
_NOT_IN_VOCAB = re.compile(r"[^a-z' ]")


def normalize_text(text: str) -> str:
    """Lower-case, keep a-z and apostrophe, collapse whitespace: the evaluation normalisation."""
    text = text.lower().replace("’", "'")
    text = _NOT_IN_VOCAB.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


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
