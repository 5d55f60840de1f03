"""Audio input: any soundfile-readable file to 16 kHz mono float32, read block by block."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np


class AudioError(Exception):
    """A file that cannot be read as audio; the message is one line meant for users."""


def _open(path: str):
    import soundfile as sf

    if not os.path.exists(path):
        raise AudioError(f"{path}: no such file")
    if os.path.isdir(path):
        raise AudioError(f"{path}: is a directory")
    if os.path.getsize(path) == 0:
        raise AudioError(f"{path}: empty file")
    try:
        return sf.SoundFile(path)
    except Exception as e:  # soundfile raises LibsndfileError/RuntimeError/TypeError by format
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AudioError(f"{path}: not a readable audio file ({reason})") from None


class Resampler:
    """Streaming resampler to the target rate (soxr keeps its filter state between blocks)."""

    def __init__(self, in_rate: int, out_rate: int):
        self.passthrough = in_rate == out_rate
        if not self.passthrough:
            import soxr

            self._soxr = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")

    def __call__(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        if self.passthrough:
            return block
        return self._soxr.resample_chunk(block, last=last)


def to_mono(block: np.ndarray) -> np.ndarray:
    return block.mean(axis=1, dtype=np.float32) if block.ndim == 2 else block.astype(np.float32)


def read_blocks(path: str, sample_rate: int = 16000, block_seconds: float = 10.0) -> Iterator[np.ndarray]:
    """Yield float32 mono blocks at sample_rate; memory stays bounded by the block size."""
    f = _open(path)
    with f:
        resample = Resampler(f.samplerate, sample_rate)
        block_frames = max(1, int(block_seconds * f.samplerate))
        try:
            while True:
                data = f.read(block_frames, dtype="float32", always_2d=True)
                last = len(data) < block_frames
                out = resample(to_mono(data), last=last)
                if len(out):
                    yield out
                if last:
                    break
        except AudioError:
            raise
        except Exception as e:
            raise AudioError(f"{path}: decoding failed ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def read_audio(path: str, sample_rate: int = 16000) -> np.ndarray:
    """The whole file as one float32 mono array at sample_rate."""
    blocks = list(read_blocks(path, sample_rate))
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)


def duration(path: str) -> float:
    with _open(path) as f:
        return f.frames / f.samplerate
