"""Checkpoints and training inputs from a hostile or careless source: refused in one line, never executed,
and refused before any slow work (feature extraction) starts."""

import math

import pytest

torch = pytest.importorskip("torch")

from asr.features import FeatureConfig  # noqa: E402
from conftest import run_asr  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.model import AcousticModel, ModelConfig  # noqa: E402


class _CreatesFile:
    """Unpickling this calls open(path, "w"): what a crafted checkpoint does to run code on its reader."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _checkpoint(hidden=8, **extra) -> dict:
    """A real checkpoint dict, as `asr train` writes it, of a tiny model (with a training state)."""
    torch.manual_seed(0)
    cfg = TrainConfig()
    cfg.model = ModelConfig(hidden=hidden, layers=1)
    model = AcousticModel(cfg.model)
    opt = torch.optim.AdamW(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    feat = FeatureConfig().with_mel_matrix()
    feat.mean, feat.std = [0.0] * 80, [1.0] * 80
    return {"model": model.state_dict(), "train_config": cfg.to_dict(), "feature_config": feat.to_dict(),
            "vocab": ["<blank>", " ", "'", *"abcdefghijklmnopqrstuvwxyz"], "blank_id": 0,
            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": 0, "batch": 0, **extra}


def _one_line_error(proc, code=1, *needles):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _train(tmp_path, manifest, *extra, dev=None):
    return run_asr("train", "--train", manifest, "--dev", dev or manifest, "--out", tmp_path / "run",
                   "--set", "model.hidden=8", "--set", "model.layers=1", "--set", "threads=1", *extra)


@pytest.mark.parametrize("entry", ["export", "eval", "resume", "init"])
def test_a_crafted_checkpoint_is_refused_without_running_its_code(tmp_path, sample_manifest, entry):
    marker = tmp_path / "created-by-the-checkpoint"
    evil = tmp_path / "evil.pt"
    torch.save(_checkpoint(note=_CreatesFile(marker)), evil)
    if entry == "export":
        proc = run_asr("export", evil, "-o", tmp_path / "m.onnx")
    elif entry == "eval":
        proc = run_asr("eval", sample_manifest, "--model", evil)
    elif entry == "resume":
        (tmp_path / "run").mkdir()
        evil.rename(tmp_path / "run" / "last.pt")
        evil = tmp_path / "run" / "last.pt"
        proc = _train(tmp_path, sample_manifest, "--resume")
    else:
        proc = _train(tmp_path, sample_manifest, "--set", f"init='{evil}'")
    _one_line_error(proc, 2 if entry == "init" else 1, str(evil), "refused", "could run code")
    assert not marker.exists()
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "run" / "cache").exists()
    # The file really is dangerous: the loader these commands used before runs it.
    torch.load(evil, weights_only=False)
    assert marker.exists()


def _damaged(kind, tmp_path):
    good = tmp_path / "good.pt"
    torch.save(_checkpoint(), good)
    path = tmp_path / f"{kind}.pt"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "corrupt":
        data = bytearray(good.read_bytes())
        data[: len(data) // 2] = bytes(len(data) // 2)  # the archive's index survives, its members do not
        path.write_bytes(bytes(data))
    elif kind == "text":
        path.write_text("not a checkpoint\n")
    elif kind == "not a dict":
        torch.save([torch.zeros(3)], path)
    elif kind == "missing keys":
        torch.save({"model": _checkpoint()["model"]}, path)
    elif kind == "other architecture":
        ck = _checkpoint()
        ck["train_config"]["model"]["hidden"] = 16  # the configuration no longer describes the weights
        torch.save(ck, path)
    elif kind == "nan weights":
        ck = _checkpoint()
        ck["model"]["out.bias"][3] = math.nan
        torch.save(ck, path)
    elif kind == "nan statistics":
        ck = _checkpoint()
        ck["feature_config"]["mean"][0] = math.nan
        torch.save(ck, path)
    elif kind == "short vocabulary":
        ck = _checkpoint()
        ck["vocab"] = ck["vocab"][:-1]
        torch.save(ck, path)
    return path


EXPORT_FAULTS = ["empty", "truncated", "corrupt", "text", "not a dict", "missing keys", "other architecture",
                 "nan weights", "nan statistics", "short vocabulary"]


@pytest.mark.parametrize("kind", EXPORT_FAULTS)
def test_export_of_an_unusable_checkpoint_is_a_one_line_error_and_writes_nothing(tmp_path, kind):
    from export.onnx_export import export

    path = _damaged(kind, tmp_path)
    out = tmp_path / "out" / "m.onnx"
    out.parent.mkdir()
    with pytest.raises(ValueError) as e:  # the CLI prints ValueErrors as one line, exit 1 (tested below)
        export(str(path), str(out))
    assert str(e.value).startswith(str(path)) and len(str(e.value).splitlines()) == 1, str(e.value)
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("kind", ["truncated", "nan weights"])
def test_asr_export_and_eval_of_an_unusable_checkpoint_exit_1_with_one_line(tmp_path, sample_manifest, kind):
    path = _damaged(kind, tmp_path)
    _one_line_error(run_asr("export", path, "-o", tmp_path / "m.onnx"), 1, str(path))
    _one_line_error(run_asr("eval", sample_manifest, "--model", path), 1, str(path))
    assert not (tmp_path / "m.onnx").exists()


def test_the_checks_refuse_nothing_a_real_checkpoint_holds(tmp_path):
    from export.onnx_export import export

    good = tmp_path / "good.pt"
    torch.save(_checkpoint(), good)
    report = export(str(good), str(tmp_path / "m.onnx"))
    assert report["max_abs_diff"] < 1e-4


@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "missing keys", "other architecture"])
def test_resume_from_an_unusable_last_pt_fails_before_computing_features(tmp_path, sample_manifest, kind):
    (tmp_path / "run").mkdir()
    if kind == "other architecture":
        torch.save(_checkpoint(hidden=16), tmp_path / "run" / "last.pt")  # consistent, but another run's model
    else:
        _damaged(kind, tmp_path).rename(tmp_path / "run" / "last.pt")
    line = _one_line_error(_train(tmp_path, sample_manifest, "--resume"), 1, "last.pt")
    if kind == "other architecture":
        assert "architecture" in line
    assert not (tmp_path / "run" / "cache").exists()
    assert (tmp_path / "run" / "last.pt").exists()  # nothing already written is lost


def test_a_run_resumes_from_its_own_last_pt(tmp_path, sample_manifest):
    """The checks do not get in the way of a genuine resume (a checkpoint saved with weights_only in mind)."""
    (tmp_path / "run").mkdir()
    torch.save(_checkpoint(), tmp_path / "run" / "last.pt")
    proc = _train(tmp_path, sample_manifest, "--resume", "--epochs", "1", "--set", "average_last=1")
    assert proc.returncode == 0, proc.stderr
    assert "resumed from" in proc.stdout
    saved = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert all(math.isfinite(v) for v in saved["feature_config"]["mean"])


def test_training_without_utterances_is_refused_before_anything_is_written(tmp_path, sample_manifest):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    too_long = tmp_path / "too-long.jsonl"
    too_long.write_text('{"audio": "x.wav", "duration": 99.0, "text": "hello"}\n')
    cases = [((empty, sample_manifest), "no training utterances: the manifest is empty"),
             ((too_long, sample_manifest), "no training utterances: all 1 were filtered out"),
             ((sample_manifest, empty), "no dev utterances")]
    for (train, dev), message in cases:
        _one_line_error(_train(tmp_path, train, dev=dev), 1, message)
        assert not (tmp_path / "run" / "best.pt").exists() and not (tmp_path / "run" / "cache").exists()


@pytest.mark.parametrize("args", [
    ["export", "ck.pt", "-o", "m.onnx", "--chunk-steps", "0"],
    ["export", "ck.pt", "-o", "m.onnx", "--chunk-steps", "-2"],
    ["export", "ck.pt", "-o", "m.onnx", "--chunk-steps", "many"],
    ["train", "--train", "t", "--dev", "d", "--out", "o", "--epochs", "0"],
    ["train", "--train", "t", "--dev", "d", "--out", "o", "--lr", "nan"],
    ["train", "--train", "t", "--dev", "d", "--out", "o", "--lr", "-1e-3"],
    ["train", "--train", "t", "--dev", "d", "--out", "o", "--batch-seconds", "0"],
    ["train", "--train", "t", "--dev", "d", "--out", "o", "--seed", "-1"],
    ["synth", "s.txt", "-o", "out", "--utterances", "0"],
])
def test_numeric_options_are_refused_at_parse_time(tmp_path, args):
    args = [str(tmp_path / a) if a in ("ck.pt", "m.onnx", "t", "d", "o", "s.txt", "out") else a for a in args]
    _one_line_error(run_asr(*args), 2, "error: argument")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("setting, message", [
    ("epochs=0", "epochs = 0 must be at least 1"), ("lr=nan", "lr = nan"), ("batch_seconds=-5", "batch_seconds"),
    ("model.hidden=1.5", "model.hidden = 1.5 is not a whole number"), ("augment.noise_prob=2", "augment.noise_prob"),
])
def test_configuration_values_are_checked_when_loaded(setting, message):
    from training.config import load_config

    with pytest.raises(ValueError, match=message):
        load_config(None, [setting])


def test_asr_train_refuses_a_bad_configuration_value_in_one_line(tmp_path, sample_manifest):
    _one_line_error(_train(tmp_path, sample_manifest, "--set", "epochs=0"), 2, "epochs = 0 must be at least 1")
    assert not (tmp_path / "run" / "cache").exists()
