"""Voice activity detection: Silero VAD's ONNX model, read from the silero-vad wheel and run by our onnxruntime.

The wheel's Python code imports torch, so it is never imported: the package folder is only located
(importlib.util.find_spec does not run a top-level package's __init__) and its sequence model
(silero_vad_16k_sequence.onnx, MIT licence) is opened as a file. That model takes a block of 32 ms frames
in one call and gives the same probabilities as the frame-by-frame model, so a stream pays one call per
block rather than one per frame. Nothing is downloaded: the model is in the wheel.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import numpy as np

from .model import ModelError

SILERO_VERSION = "6.2.3"
INSTALL_HINT = f"pip install --no-deps silero-vad=={SILERO_VERSION}"
MODEL_FILE = "silero_vad_16k_sequence.onnx"
SAMPLE_RATE = 16000
FRAME = 512  # samples per decision (32 ms)
CONTEXT = 64  # samples of the previous frame the model sees before each frame
FRAME_SECONDS = FRAME / SAMPLE_RATE
MAX_FRAMES = 512  # frames per model call at most (16 s; its input is 1.2 MB)
_STATE = (1, 1, 128)


class VadError(ModelError):
    """The VAD model is missing or unusable; one line for users."""


@dataclass(frozen=True)
class VadConfig:
    threshold: float = 0.5  # speech starts at this probability; it ends below threshold - 0.15 (hysteresis)
    silence: float = 0.5  # live and server: seconds of VAD non-speech after decoded text that close a segment
    skip: float = 1.0  # files: non-speech lasting longer than this is not decoded (beyond the pad)
    pad: float = 0.3  # files: seconds of audio kept before each stretch of speech

    def __post_init__(self):
        if not 0 < self.threshold < 1:
            raise ValueError("vad threshold must be between 0 and 1")
        for name in ("silence", "skip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"vad {name} must be positive")
        if not self.pad >= 0:
            raise ValueError("vad pad must not be negative")
        if not self.skip > self.pad:  # else a stream's pre-roll would reach back into the previous stream's audio
            raise ValueError(f"vad skip must be longer than the {self.pad:g} s kept before speech")

    @property
    def neg_threshold(self) -> float:
        return max(self.threshold - 0.15, 0.01)


def model_path() -> str:
    """$ASR_VAD_MODEL, else the sequence model inside the installed silero-vad wheel."""
    env = os.environ.get("ASR_VAD_MODEL")
    if env:
        if not os.path.isfile(env):
            raise VadError(f"{env}: VAD model file not found ($ASR_VAD_MODEL)")
        return env
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VadError(f"--vad needs the Silero VAD model: {INSTALL_HINT}")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", MODEL_FILE)
    if not os.path.isfile(path):
        raise VadError(f"{path} not found: silero-vad {SILERO_VERSION} or newer ships it ({INSTALL_HINT})")
    return path


class VadModel:
    """One onnxruntime session (one thread, CPU: the model is tiny), shared by every stream of a Recognizer."""

    def __init__(self, path: str | None = None):
        import onnxruntime as ort

        self.path = path or model_path()
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise VadError(f"{self.path}: not a loadable ONNX model ({type(e).__name__})") from None
        names = ({i.name for i in self.session.get_inputs()}, {o.name for o in self.session.get_outputs()})
        if names != ({"input", "h", "c"}, {"speech_probs", "hn", "cn"}):
            raise VadError(f"{self.path}: not Silero VAD's sequence model (inputs input, h, c)")

    def stream(self) -> "VadStream":
        return VadStream(self)


class VadStream:
    """One audio stream's VAD: push samples (16 kHz, any block size); probabilities come per complete 32 ms
    frame, the same whatever the split, since the model's state and context carry over."""

    def __init__(self, model: VadModel):
        self.model = model
        self._h = np.zeros(_STATE, np.float32)
        self._c = np.zeros(_STATE, np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._buf = np.zeros(0, np.float32)
        self.frames = 0  # frames decided so far

    def push(self, samples: np.ndarray) -> None:
        # A copy either way: the samples may wait here for a second, and a caller may reuse its buffer.
        samples = np.asarray(samples, np.float32).reshape(-1)
        self._buf = np.concatenate([self._buf, samples]) if len(self._buf) else samples.copy()

    @property
    def pending(self) -> int:
        """Samples pushed and not yet decided."""
        return len(self._buf)

    def probs(self) -> np.ndarray:
        """Speech probabilities of the complete frames pushed since the last call (one model call per 16 s)."""
        n = len(self._buf) // FRAME
        out = []
        for first in range(0, n, MAX_FRAMES):  # bounded calls: a whole file may be pushed at once
            m = min(MAX_FRAMES, n - first)
            frames = self._buf[first * FRAME : (first + m) * FRAME].reshape(m, FRAME)
            contexts = np.empty((m, CONTEXT), np.float32)
            contexts[0] = self._context
            contexts[1:] = frames[:-1, -CONTEXT:]
            self._context = frames[-1, -CONTEXT:].copy()
            p, self._h, self._c = self.model.session.run(
                ["speech_probs", "hn", "cn"], {"input": np.concatenate([contexts, frames], axis=1), "h": self._h,
                                               "c": self._c})
            out.append(np.asarray(p, np.float32).reshape(-1))
        self._buf = self._buf[n * FRAME :]
        self.frames += n
        return np.concatenate(out) if out else np.zeros(0, np.float32)


class SpeechState:
    """Hysteresis over frame probabilities: speech from `threshold` up, silence below `neg_threshold`; counts
    the frames since speech was last heard."""

    def __init__(self, config: VadConfig):
        self.on, self.off = config.threshold, config.neg_threshold
        self.speech = False
        self.silent_frames = 0

    def update(self, p: float) -> bool:
        if p >= self.on or (self.speech and p >= self.off):
            self.speech, self.silent_frames = True, 0
        else:
            self.speech = False
            self.silent_frames += 1
        return self.speech

    @property
    def silence(self) -> float:
        return self.silent_frames * FRAME_SECONDS


class VadClock:
    """A Stream's VAD, read at the decoder's position: silence_at(n) is the trailing VAD silence as of the
    frames that end within the first n samples, so an endpoint does not depend on how far ahead the audio
    was pushed (any block split gives the same segments)."""

    def __init__(self, model: VadModel, config: VadConfig):
        self.vad = model.stream()
        self.state = SpeechState(config)
        self._probs = np.zeros(0, np.float32)  # decided but not yet read
        self._read = 0  # frames read into self.state

    def push(self, samples: np.ndarray) -> None:
        self.vad.push(samples)

    def silence_at(self, samples: int, needed: bool = True) -> float:
        """needed=False: the caller will not use the answer, so the model may wait until a second of audio has
        gathered (fewer, larger calls; the state is the same, as frames are read in order either way)."""
        upto = samples // FRAME
        if upto > self._read + len(self._probs) and (needed or self.vad.pending >= SAMPLE_RATE):
            new = self.vad.probs()
            self._probs = np.concatenate([self._probs, new]) if len(self._probs) else new
        take = min(max(upto - self._read, 0), len(self._probs))
        for p in self._probs[:take]:
            self.state.update(float(p))
        self._probs, self._read = self._probs[take:], self._read + take
        return self.state.silence
