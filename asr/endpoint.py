"""Endpointing: when to close a segment, as plain configuration (sherpa-onnx style rules)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EndpointConfig:
    silence_after_speech: float = 1.0  # seconds of trailing non-speech after decoded text
    silence_without_speech: float = 2.4  # seconds with nothing decoded at all
    max_segment: float = 20.0  # a segment is closed at this length whatever it holds

    def __post_init__(self):
        for name in ("silence_after_speech", "silence_without_speech", "max_segment"):
            if getattr(self, name) <= 0:
                raise ValueError(f"endpoint {name.replace('_', '-')} must be positive")

    def is_endpoint(self, has_speech: bool, trailing_silence: float, segment_length: float) -> bool:
        if segment_length >= self.max_segment:
            return True
        if has_speech:
            return trailing_silence >= self.silence_after_speech
        return trailing_silence >= self.silence_without_speech
