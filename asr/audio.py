"""Audio input: any file to 16 kHz mono float32, decoded block by block in constant memory.

soundfile (libsndfile) reads WAV, FLAC, Ogg/Vorbis, Opus and MP3; anything else (M4A/AAC, MP4,
WebM, video) goes through PyAV when installed, else the ffmpeg program when it is on PATH. Every
decoder only hands over float samples at the file's own rate and channel count: mixing to mono,
checking, resampling and cutting into blocks happen once, below, so a recording gives the same
signal whatever its container.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import numpy as np

from .quiet import quiet_stderr

log = logging.getLogger(__name__)

# What libsndfile reads, and what PyAV/ffmpeg add (containers and video).
SOUNDFILE_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3")
MEDIA_EXTENSIONS = SOUNDFILE_EXTENSIONS + (".oga", ".m4a", ".aac", ".mp4", ".m4v", ".mov", ".webm", ".mkv", ".wma",
                                           ".aiff", ".aif", ".caf", ".amr", ".3gp")
# Below this a header is lying or the audio holds no speech; resampling 1 Hz to 16 kHz multiplies every sample by
# 16000, which is how a 4 KB file once took 1.9 GB.
MIN_SAMPLE_RATE = 4000
_READ_SAMPLES = 1 << 20  # samples over all channels per decoder read: memory stays bounded at any channel count


def find_audio(folder: str, extensions=SOUNDFILE_EXTENSIONS) -> list[str]:
    """Files below folder (recursively) whose extension, in any case, is one of extensions; sorted."""
    def refuse(e: OSError):
        raise AudioError(f"{e.filename}: cannot list folder: {e.strerror}")

    return sorted(os.path.join(d, f) for d, _, files in os.walk(folder, onerror=refuse) for f in files
                  if os.path.splitext(f)[1].lower() in extensions)


class AudioError(Exception):
    """A file that cannot be read as audio; the message is one line meant for users."""


class _Damaged(Exception):
    """A decoder stopped on bad data; what it yielded before is good."""


def _reason(e: BaseException) -> str:
    """A decoder's complaint as a short phrase: no errno numbers, no repeated file name."""
    text = getattr(e, "strerror", None) or getattr(e, "error_string", None) or str(e)
    text = text.strip().splitlines()[0].strip().rstrip(".") if text.strip() else type(e).__name__
    if text.lower().startswith("error"):  # libsndfile's "Error : flac decoder lost sync."
        text = text[5:].lstrip(" :") or text
    return text[:1].lower() + text[1:]


_OS_REASONS = {errno.ENOENT: "no such file", errno.ELOOP: "symlink loop (too many levels of symbolic links)",
               errno.EACCES: "permission denied", errno.ENOTDIR: "no such file (a parent is not a folder)"}


def _os_reason(path: str, e: OSError) -> str:
    if e.errno == errno.ENOENT and os.path.islink(path):
        return "broken symlink (its target does not exist)"
    return _OS_REASONS.get(e.errno) or _reason(e)


def _check_file(path: str) -> None:
    try:
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode) and st.st_size:
            open(path, "rb").close()
    except OSError as e:
        raise AudioError(f"{path}: {_os_reason(path, e)}") from None
    except ValueError:  # os.stat refuses a NUL byte in a path
        raise AudioError(f"{path!r}: not a valid file name") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(f"{path}: is a directory")
    if not stat.S_ISREG(st.st_mode):  # a FIFO may never end or never start, /dev/zero never ends: not ours to wait on
        raise AudioError(f"{path}: not a regular file (a pipe or device; pipe audio in as standard input, `-`)")
    if st.st_size == 0:
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
    """The mean of the channels: the one downmix for every decoder, so levels do not depend on the container."""
    if block.ndim == 1:
        return block.astype(np.float32)
    mono = block[:, 0].astype(np.float32)  # column by column: ten times faster than mean(axis=1) on (n, 2)
    for channel in range(1, block.shape[1]):
        mono += block[:, channel]
    if block.shape[1] > 1:
        mono *= np.float32(1 / block.shape[1])
    return mono


@contextlib.contextmanager
def collect_warnings():
    """Inside the block, warnings about damaged inputs go into the yielded list instead of being logged."""
    notes: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            notes.append(record.getMessage())

    handler, propagate = Collect(logging.WARNING), log.propagate
    log.addHandler(handler)
    log.propagate = False
    try:
        yield notes
    finally:
        log.removeHandler(handler)
        log.propagate = propagate


def read_blocks(path: str, sample_rate: int = 16000, block_seconds: float = 10.0) -> Iterator[np.ndarray]:
    """Yield float32 mono blocks at sample_rate, none longer than block_seconds; `-` reads standard input.

    A file damaged or truncated part way yields the audio before the damage, then logs one warning line
    (logger `asr.audio`); one with no readable audio at all raises AudioError."""
    if path == "-":
        with _spool_stdin() as f:
            yield from _blocks(f, "-", sample_rate, block_seconds)
    else:
        _check_file(path)
        yield from _blocks(path, path, sample_rate, block_seconds)


@contextlib.contextmanager
def _spool_stdin():
    """Standard input copied to an unnamed temporary file: decoders need to seek, and disk is cheaper than memory."""
    if sys.stdin is None:
        raise AudioError("-: standard input is closed")
    if sys.stdin.isatty():  # reading would wait for the user to type audio
        raise AudioError("-: standard input is a terminal, not audio (pipe a file into it)")
    with tempfile.TemporaryFile(prefix="asr-stdin-") as f:
        try:
            shutil.copyfileobj(getattr(sys.stdin, "buffer", sys.stdin), f, 1 << 20)
        except OSError as e:
            raise AudioError(f"-: cannot read standard input ({_reason(e)})") from None
        if not f.tell():
            raise AudioError("-: empty input on stdin")
        f.seek(0)
        yield f


def _blocks(source, name: str, sample_rate: int, block_seconds: float) -> Iterator[np.ndarray]:
    """Mix, check, resample and re-cut the decoder's native blocks; a decoder's damage ends the file with a warning."""
    target = max(1, int(block_seconds * sample_rate))
    pending: list[np.ndarray] = []
    size = frames = 0
    resample = rate = damage = None
    try:
        for rate, block in _decoded(source, name):
            if resample is None:
                if rate < MIN_SAMPLE_RATE:
                    raise AudioError(f"{name}: sample rate {rate} Hz is below the minimum of {MIN_SAMPLE_RATE} Hz")
                resample = Resampler(rate, sample_rate)
            mono = to_mono(block)
            if not np.isfinite(mono.sum()) and not np.isfinite(mono).all():  # the sum is the cheap test
                at = (frames + int(np.argmin(np.isfinite(mono)))) / rate
                raise AudioError(f"{name}: non-finite samples (NaN or infinity) at {at:.2f} s")
            frames += len(mono)
            pending.append(resample(mono))
            size += len(pending[-1])
            if size >= target:
                joined = np.concatenate(pending)
                whole = len(joined) // target * target
                yield from (joined[start : start + target] for start in range(0, whole, target))
                pending, size = [joined[whole:].copy()], len(joined) - whole
    except _Damaged as e:
        damage = str(e)
    if resample is not None:
        pending.append(resample(np.zeros(0, np.float32), last=True))
    rest = np.concatenate(pending) if pending else np.zeros(0, np.float32)
    for start in range(0, len(rest), target):
        yield rest[start : start + target]
    if damage is not None:
        if not frames:
            raise AudioError(f"{name}: decoding failed ({damage})")
        log.warning("%s: damaged or truncated after %.1f s (%s); using the audio before it",
                    name, frames / rate, damage)


def _decoded(source, name: str) -> Iterator[tuple[int, np.ndarray]]:
    """(rate, frames x channels float32) from the first decoder that reads the source: libsndfile, then PyAV/ffmpeg.

    A decoder that fails before its first block hands over to the next; once one has given audio it is kept."""
    failure = None
    for decoder in (_soundfile_frames, _other_frames):
        if not isinstance(source, str):
            source.seek(0)
        blocks = decoder(source, name, failure)
        try:
            first = next(blocks)
        except StopIteration:  # read fine, but holds no audio
            return
        except _Damaged as e:
            failure = str(e)
            continue
        yield first
        yield from blocks
        return
    raise AudioError(f"{name}: not a readable audio file ({failure})")


def _soundfile_frames(source, name: str, failure: str | None) -> Iterator[tuple[int, np.ndarray]]:
    import soundfile as sf

    try:
        with quiet_stderr():
            f = sf.SoundFile(source)
    except Exception as e:
        raise _Damaged(_reason(e)) from None
    with f:
        step = max(1, min(10 * f.samplerate, _READ_SAMPLES // max(1, f.channels)))
        buf = np.empty((step, f.channels), np.float32)
        quiet = quiet_stderr if f.format == "MP3" else contextlib.nullcontext  # libmpg123 prints resync notes
        done = 0
        while True:
            try:
                with quiet():
                    n = len(f.read(step, dtype="float32", always_2d=True, out=buf))
            except Exception as e:
                # libsndfile drops the whole read on an error; its position says how much of buf it had filled.
                try:
                    n = min(max(f.tell() - done, 0), step)
                except Exception:
                    n = 0
                if n:
                    yield f.samplerate, buf[:n]
                raise _Damaged(_reason(e)) from None
            if n:
                yield f.samplerate, buf[:n]
            done += n
            if n < step:
                return


def _other_frames(source, name: str, failure: str | None) -> Iterator[tuple[int, np.ndarray]]:
    try:
        import av  # noqa: F401
    except ImportError:
        if shutil.which("ffmpeg"):
            return _ffmpeg_frames(source, name)
        ext = os.path.splitext(name)[1] or "this format"
        raise AudioError(f"{name}: cannot decode {ext} ({failure}); install PyAV (pip install av) or ffmpeg "
                         "for M4A/AAC/MP4/WebM/video") from None
    return _av_frames(source, name)


def _av_frames(source, name: str) -> Iterator[tuple[int, np.ndarray]]:
    import av

    try:
        container = av.open(source)
    except Exception as e:
        raise _Damaged(_reason(e)) from None
    with container:
        if not container.streams.audio:
            raise AudioError(f"{name}: has no audio stream")
        stream = container.streams.audio[0]
        if not (stream.rate and stream.channels):  # a guessed container around bytes that are not audio
            raise _Damaged(f"no decodable audio ({stream.codec_context.name} at {stream.rate} Hz, "
                           f"{stream.channels} channels)")
        to_float = av.AudioResampler(format="fltp")  # only the sample format: rate and channels stay the file's
        pending, size, bad, error = [], 0, 0, None
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError as e:  # one bad packet: skip it, keep decoding
                    bad, error = bad + 1, e
                    continue
                for frame in itertools.chain.from_iterable(map(to_float.resample, frames)):
                    pending.append(frame.to_ndarray().T)
                    size += len(pending[-1])
                    if size * frame.layout.nb_channels >= _READ_SAMPLES or size >= frame.sample_rate:
                        yield frame.sample_rate, np.concatenate(pending)
                        pending, size = [], 0
            pending += [out.to_ndarray().T for out in to_float.resample(None)]
        except Exception as e:  # the container itself broke: what decoded so far is good
            bad, error = bad + 1, e
        if pending:
            yield to_float.rate, np.concatenate(pending)
        if bad:
            raise _Damaged(f"{bad} unreadable packet{'s' if bad > 1 else ''}: {_reason(error)}")


def _ffmpeg_frames(source, name: str) -> Iterator[tuple[int, np.ndarray]]:
    # Sun AU on the pipe: its header states rate and channels and allows an unknown length.
    fds = () if isinstance(source, str) else (source.fileno(),)
    src = source if isinstance(source, str) else f"/dev/fd/{fds[0]}"
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", src, "-map", "0:a:0", "-c:a", "pcm_f32be", "-f", "au", "-"]
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: ffmpeg's complaints must never fill and block it
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, pass_fds=fds)

        def complaint() -> str | None:
            proc.wait()
            err.seek(0)
            lines = err.read(4096).decode(errors="replace").strip().splitlines()
            line = re.sub(r"^\[[^]]*\] *", "", lines[0]) if lines else ""  # drop "[aac @ 0x55d0...] "
            return line[:1].lower() + line[1:] or None

        try:
            header = proc.stdout.read(24)
            if len(header) < 24 or header[:4] != b".snd":
                raise _Damaged(complaint() or "ffmpeg failed")
            offset, _, _, rate, channels = struct.unpack(">5I", header[4:])
            if not channels:
                raise _Damaged("no audio channels")
            proc.stdout.read(max(0, offset - 24))
            frame = 4 * channels
            step = max(1, min(rate, _READ_SAMPLES // channels))
            while data := proc.stdout.read(step * frame):
                yield rate, np.frombuffer(data[: len(data) // frame * frame], ">f4").reshape(-1, channels)
            reason = complaint()
            if proc.returncode or reason:
                raise _Damaged(reason or f"ffmpeg exited with status {proc.returncode}")
        finally:  # also when the consumer stops early
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()


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
        reason = _reason(e)
    try:
        import av

        with av.open(path) as c:
            if c.streams.audio and c.duration:
                return c.duration / 1_000_000  # av.time_base
    except Exception as e:
        reason = _reason(e)
    raise AudioError(f"{path}: not a readable audio file ({reason})")
