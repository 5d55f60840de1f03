"""Audio input: any file to 16 kHz mono float32, decoded block by block in constant memory.

soundfile (libsndfile) reads WAV, FLAC, Ogg/Vorbis, Opus and MP3; anything else (M4A/AAC, MP4,
WebM, video) goes through PyAV when installed, else the ffmpeg program when it is on PATH.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import numpy as np

from .quiet import quiet_stderr


# What libsndfile reads, and what PyAV/ffmpeg add (containers and video).
SOUNDFILE_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3")
MEDIA_EXTENSIONS = SOUNDFILE_EXTENSIONS + (".oga", ".m4a", ".aac", ".mp4", ".m4v", ".mov", ".webm", ".mkv", ".wma",
                                           ".aiff", ".aif", ".caf", ".amr", ".3gp")


def find_audio(folder: str, extensions=SOUNDFILE_EXTENSIONS) -> list[str]:
    """Files below folder (recursively) whose extension, in any case, is one of extensions; sorted."""
    return sorted(os.path.join(d, f) for d, _, files in os.walk(folder) for f in files
                  if os.path.splitext(f)[1].lower() in extensions)


class AudioError(Exception):
    """A file that cannot be read as audio; the message is one line meant for users."""


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise AudioError(f"{path}: no such file")
    if os.path.isdir(path):
        raise AudioError(f"{path}: is a directory")
    if os.path.getsize(path) == 0:
        raise AudioError(f"{path}: empty file")


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
    """Yield float32 mono blocks at sample_rate; `-` reads standard input."""
    import soundfile as sf

    if path == "-":
        data = sys.stdin.buffer.read()  # a pipe cannot seek, which most decoders need
        if not data:
            raise AudioError("-: empty input on stdin")
        source = io.BytesIO(data)
    else:
        _check_file(path)
        source = path
    try:
        with quiet_stderr():
            f = sf.SoundFile(source)
    except Exception as e:  # libsndfile does not know the format: try the general decoders
        if path == "-":
            raise AudioError(f"-: not a readable audio stream ({_first_line(e)})") from None
        yield from _decode_other(path, sample_rate, block_seconds, _first_line(e))
        return
    with f:
        yield from _soundfile_blocks(f, path, sample_rate, block_seconds)


def _soundfile_blocks(f, path, sample_rate, block_seconds):
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
    except Exception as e:
        raise AudioError(f"{path}: decoding failed ({_first_line(e)})") from None


def _decode_other(path: str, sample_rate: int, block_seconds: float, sf_reason: str) -> Iterator[np.ndarray]:
    try:
        import av  # noqa: F401
    except ImportError:
        if shutil.which("ffmpeg"):
            yield from _ffmpeg_blocks(path, sample_rate, block_seconds)
            return
        ext = os.path.splitext(path)[1] or "this format"
        raise AudioError(f"{path}: cannot decode {ext} ({sf_reason}); install PyAV (pip install av) or ffmpeg "
                         "for M4A/AAC/MP4/WebM/video") from None
    yield from _av_blocks(path, sample_rate, block_seconds)


def _av_blocks(path: str, sample_rate: int, block_seconds: float) -> Iterator[np.ndarray]:
    import av

    try:
        container = av.open(path)
    except Exception as e:
        raise AudioError(f"{path}: not a readable audio file ({_first_line(e)})") from None
    with container:
        if not container.streams.audio:
            raise AudioError(f"{path}: has no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        pending, size, target = [], 0, int(block_seconds * sample_rate)
        try:
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    pending.append(out.to_ndarray().reshape(-1))
                    size += len(pending[-1])
                if size >= target:
                    yield np.concatenate(pending)
                    pending, size = [], 0
            for out in resampler.resample(None):
                pending.append(out.to_ndarray().reshape(-1))
        except AudioError:
            raise
        except Exception as e:
            raise AudioError(f"{path}: decoding failed ({_first_line(e)})") from None
        if pending:
            yield np.concatenate(pending).astype(np.float32, copy=False)


def _ffmpeg_blocks(path: str, sample_rate: int, block_seconds: float) -> Iterator[np.ndarray]:
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-vn", "-f", "f32le", "-ac", "1", "-ar", str(sample_rate), "-"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while data := proc.stdout.read(int(block_seconds * sample_rate) * 4):
            yield np.frombuffer(data[: len(data) // 4 * 4], dtype="<f4").copy()
        err = proc.stderr.read().decode(errors="replace").strip()
        if proc.wait() != 0:
            raise AudioError(f"{path}: not a readable audio file ({err.splitlines()[0] if err else 'ffmpeg failed'})")
    finally:  # also when the consumer stops early
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def read_audio(path: str, sample_rate: int = 16000) -> np.ndarray:
    """The whole file as one float32 mono array at sample_rate."""
    blocks = list(read_blocks(path, sample_rate))
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)


def duration(path: str) -> float:
    """Seconds of audio in a file (from its header; no decoding)."""
    import soundfile as sf

    _check_file(path)
    try:
        with quiet_stderr():
            return sf.info(path).duration
    except Exception as e:
        reason = _first_line(e)
    try:
        import av

        with av.open(path) as c:
            if c.streams.audio and c.duration:
                return c.duration / 1_000_000  # av.time_base
    except Exception:
        pass
    raise AudioError(f"{path}: not a readable audio file ({reason})")
