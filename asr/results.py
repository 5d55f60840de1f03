"""What recognition produces, for every sink (writers, display, server, client): results, words, tokens."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Token:
    id: int
    step: int  # model output step at which the token was emitted
    logprob: float


@dataclass
class Word:
    text: str
    start: float
    end: float
    confidence: float


@dataclass
class Result:
    final: bool
    text: str
    start: float
    end: float
    words: list[Word] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"type": "final" if self.final else "partial", "text": self.text, "start": self.start,
                "end": self.end, "words": [vars(w) for w in self.words]}

    @classmethod
    def from_dict(cls, d: dict) -> "Result":
        """The inverse of to_dict (a server's message back into a Result)."""
        return cls(d["type"] == "final", d["text"], d["start"], d["end"], [Word(**w) for w in d.get("words", [])])
