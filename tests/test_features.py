import numpy as np
import pytest

from asr.features import FeatureConfig, FeatureExtractor, log_mel, normalize
from conftest import SAMPLES, mel_config


def _config():
    cfg = mel_config()
    rng = np.random.default_rng(1)
    cfg.mean = rng.normal(-5, 1, cfg.n_mels).tolist()
    cfg.std = rng.uniform(1, 3, cfg.n_mels).tolist()
    return cfg


def _blockwise(cfg, x, sizes):
    fe, parts, i = FeatureExtractor(cfg), [], 0
    while i < len(x):
        n = sizes()
        parts.append(fe.accept(x[i : i + n]))
        i += n
    return np.concatenate(parts)


@pytest.mark.parametrize("blocks", ["samples", "hop", "microphone", "random"])
def test_block_by_block_equals_whole_signal_exactly(blocks):
    """Bit-identical features whatever the block size: a sample, a hop (one frame a call), 20 ms, random."""
    from asr.audio import read_audio

    cfg = _config()
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(16000 * 2).astype(np.float32) * 0.1
    speech = np.concatenate([read_audio(str(w)) for w in sorted(SAMPLES.glob("*.wav"))])
    sizes = {"samples": lambda: 1, "hop": lambda: cfg.hop_length, "microphone": lambda: 320,
             "random": lambda: int(rng.integers(0, 2000))}[blocks]
    for x in (noise[:4000] if blocks == "samples" else noise, speech[:16000] if blocks == "samples" else speech):
        assert np.array_equal(_blockwise(cfg, x, sizes), log_mel(x, cfg))


def test_frame_count_and_timing():
    cfg = mel_config()
    fe = FeatureExtractor(cfg)
    assert len(fe.accept(np.zeros(319, np.float32))) == 0  # a frame needs a full 20 ms window
    assert len(fe.accept(np.zeros(1, np.float32))) == 1
    assert len(fe.accept(np.zeros(160, np.float32))) == 1  # then one frame per 10 ms hop
    assert fe.frames_emitted == 2


def test_mel_matrix_is_librosas():
    librosa = pytest.importorskip("librosa")  # the train extra

    cfg = FeatureConfig().with_mel_matrix()
    ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=80, fmin=20.0, fmax=7600.0)
    np.testing.assert_allclose(np.asarray(cfg.mel_matrix), ref, rtol=1e-6)


def test_louder_signal_shifts_log_mel():
    cfg = mel_config()
    x = np.random.default_rng(2).standard_normal(8000).astype(np.float32) * 0.05
    a, b = log_mel(x, cfg, normalize=False), log_mel(2 * x, cfg, normalize=False)
    np.testing.assert_allclose(b - a, np.log(4.0), atol=1e-4)  # power scales by 4


def test_training_features_equal_runtime_features():
    """The training pipeline (cached raw features, then batch normalisation) equals the runtime front-end."""
    from training.data import collate, compute_features
    from asr.audio import read_audio

    cfg = _config()
    wav = sorted(SAMPLES.glob("*.wav"))[0]
    fs = compute_features([str(wav)], cfg, workers=1)
    batch, lengths, _, _ = collate([fs.get(0)], [[1, 2]], stack=3, mean=np.asarray(cfg.mean), std=np.asarray(cfg.std))
    runtime = FeatureExtractor(cfg).accept(read_audio(str(wav)))
    n = int(lengths[0]) * 3
    assert np.array_equal(batch[0, :n], runtime[:n])
    assert np.array_equal(normalize(fs.get(0), np.asarray(cfg.mean, np.float32), np.asarray(cfg.std, np.float32)),
                          runtime)
