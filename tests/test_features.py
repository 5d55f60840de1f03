import numpy as np
import pytest

from asr.features import FeatureConfig, FeatureExtractor, log_mel, normalize
from conftest import SAMPLES, mel_config


def _config(norm_seconds=0.0, norm_variance=False):
    cfg = mel_config()
    rng = np.random.default_rng(1)
    cfg.mean = rng.normal(-5, 1, cfg.n_mels).tolist()
    cfg.std = rng.uniform(1, 3, cfg.n_mels).tolist()
    cfg.norm_seconds, cfg.norm_variance = norm_seconds, norm_variance
    return cfg


RUNNING = [(0.0, False), (2.0, False), (1.0, True)]  # global only, running mean, running mean and variance


def _blockwise(cfg, x, sizes):
    fe, parts, i = FeatureExtractor(cfg), [], 0
    while i < len(x):
        n = sizes()
        parts.append(fe.accept(x[i : i + n]))
        i += n
    return np.concatenate(parts)


@pytest.mark.parametrize("running", RUNNING)
@pytest.mark.parametrize("blocks", ["samples", "hop", "microphone", "random"])
def test_block_by_block_equals_whole_signal_exactly(blocks, running):
    """Bit-identical features whatever the block size: a sample, a hop (one frame a call), 20 ms, random."""
    from asr.audio import read_audio

    cfg = _config(*running)
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


@pytest.mark.parametrize("running", RUNNING)
def test_training_features_equal_runtime_features(running):
    """The training pipeline (cached raw features, then batch normalisation) equals the runtime front-end, for
    every utterance of a padded batch."""
    from training.data import collate, compute_features
    from asr.audio import read_audio

    cfg = _config(*running)
    wavs = sorted(SAMPLES.glob("*.wav"))[:3]
    fs = compute_features([str(w) for w in wavs], cfg, workers=1)
    batch, lengths, _, _ = collate([fs.get(i) for i in range(len(wavs))], [[1, 2]] * len(wavs), stack=3,
                                   mean=np.asarray(cfg.mean), std=np.asarray(cfg.std), running=cfg.running_norm())
    for i, wav in enumerate(wavs):
        runtime = FeatureExtractor(cfg).accept(read_audio(str(wav)))
        n = int(lengths[i]) * 3
        assert np.array_equal(batch[i, :n], runtime[:n])
        assert not batch[i, n:].any()
    if running[0]:
        return
    wav = wavs[0]
    runtime = FeatureExtractor(cfg).accept(read_audio(str(wav)))
    assert np.array_equal(normalize(fs.get(0), np.asarray(cfg.mean, np.float32), np.asarray(cfg.std, np.float32)),
                          runtime)


def test_running_mean_removes_a_channel_change():
    """A channel that changes mid-stream (here 12 dB louder, a constant log-mel shift) is absorbed by the running
    mean within a few time constants, whereas global statistics keep the shift."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(16000 * 12).astype(np.float32) * 0.05
    x[16000 * 6 :] *= 4.0
    frame = 16000 * 6 // 160  # the first frame wholly after the change
    for norm_seconds, shift_left in ((0.0, np.log(16.0)), (1.0, 0.0)):
        f = log_mel(x, _config(norm_seconds))
        shift = f[-100:].mean(axis=0) - f[frame - 100 : frame].mean(axis=0)
        if not norm_seconds:  # the global normalisation divides the shift by each bin's std
            shift *= np.asarray(_config().std)
        assert abs(shift.mean() - shift_left) < 0.15


def test_running_variance_gives_unit_variance():
    rng = np.random.default_rng(4)
    x = rng.standard_normal(16000 * 10).astype(np.float32) * 0.2
    f = log_mel(x, _config(1.0, norm_variance=True))[-300:]
    assert abs(f.mean()) < 0.2 and 0.6 < f.std() < 1.3
    g = log_mel(x, _config(1.0, norm_variance=False))[-300:]
    assert g.std() < 0.6 * f.std()  # white noise's log-mel spread is far below the global std: variance matters


def test_running_norm_starts_from_the_global_statistics_and_resets():
    cfg = _config(3.0)
    x = np.random.default_rng(5).standard_normal(16000).astype(np.float32) * 0.1
    plain, running = log_mel(x, _config()), log_mel(x, cfg)
    a = np.exp(-0.01 / 3.0)
    np.testing.assert_allclose(running[0], a * plain[0], rtol=1e-5, atol=1e-6)  # mean starts at 0 = global mean
    fe = FeatureExtractor(cfg)
    first = fe.accept(x)
    fe.reset()
    assert np.array_equal(fe.accept(x), first)


def test_running_norm_does_not_change_the_feature_cache_key():
    assert _config(2.0, True).cache_key() == _config().cache_key()
    assert "norm_seconds" not in _config().cache_key()
