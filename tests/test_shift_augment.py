import numpy as np

from training.config import AugmentConfig
from training.data import collate


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
