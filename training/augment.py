"""Waveform augmentation: room reverberation and additive noise from folders of real recordings."""

from __future__ import annotations

import numpy as np

from asr.audio import find_audio, read_audio


def _load_folder(folder: str, sample_rate: int) -> list[np.ndarray]:
    if not folder:
        return []
    paths = find_audio(folder)
    if not paths:
        raise ValueError(f"{folder}: no audio files for augmentation")
    return [read_audio(p, sample_rate) for p in paths]


class WaveAugmenter:
    def __init__(self, noise_dir: str, rir_dir: str, sample_rate: int = 16000):
        self.noises = [n for n in _load_folder(noise_dir, sample_rate) if len(n) and np.any(n)]
        self.rirs = []
        for rir in _load_folder(rir_dir, sample_rate):
            rir = rir[int(np.argmax(np.abs(rir))):]  # start at the direct path: no added delay
            self.rirs.append(rir / (np.sqrt(np.sum(rir**2)) + 1e-9))

    def reverb(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from scipy.signal import fftconvolve

        rir = self.rirs[int(rng.integers(len(self.rirs)))]
        y = fftconvolve(x, rir)[: len(x)].astype(np.float32)
        return y * (np.abs(x).max() / (np.abs(y).max() + 1e-9))

    def add_noise(self, x: np.ndarray, rng: np.random.Generator, snr_db: float) -> np.ndarray:
        noise = self.noises[int(rng.integers(len(self.noises)))]
        if len(noise) < len(x):
            noise = np.tile(noise, len(x) // len(noise) + 1)
        start = int(rng.integers(0, len(noise) - len(x) + 1))
        noise = noise[start : start + len(x)]
        p_signal, p_noise = np.mean(x**2) + 1e-10, np.mean(noise**2) + 1e-10
        return (x + noise * np.sqrt(p_signal / (p_noise * 10 ** (snr_db / 10)))).astype(np.float32)

    def __call__(self, x: np.ndarray, rng: np.random.Generator, aug) -> np.ndarray:
        if self.rirs and rng.random() < aug.rir_prob:
            x = self.reverb(x, rng)
        if self.noises and rng.random() < aug.noise_prob:
            x = self.add_noise(x, rng, float(rng.uniform(*aug.noise_snr_db)))
        return x

    def wants(self, rng: np.random.Generator, aug) -> bool:
        """Whether this utterance gets waveform augmentation (then its features are computed afresh)."""
        return bool((self.rirs or self.noises) and rng.random() < max(aug.rir_prob, aug.noise_prob))
