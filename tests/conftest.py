import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asr import recognizer

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = Path(recognizer.SAMPLES)
BUNDLED = Path(recognizer.BUNDLED_MODEL)
SHARED_DATA = ROOT.parent / "shared" / "data"
# The runtime-only install (no `train` extra) must still run every test that needs no torch.
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch (the train extra)")


def mel_config():
    """The default front-end with its mel matrix: librosa's where the train extra is installed, else the one the
    bundled model carries (the same parameters, librosa's matrix stored at export), as a runtime install has it."""
    from asr.features import FeatureConfig

    if importlib.util.find_spec("librosa") is not None:
        return FeatureConfig().with_mel_matrix()
    if not BUNDLED.exists():
        pytest.skip("needs librosa (the train extra) or the bundled model for a mel matrix")
    from asr.model import OnnxAcousticModel

    stored = OnnxAcousticModel(str(BUNDLED), device="cpu").info.feature
    return FeatureConfig(**{**FeatureConfig().to_dict(), "mel_matrix": stored.mel_matrix})


def asr_command() -> list[str]:
    exe = shutil.which("asr", path=os.path.dirname(sys.executable)) or shutil.which("asr")
    return [exe] if exe else [sys.executable, "-m", "asr.cli"]


def run_asr(*args, input=None, timeout=300, env=None):
    """The real `asr` command, as a user runs it."""
    return subprocess.run([*asr_command(), *map(str, args)], capture_output=True, text=True, input=input,
                          timeout=timeout, env={**os.environ, **(env or {})})


def sample_pairs():
    return sorted((wav, wav.with_suffix(".txt").read_text().strip()) for wav in SAMPLES.glob("*.wav"))


@pytest.fixture(scope="session")
def bundled_model():
    if not BUNDLED.exists():
        pytest.skip("bundled model not built")
    return str(BUNDLED)


@pytest.fixture(scope="session")
def sample_manifest(tmp_path_factory):
    path = tmp_path_factory.mktemp("manifest") / "samples.jsonl"
    import soundfile as sf

    with open(path, "w") as f:
        for wav, text in sample_pairs():
            f.write(json.dumps({"audio": str(wav), "duration": sf.info(str(wav)).duration, "text": text,
                                "corpus": "samples"}) + "\n")
    return str(path)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, sample_manifest):
    """A real (short) training run of a tiny model on the bundled samples."""
    pytest.importorskip("torch")
    from training.config import load_config
    from training.train import train

    out = tmp_path_factory.mktemp("tiny_run")
    # Enough steps to get past CTC's all-blank plateau and overfit the three samples (about 30 s on one core).
    cfg = load_config(None, ["epochs=200", "model.hidden=128", "model.layers=2", "model.dropout=0.0", "lr=1e-2",
                             "final_lr_ratio=0.1", "warmup_steps=10", "batch_seconds=60", "average_last=1",
                             "augment.speeds=[1.0]",
                             "augment.freq_masks=0", "augment.time_masks_per_second=0.0", "augment.gain_db=0.0",
                             "threads=1"])
    result = train([sample_manifest], [sample_manifest], str(out), cfg, cache_dir=str(out / "cache"), device="cpu")
    return {"dir": out, "result": result, "checkpoint": str(out / "best.pt")}


@pytest.fixture(scope="session")
def tiny_onnx(tiny_run, tmp_path_factory):
    from export.onnx_export import export

    path = tmp_path_factory.mktemp("tiny_model") / "tiny.onnx"
    export(tiny_run["checkpoint"], str(path))
    return str(path)


@pytest.fixture(scope="session")
def any_model(request):
    """The bundled model when it exists (real text, no torch needed), else the tiny trained one."""
    return str(BUNDLED) if BUNDLED.exists() else request.getfixturevalue("tiny_onnx")


def stream_in_random_blocks(rec, samples, rng, most=8000):
    """Every result of one stream fed the samples in blocks of 1..most samples, then finished."""
    stream, results, start = rec.stream(), [], 0
    while start < len(samples):
        n = int(rng.integers(1, most))
        results += stream.accept(samples[start:start + n])
        start += n
    return results + stream.finish()


def tone(seconds=1.0, rate=16000, freq=440.0, amp=0.3):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
