import numpy as np
import pytest

from asr.metrics import ErrorCounter
from asr.recognizer import Recognizer
from asr.vocab import Vocabulary
from conftest import needs_torch, sample_pairs


def test_tiny_model_overfits_then_exports_and_transcribes(tiny_run, tiny_onnx):
    history = tiny_run["result"]["history"]
    assert history[-1]["train_loss"] < 0.05 * history[0]["train_loss"]
    assert tiny_run["result"]["best"]["cer"] < 0.05  # validated through the runtime's greedy decoder
    rec = Recognizer.load(tiny_onnx, device="cpu")
    assert rec.info.training["data"]["train_utterances"] == len(sample_pairs())
    errors = ErrorCounter()
    for wav, text in sample_pairs():
        errors.add(text, " ".join(r.text for r in rec.transcribe(str(wav))))
    assert errors.cer < 0.05


@needs_torch
def test_config_from_toml_and_overrides(tmp_path):
    from training.config import load_config

    toml = tmp_path / "c.toml"
    toml.write_text("epochs = 3\n[model]\nhidden = 128\n[augment]\nspeeds = [1.0]\n")
    cfg = load_config(str(toml), ["model.layers=5", "lr=1e-4"])
    assert (cfg.epochs, cfg.model.hidden, cfg.model.layers, cfg.lr, cfg.augment.speeds) == (3, 128, 5, 1e-4, (1.0,))
    with pytest.raises(ValueError, match="unknown configuration key model.widht"):
        load_config(None, ["model.widht=3"])


def test_batches_respect_the_frame_budget_and_cover_everything():
    from training.data import make_batches

    lengths = np.random.default_rng(0).integers(50, 2000, size=500)
    batches = make_batches(lengths, 8000, np.random.default_rng(1))
    assert sorted(i for b in batches for i in b) == list(range(500))
    assert all(max(lengths[b]) * len(b) <= 8000 or len(b) == 1 for b in batches)


def test_filter_drops_and_reports(capsys):
    from training.data import Utterance, filter_utterances

    utts = [Utterance("a", 2.0, "hello world"), Utterance("b", 2.0, "naïve café"), Utterance("c", 30.0, "long"),
            Utterance("d", 0.1, "x"), Utterance("e", 0.5, "a" * 40), Utterance("f", 2.0, "“Hello,” World’s end")]
    kept, targets = filter_utterances(utts, Vocabulary(), 3, 0.01, 0.3, 20.0)
    assert [u.audio for u in kept] == ["a", "f"] and targets[0] == Vocabulary().encode("hello world")
    assert targets[1] == Vocabulary().encode("hello world's end")  # normalised as corpus import does
    out = capsys.readouterr().out
    for why in ("vocabulary", "too long", "too short", "too many characters"):
        assert why in out


@needs_torch
def test_waveform_augmentation(tmp_path):
    import soundfile as sf

    from training.augment import WaveAugmenter
    from training.config import AugmentConfig

    rng = np.random.default_rng(0)
    (tmp_path / "noise").mkdir()
    (tmp_path / "rir").mkdir()
    sf.write(tmp_path / "noise" / "hum.flac", rng.standard_normal(8000).astype(np.float32) * 0.1, 16000)
    rir = np.zeros(4000, np.float32)
    rir[100], rir[900], rir[2500] = 1.0, 0.5, 0.25
    sf.write(tmp_path / "rir" / "room.wav", rir, 16000)
    aug = WaveAugmenter(str(tmp_path / "noise"), str(tmp_path / "rir"))
    x = np.sin(np.arange(20000) / 10).astype(np.float32) * 0.3
    noisy = aug.add_noise(x, rng, snr_db=10.0)
    snr = 10 * np.log10(np.mean(x**2) / np.mean((noisy - x) ** 2))
    assert abs(snr - 10.0) < 0.01
    wet = aug.reverb(x, rng)
    assert len(wet) == len(x) and not np.allclose(wet, x)
    k = wet[500] / x[500]  # before the first reflection the output is the (scaled) direct path: no delay
    np.testing.assert_allclose(wet[:800], k * x[:800], atol=1e-4)
    assert not aug.wants(rng, AugmentConfig())  # probabilities default to 0
    assert aug.wants(rng, AugmentConfig(noise_prob=1.0))


@needs_torch
def test_training_with_noise_really_adds_noise(tmp_path, sample_manifest):
    """Two seeded runs that differ only in noise_prob: with no other augmentation, identical losses would mean
    the noise never reached the batches."""
    import soundfile as sf

    from training.config import load_config
    from training.train import train

    (tmp_path / "noise").mkdir()
    sf.write(tmp_path / "noise" / "n.wav", np.random.default_rng(0).standard_normal(16000).astype(np.float32), 16000)
    losses = []
    for prob in (0.0, 1.0):
        cfg = load_config(None, ["epochs=1", "model.hidden=32", "model.layers=1", "model.dropout=0.0",
                                 "average_last=1", "threads=1", "augment.speeds=[1.0]", "augment.freq_masks=0",
                                 "augment.time_masks_per_second=0.0", "augment.gain_db=0.0",
                                 f"augment.noise_dir='{tmp_path / 'noise'}'", f"augment.noise_prob={prob}"])
        result = train([sample_manifest], [sample_manifest], str(tmp_path / f"run{prob}"), cfg, device="cpu")
        assert result["history"][0]["skipped_batches"] == 0
        losses.append(result["history"][0]["train_loss"])
    assert np.isfinite(losses).all() and losses[0] != losses[1], losses


@pytest.mark.parametrize("source", ["checkpoint", "onnx"])
def test_init_starts_from_a_checkpoint_keeping_its_architecture_and_statistics(tmp_path, tiny_run, tiny_onnx,
                                                                                sample_manifest, source):
    import torch

    from training.config import load_config
    from training.train import train

    init = tiny_run["checkpoint"] if source == "checkpoint" else tiny_onnx
    # A learning rate too small to learn anything: only the loaded weights can already transcribe the samples.
    cfg = load_config(None, ["epochs=1", "lr=1e-7", "warmup_steps=1", "model.hidden=32", "model.dropout=0.0",
                             "average_last=1", "threads=1", f"init='{init}'",
                             "augment.speeds=[1.0]", "augment.freq_masks=0", "augment.time_masks_per_second=0.0"])
    result = train([sample_manifest], [sample_manifest], str(tmp_path / "ft"), cfg, device="cpu")
    assert result["best"]["cer"] < 0.05
    before = torch.load(tiny_run["checkpoint"], map_location="cpu", weights_only=False)
    after = torch.load(tmp_path / "ft" / "best.pt", map_location="cpu", weights_only=False)
    assert after["train_config"]["model"]["hidden"] == before["train_config"]["model"]["hidden"] == 128
    assert after["feature_config"]["mean"] == before["feature_config"]["mean"]
    assert after["feature_config"]["std"] == before["feature_config"]["std"]


def test_an_exported_model_imports_back_to_the_same_weights(tiny_run, tiny_onnx):
    import torch

    from training.onnx_import import checkpoint_from_onnx

    before = torch.load(tiny_run["checkpoint"], map_location="cpu", weights_only=False)
    imported = checkpoint_from_onnx(tiny_onnx)
    assert imported["model"].keys() == before["model"].keys()
    for name, tensor in before["model"].items():
        assert torch.equal(imported["model"][name], tensor), name
    assert imported["train_config"]["model"] == before["train_config"]["model"]
    assert imported["vocab"] == before["vocab"]


@needs_torch
def test_init_from_a_model_that_cannot_be_imported_is_a_one_line_error(tmp_path, sample_manifest):
    import subprocess

    from conftest import BUNDLED, asr_command

    int8 = BUNDLED.with_name(BUNDLED.stem + "-int8.onnx")
    text = tmp_path / "notes.onnx"
    text.write_text("not a model\n")
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a checkpoint\n")
    for init, message in ((int8, "int8 models cannot be imported"), (tmp_path / "missing.pt", "no such file"),
                          (text, "not an ONNX model"), (garbage, "not a training checkpoint")):
        proc = subprocess.run([*asr_command(), "train", "--train", sample_manifest, "--dev",
                               sample_manifest, "--out", str(tmp_path / "run"), "--set", f"init='{init}'"],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@needs_torch
def test_each_manifest_keeps_its_own_feature_cache(tmp_path, sample_manifest):
    from asr.features import FeatureConfig
    from training.config import TrainConfig
    from training.data import compute_features
    from training.train import load_split

    lines = open(sample_manifest).read().splitlines()
    (tmp_path / "a.jsonl").write_text("\n".join(lines[:1]) + "\n")
    (tmp_path / "b.jsonl").write_text("\n".join(lines[1:]) + "\n")
    feat_cfg, vocab, cache = FeatureConfig().with_mel_matrix(), Vocabulary(), tmp_path / "cache"
    split = load_split([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")], TrainConfig(), feat_cfg, vocab,
                       (1.0,), str(cache))
    assert len(split.utts) == len(split.feats[1.0]) == len(lines)
    for i, u in enumerate(split.utts):
        np.testing.assert_array_equal(split.feats[1.0].get(i), compute_features([u.audio], feat_cfg).get(0))
        assert split.feats[1.0].length(i) == len(split.feats[1.0].get(i))
    caches = sorted(cache.glob("*.offsets.npy"))
    assert len(caches) == 2
    load_split([str(tmp_path / "b.jsonl")], TrainConfig(), feat_cfg, vocab, (1.0,), str(cache))
    assert sorted(cache.glob("*.offsets.npy")) == caches  # reused, not recomputed
