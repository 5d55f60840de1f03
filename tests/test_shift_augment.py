import numpy as np
import pytest

pytest.importorskip("torch")  # training.config (AugmentConfig) imports the PyTorch model's configuration

from training.config import AugmentConfig  # noqa: E402
from training.data import collate  # noqa: E402


def test_shift_frames_drops_leading_frames_of_every_phase():
    feats = [np.arange(60, dtype=np.float32)[:, None].repeat(4, axis=1)]
    aug = AugmentConfig(speeds=(1.0,), freq_masks=0, time_masks_per_second=0.0, gain_db=0.0, shift_frames=2)
    firsts = set()
    for seed in range(30):
        batch, lengths, _, _ = collate(feats, [[1, 2]], 3, np.zeros(4), np.ones(4), np.random.default_rng(seed), aug)
        firsts.add(float(batch[0, 0, 0]))
        assert lengths[0] == (60 - int(batch[0, 0, 0])) // 3
    assert firsts == {0.0, 1.0, 2.0}
    batch, _, _, _ = collate(feats, [[1, 2]], 3, np.zeros(4), np.ones(4))
    assert batch[0, 0, 0] == 0.0  # no augmentation (dev): no shift


def test_gain_and_masks_change_the_batch_within_their_bounds():
    """SpecAugment and gain must really act, and only as documented: a constant log-mel shift of at most
    gain_db dB per utterance, at most freq_masks bands of at most freq_mask_width bins and
    round(time_masks_per_second * seconds) spans of at most time_mask_width frames set to 0 (the mean)."""
    aug = AugmentConfig(speeds=(1.0,), shift_frames=0)
    rng = np.random.default_rng(0)
    feats = [rng.standard_normal((n, 80)).astype(np.float32) + 3.0 for n in (900, 600, 400)]  # 9, 6, 4 s
    mean, std = np.full(80, 1.0), np.full(80, 2.0)
    clean, lengths, _, _ = collate(feats, [[1], [2], [3]], 3, mean, std)
    shifts, masked_bins, masked_frames = set(), 0, 0
    for seed in range(10):
        batch, lengths2, _, _ = collate(feats, [[1], [2], [3]], 3, mean, std, np.random.default_rng(seed), aug)
        assert batch.shape == clean.shape and np.array_equal(lengths2, lengths)
        for i, n in enumerate(lengths * 3):
            x, ref = batch[i, :n], clean[i, :n]
            assert not batch[i, n:].any()  # padding stays padding
            zero_bins, zero_frames = (x == 0).all(axis=0), (x == 0).all(axis=1)
            kept = ~zero_frames[:, None] & ~zero_bins[None, :]
            assert np.array_equal(x == 0, ~kept)  # every zero is in a whole masked band or span
            shift = (x - ref)[kept]  # a gain of g dB adds g ln(10) / 10 before the division by std
            np.testing.assert_allclose(shift, shift[0], atol=1e-5)
            assert abs(shift[0]) <= aug.gain_db * np.log(10) / 10 / 2.0 + 1e-5
            shifts.add(round(float(shift[0]), 4))
            assert zero_bins.sum() <= aug.freq_masks * aug.freq_mask_width
            assert zero_frames.sum() <= round(aug.time_masks_per_second * n / 100) * aug.time_mask_width
            masked_bins += int(zero_bins.sum())
            masked_frames += int(zero_frames.sum())
    assert len(shifts) == 30 and masked_bins > 0 and masked_frames > 0  # it acts, differently each time
