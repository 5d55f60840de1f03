import os

import numpy as np
import onnx
import pytest
import torch

from asr.features import FeatureConfig
from asr.metadata import ModelInfo
from asr.model import OnnxAcousticModel
from export.onnx_export import export
from training.model import AcousticModel, ModelConfig
from training.config import TrainConfig


def _checkpoint(tmp_path, **model_kw):
    torch.manual_seed(0)
    cfg = TrainConfig()
    cfg.model = ModelConfig(**model_kw)
    model = AcousticModel(cfg.model)
    feat = FeatureConfig().with_mel_matrix()
    feat.mean, feat.std = [0.0] * 80, [1.0] * 80
    path = tmp_path / "ck.pt"
    torch.save({"model": model.state_dict(), "train_config": cfg.to_dict(), "feature_config": feat.to_dict(),
                "vocab": [str(i) for i in range(29)], "blank_id": 0}, path)
    return model.eval(), str(path)


@pytest.mark.parametrize("kw", [dict(hidden=64, layers=2), dict(hidden=48, layers=3, stack=2)])
def test_onnx_equals_torch_on_random_chunk_splits(tmp_path, kw):
    model, ck = _checkpoint(tmp_path, **kw)
    out = str(tmp_path / "m.onnx")
    report = export(ck, out)
    assert report["max_abs_diff"] < 1e-4
    onnx_model = OnnxAcousticModel(out, device="cpu")
    rng = np.random.default_rng(7)
    stack = model.config.stack
    for _ in range(3):
        steps = int(rng.integers(20, 80))
        x = rng.standard_normal((1, steps * stack, 80)).astype(np.float32)
        with torch.no_grad():
            ref, rh, rc = model(torch.from_numpy(x), *model.initial_state(1))
        h, c = onnx_model.initial_state(1)
        outs, start = [], 0
        while start < steps:
            n = int(rng.integers(1, 10))
            lp, h, c = onnx_model(x[:, start * stack : (start + n) * stack], h, c)
            outs.append(lp)
            start += n
        np.testing.assert_allclose(np.concatenate(outs, axis=1), ref.numpy(), atol=1e-4)
        np.testing.assert_allclose(h, rh.numpy(), atol=1e-4)
        np.testing.assert_allclose(c, rc.numpy(), atol=1e-4)


def test_model_file_is_self_describing(tmp_path):
    _, ck = _checkpoint(tmp_path, hidden=32, layers=1)
    out = str(tmp_path / "m.onnx")
    export(ck, out, chunk_steps=5, version="7")
    props = {p.key: p.value for p in onnx.load(out).metadata_props}
    info = ModelInfo.from_props(props)
    assert (info.stack, info.chunk_steps, info.layers, info.hidden, info.state_size) == (3, 5, 1, 32, 32)
    assert info.version == "7" and info.blank_id == 0 and len(info.vocab) == 29
    assert np.asarray(info.feature.mel_matrix).shape == (80, 257)
    assert info.feature.mean == [0.0] * 80
    model = OnnxAcousticModel(out, device="cpu")
    h, c = model.initial_state(2)
    assert h.shape == (1, 2, 32) and c.shape == (1, 2, 32)
    lp, _, _ = model(np.zeros((2, 12, 80), np.float32), h, c)
    assert lp.shape == (2, 4, 29)


def test_int8_export_loads_and_stays_close(tmp_path, tiny_run):
    # A trained model: an untrained one's near-uniform outputs make the best token a coin toss under int8.
    ck = tiny_run["checkpoint"]
    report = export(ck, str(tmp_path / "q.onnx"), int8=True)
    assert report["argmax_agreement"] >= 0.8
    assert os.path.getsize(tmp_path / "q.onnx") < 0.5 * os.path.getsize(ck)
