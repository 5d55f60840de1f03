"""Manifests -> cached log-mel features -> length-bucketed, augmented training batches.

Features come from asr.features (the run-time front-end) so training and inference cannot drift.
Raw (un-normalised) log-mels are cached once per manifest and speed factor; normalisation, gain and
SpecAugment are applied per batch.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from asr import manifest
from asr.atomic import atomic_write
from asr.audio import read_audio
from asr.features import FeatureConfig, FeatureExtractor, normalize
from asr.vocab import Vocabulary, normalize_text


class DataError(ValueError):
    """The training data cannot make a run (no utterances left, ...); one line for users."""


@dataclass
class Utterance:
    audio: str  # absolute path
    duration: float
    text: str
    speaker: str = ""


def read_manifest(path: str) -> list[Utterance]:
    return [Utterance(d["audio"], float(d.get("duration", 0.0)), d["text"], str(d.get("speaker", "")))
            for d in manifest.read_manifest(path)]


def speed_perturb(samples: np.ndarray, speed: float, sample_rate: int) -> np.ndarray:
    if speed == 1.0:
        return samples
    import soxr

    # Playing sample_rate*speed samples per second and resampling back changes tempo and pitch.
    return soxr.resample(samples, int(round(sample_rate * speed)), sample_rate, quality="HQ")


_worker_extractor: FeatureExtractor | None = None


def _init_worker(cfg: FeatureConfig) -> None:
    global _worker_extractor
    _worker_extractor = FeatureExtractor(cfg, normalize=False)


def _features_job(args) -> np.ndarray:
    path, speed = args
    fe = _worker_extractor
    fe.reset()
    samples = speed_perturb(read_audio(path, fe.config.sample_rate), speed, fe.config.sample_rate)
    return fe.accept(samples)


@dataclass
class FeatureSet:
    """Raw log-mel frames of many utterances in one array, with offsets."""

    frames: np.ndarray  # [total, n_mels] float32
    offsets: np.ndarray  # [n + 1]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def get(self, i: int) -> np.ndarray:
        return self.frames[self.offsets[i] : self.offsets[i + 1]]

    def length(self, i: int) -> int:
        return int(self.offsets[i + 1] - self.offsets[i])


class FeatureSets:
    """Several FeatureSets (one per manifest) addressed as one, so each manifest keeps its own cache."""

    def __init__(self, parts: list[FeatureSet]):
        self.parts = parts
        self.starts = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _locate(self, i: int) -> tuple[FeatureSet, int]:
        k = int(np.searchsorted(self.starts, i, side="right")) - 1
        return self.parts[k], i - int(self.starts[k])

    def get(self, i: int) -> np.ndarray:
        part, j = self._locate(i)
        return part.get(j)

    def length(self, i: int) -> int:
        part, j = self._locate(i)
        return part.length(j)


def compute_features(paths: list[str], cfg: FeatureConfig, speed: float = 1.0, workers: int = 0, progress=None) -> FeatureSet:
    jobs = [(p, speed) for p in paths]
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(jobs) > 16:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(cfg,)) as pool:
            feats = list(_progress(pool.map(_features_job, jobs, chunksize=16), len(jobs), progress))
    else:
        _init_worker(cfg)
        feats = list(_progress(map(_features_job, jobs), len(jobs), progress))
    offsets = np.zeros(len(feats) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(f) for f in feats])
    frames = np.concatenate(feats) if feats else np.zeros((0, cfg.n_mels), np.float32)
    return FeatureSet(frames.astype(np.float32), offsets)


def _progress(it, total, desc):
    if not desc:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc=desc, unit="utt", dynamic_ncols=True)


def cached_features(paths: list[str], cfg: FeatureConfig, speed: float, cache_dir: str, workers: int = 0) -> FeatureSet:
    """compute_features, memoised on disk by (paths, feature config, speed)."""
    key = hashlib.sha256(json.dumps([paths, cfg.cache_key(), speed]).encode()).hexdigest()[:16]
    stem = os.path.join(cache_dir, f"feats-{key}")
    if os.path.exists(stem + ".offsets.npy"):
        return FeatureSet(np.load(stem + ".frames.npy", mmap_mode="r"), np.load(stem + ".offsets.npy"))
    fs = compute_features(paths, cfg, speed, workers, progress=f"features x{speed}")
    os.makedirs(cache_dir, exist_ok=True)
    # Unique temporary names: two runs may share a cache directory and fill it at the same time.
    for part, array in (("frames", fs.frames), ("offsets", fs.offsets)):  # offsets last: marks the cache complete
        with atomic_write(f"{stem}.{part}.npy", "wb") as f:  # a file object: np.save adds no suffix to it
            np.save(f, array)
    return fs


def filter_utterances(utts: list[Utterance], vocab: Vocabulary, stack: int, hop_seconds: float,
                      min_seconds: float, max_seconds: float, log=print) -> tuple[list[Utterance], list[list[int]]]:
    """Keep utterances CTC can learn from as characters; report what was dropped and why."""
    kept, (targets,) = encode_utterances(utts, [char_encoder(vocab)], stack, hop_seconds, min_seconds, max_seconds,
                                         log)
    return kept, targets


def char_encoder(vocab: Vocabulary):
    """Normalised text -> character ids, or why not."""
    def encode(text: str):
        return "vocabulary" if set(text) - set(vocab.tokens) else vocab.encode(text)
    return encode


def encode_utterances(utts: list[Utterance], encoders: list, stack: int, hop_seconds: float, min_seconds: float,
                      max_seconds: float, log=print) -> tuple[list[Utterance], list[list[list[int]]]]:
    """Keep utterances CTC can learn from with every encoder (normalised text -> target ids, or a string saying
    why not: one per output head); their targets per encoder; report what was dropped and why."""
    kept, targets = [], [[] for _ in encoders]
    dropped = dict.fromkeys(("vocabulary", "too long", "too short", "too many characters"), 0)
    for u in utts:
        text = normalize_text(u.text, strict=True)
        if text is None:
            dropped["vocabulary"] += 1
            continue
        if u.duration > max_seconds:
            dropped["too long"] += 1
            continue
        if u.duration < min_seconds or not text:
            dropped["too short"] += 1
            continue
        encoded = []
        for encode in encoders:
            ids = encode(text)
            if isinstance(ids, str):
                break
            repeats = sum(a == b for a, b in zip(ids, ids[1:]))
            if len(ids) + repeats > int(u.duration / hop_seconds) // stack - 1:
                ids = "too many characters"
                break
            encoded.append(ids)
        if isinstance(ids, str):
            dropped[ids] = dropped.get(ids, 0) + 1
            continue
        kept.append(u)
        for k, ids in enumerate(encoded):
            targets[k].append(ids)
    for why, n in dropped.items():
        if n:
            log(f"dropped {n} utterances: {why}")
    return kept, targets


def make_batches(lengths: np.ndarray, batch_frames: int, rng: np.random.Generator) -> list[list[int]]:
    """Bucket by length (sorted with a little noise), cap padded frames per batch, shuffle the batches."""
    order = np.argsort(lengths * rng.uniform(0.9, 1.1, size=len(lengths)), kind="stable")
    batches, cur, cur_max = [], [], 0
    for i in order:
        longest = max(cur_max, int(lengths[i]))
        if cur and longest * (len(cur) + 1) > batch_frames:
            batches.append(cur)
            cur, longest = [], int(lengths[i])
        cur.append(int(i))
        cur_max = longest
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def spec_augment(x: np.ndarray, rng: np.random.Generator, aug) -> None:
    """In-place frequency and time masking of one utterance's normalised features (mask value 0 = mean)."""
    t, f = x.shape
    for _ in range(aug.freq_masks):
        w = int(rng.integers(0, aug.freq_mask_width + 1))
        f0 = int(rng.integers(0, max(1, f - w)))
        x[:, f0 : f0 + w] = 0.0
    for _ in range(int(round(aug.time_masks_per_second * t / 100))):
        w = int(rng.integers(0, aug.time_mask_width + 1))
        t0 = int(rng.integers(0, max(1, t - w)))
        x[t0 : t0 + w] = 0.0


def collate(feature_list: list[np.ndarray], targets: list[list[int]], stack: int, mean, std,
            rng: np.random.Generator | None = None, aug=None, running=None):
    """Pad to a common length (a multiple of stack); returns numpy arrays ready for torch. `running` (a
    RunningNorm) follows the global normalisation, as in the runtime front-end; SpecAugment comes after both."""
    if aug is not None and aug.shift_frames:
        feature_list = [f[int(rng.integers(0, aug.shift_frames + 1)):] for f in feature_list]
    lengths = np.array([len(f) // stack * stack for f in feature_list])
    tmax = int(lengths.max())
    n_mels = feature_list[0].shape[1]
    batch = np.zeros((len(feature_list), tmax, n_mels), dtype=np.float32)
    for i, (f, n) in enumerate(zip(feature_list, lengths)):
        x = np.array(f[:n], dtype=np.float32)
        if aug is not None and aug.gain_db:
            # A gain of g dB shifts every log-mel value by g * ln(10) / 10.
            x += float(rng.uniform(-aug.gain_db, aug.gain_db)) * np.log(10) / 10
        batch[i, :n] = normalize(x, mean, std)
        if aug is not None and running is None:
            spec_augment(batch[i, :n], rng, aug)
    if running is not None:
        batch = running(batch)[0]
        for i, n in enumerate(lengths):
            batch[i, n:] = 0.0
            if aug is not None:
                spec_augment(batch[i, :n], rng, aug)
    flat = np.concatenate([np.asarray(t, dtype=np.int64) for t in targets])
    target_lengths = np.array([len(t) for t in targets], dtype=np.int64)
    return batch, lengths // stack, flat, target_lengths


def feature_stats(fs: FeatureSets, max_frames: int = 2_000_000) -> tuple[np.ndarray, np.ndarray]:
    step = max(1, sum(len(p.frames) for p in fs.parts) // max_frames)
    sample = np.concatenate([np.asarray(p.frames[::step], dtype=np.float64) for p in fs.parts])
    return sample.mean(axis=0).astype(np.float32), np.maximum(sample.std(axis=0), 1e-3).astype(np.float32)
