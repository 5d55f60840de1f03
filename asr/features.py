"""Log-mel filterbank front-end: one function for training and run time, streaming by construction.

Frames are not centred: frame i covers samples [i*hop, i*hop + win), so a frame is final as soon as
its last sample has arrived and block-by-block output equals whole-signal output exactly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class FeatureConfig:
    sample_rate: int = 16000
    win_length: int = 320  # 20 ms
    hop_length: int = 160  # 10 ms
    n_fft: int = 512
    n_mels: int = 80
    fmin: float = 20.0
    fmax: float = 7600.0
    log_floor: float = 1e-10
    # Global normalisation statistics from the training data (per mel bin); identity until set.
    mean: list[float] | None = field(default=None, repr=False)
    std: list[float] | None = field(default=None, repr=False)
    # Streaming per-speaker/channel normalisation after the global one: a running mean per mel bin (and a running
    # variance with norm_variance) decaying with this time constant in seconds; 0 = global statistics only. It
    # starts from the global statistics at the start of every stream, and carries over segment boundaries.
    norm_seconds: float = 0.0
    norm_variance: bool = False
    # The mel matrix [n_mels, n_fft // 2 + 1]; stored in the model so the runtime needs no librosa.
    mel_matrix: list[list[float]] | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return asdict(self)

    def cache_key(self) -> dict:
        """What raw (un-normalised) features depend on: the running normalisation is applied after the cache."""
        return {k: v for k, v in self.to_dict().items() if k not in ("norm_seconds", "norm_variance")}

    def running_norm(self) -> "RunningNorm | None":
        if not self.norm_seconds:
            return None
        return RunningNorm(math.exp(-self.hop_length / self.sample_rate / self.norm_seconds), self.norm_variance)

    def frames(self, n_samples: int) -> int:
        """How many complete (uncentred) frames n_samples hold."""
        return 0 if n_samples < self.win_length else 1 + (n_samples - self.win_length) // self.hop_length

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def with_mel_matrix(self) -> "FeatureConfig":
        """A copy carrying the librosa mel matrix (computed once here, never on the streaming path)."""
        try:
            import librosa
        except ImportError:  # the runtime install has no librosa: only training and export compute the matrix
            raise RuntimeError("computing a mel matrix needs librosa (pip install 'asr[train]'); models exported "
                               "by `asr export` carry theirs") from None

        mel = librosa.filters.mel(
            sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels, fmin=self.fmin, fmax=self.fmax
        )
        return FeatureConfig.from_dict({**self.to_dict(), "mel_matrix": mel.astype(np.float32).tolist()})


class FeatureExtractor:
    """Streaming front-end: accept() takes any number of samples and returns the frames now complete."""

    def __init__(self, config: FeatureConfig, normalize: bool = True):
        if config.mel_matrix is None:
            config = config.with_mel_matrix()
        self.config = config
        self._mel = np.asarray(config.mel_matrix, dtype=np.float64).T.copy()  # [bins, mels]
        n = np.arange(config.win_length)
        # Periodic Hann, zero-padded to the FFT size.
        self._window = np.zeros(config.n_fft)
        self._window[: config.win_length] = 0.5 - 0.5 * np.cos(2 * np.pi * n / config.win_length)
        self._mean = self._std = None
        if normalize and config.mean is not None:
            self._mean = np.asarray(config.mean, dtype=np.float32)
            self._std = np.asarray(config.std, dtype=np.float32)
        self._running = config.running_norm() if normalize else None
        self._running_state = None
        self._pending = np.zeros(0, dtype=np.float32)
        self.frames_emitted = 0

    def reset(self) -> None:
        self._pending = np.zeros(0, dtype=np.float32)
        self._running_state = None
        self.frames_emitted = 0

    def accept(self, samples: np.ndarray) -> np.ndarray:
        """Append samples (float, [-1, 1]); return [frames, n_mels] float32 for every newly complete frame."""
        cfg = self.config
        buf = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32).reshape(-1)])
        count = cfg.frames(len(buf))
        self._pending = buf[count * cfg.hop_length :]
        self.frames_emitted += count
        if count == 0:
            return np.zeros((0, cfg.n_mels), dtype=np.float32)
        frames = np.lib.stride_tricks.sliding_window_view(buf, cfg.win_length)[:: cfg.hop_length][:count]
        return self._frames_to_features(frames)

    def _frames_to_features(self, frames: np.ndarray) -> np.ndarray:
        cfg = self.config
        padded = np.zeros((len(frames), cfg.n_fft))
        padded[:, : cfg.win_length] = frames
        power = np.abs(np.fft.rfft(padded * self._window, axis=1)) ** 2
        # BLAS sums a frame's bins in an order that depends on how many frames share the call, so the
        # float64 product differs in its last bits between block sizes; rounding the log to float32
        # absorbs that, which makes streaming equal whole-signal output exactly (a float32 product would not).
        mel = power @ self._mel
        feats = normalize(np.log(np.maximum(mel, cfg.log_floor)).astype(np.float32), self._mean, self._std)
        if self._running is not None:
            feats, self._running_state = self._running(feats, self._running_state)
        return feats


def normalize(feats: np.ndarray, mean: np.ndarray | None, std: np.ndarray | None) -> np.ndarray:
    """Global mean/variance normalisation, shared by the streaming front-end and training batches."""
    if mean is None:
        return feats
    # float32 throughout, whatever the caller passes, so every path rounds identically.
    return (feats.astype(np.float32, copy=False) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


class RunningNorm:
    """Causal per-bin normalisation by a running mean (and variance), decayed by `decay` per frame.

    Works on [T, F] or a batch [B, T, F] (time on axis -2) with the same element-wise float64 arithmetic, so a
    training batch, a whole signal and a stream fed block by block give identical float32 features. The state
    starts at mean 0 and variance 1: the global statistics, already applied, are the prior.
    """

    def __init__(self, decay: float, variance: bool):
        self.decay, self.variance = decay, variance

    def __call__(self, feats: np.ndarray, state=None):
        a = self.decay
        x = np.asarray(feats, dtype=np.float64)
        shape = x.shape[:-2] + x.shape[-1:]
        mean, var = state if state is not None else (np.zeros(shape), np.ones(shape))
        out = np.empty(x.shape, dtype=np.float32)
        for t in range(x.shape[-2]):
            xt = x[..., t, :]
            mean = a * mean + (1 - a) * xt
            centred = xt - mean
            if self.variance:
                var = a * var + (1 - a) * centred * centred
                centred = centred / np.sqrt(var + 1e-3)
            out[..., t, :] = centred
        return out, (mean, var)


def log_mel(samples: np.ndarray, config: FeatureConfig, normalize: bool = True) -> np.ndarray:
    """Whole-signal features: the same code path as streaming, in one call."""
    return FeatureExtractor(config, normalize=normalize).accept(samples)
