import numpy as np
import pytest

from asr.metrics import ErrorCounter
from asr.recognizer import Recognizer
from asr.vocab import Vocabulary
from conftest import sample_pairs


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
            Utterance("d", 0.1, "x"), Utterance("e", 0.5, "a" * 40)]
    kept, targets = filter_utterances(utts, Vocabulary(), 3, 0.01, 0.3, 20.0)
    assert [u.audio for u in kept] == ["a"] and targets[0] == Vocabulary().encode("hello world")
    out = capsys.readouterr().out
    for why in ("vocabulary", "too long", "too short", "too many characters"):
        assert why in out
