import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the ONNX-equals-PyTorch contract needs the train extra
onnx = pytest.importorskip("onnx")

from asr.features import FeatureConfig  # noqa: E402
from asr.metadata import ModelInfo  # noqa: E402
from asr.model import OnnxAcousticModel  # noqa: E402
from export.onnx_export import export  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.model import ModelConfig, build_model  # noqa: E402


def _checkpoint(tmp_path, **model_kw):
    torch.manual_seed(0)
    cfg = TrainConfig()
    cfg.model = ModelConfig(**model_kw)
    model = build_model(cfg.model)
    feat = FeatureConfig().with_mel_matrix()
    feat.mean, feat.std = [0.0] * 80, [1.0] * 80
    path = tmp_path / "ck.pt"
    torch.save({"model": model.state_dict(), "train_config": cfg.to_dict(), "feature_config": feat.to_dict(),
                "vocab": [str(i) for i in range(29)], "blank_id": 0}, path)
    return model.eval(), str(path)


@pytest.mark.parametrize("kw", [dict(hidden=64, layers=2), dict(hidden=48, layers=3, stack=2),
                                dict(hidden=32, layers=1, lookahead=2)])
def test_onnx_streams_batched_as_the_server_does_equal_torch_one_by_one(tmp_path, kw):
    """What export's own check does not cover (and it is off here): batches of 1 to 3 streams that start at
    different times and end at different times, their states stacked and split by the runtime, each compared
    with PyTorch running that stream alone over new random input."""
    model, ck = _checkpoint(tmp_path, **kw)
    out = str(tmp_path / "m.onnx")
    export(ck, out, verify=False)
    runtime = OnnxAcousticModel(out, device="cpu")
    rng = np.random.default_rng(7)
    stack = model.config.stack
    starts, lengths = [0, 2, 3], [int(n) for n in rng.integers(20, 60, size=3)]  # in rounds and in steps
    feats = [rng.standard_normal((1, n * stack, 80)).astype(np.float32) for n in lengths]
    states = [runtime.initial_state(1) for _ in feats]
    done, outs, round_ = [0, 0, 0], [[], [], []], 0
    while any(d < n for d, n in zip(done, lengths)):
        active = [k for k in range(3) if starts[k] <= round_ and done[k] < lengths[k]]
        n = int(rng.integers(1, 8))
        if active:
            n = min([n] + [lengths[k] - done[k] for k in active])  # one chunk length for the whole batch
            x = np.concatenate([feats[k][:, done[k] * stack:(done[k] + n) * stack] for k in active])
            lp, state = runtime.step(x, runtime.stack_states([states[k] for k in active]))
            for row, (k, st) in enumerate(zip(active, runtime.unstack_states(state))):
                states[k] = st
                outs[k].append(lp[row])
                done[k] += n
        round_ += 1
    for k in range(3):
        with torch.no_grad():
            ref, _ = model.step(torch.from_numpy(feats[k]), model.initial_state(1))
        np.testing.assert_allclose(np.concatenate(outs[k]), ref[0].numpy(), atol=1e-4, err_msg=f"stream {k}")


def test_model_file_is_self_describing(tmp_path):
    _, ck = _checkpoint(tmp_path, hidden=32, layers=1)
    out = str(tmp_path / "m.onnx")
    export(ck, out, chunk_steps=5, version="7")
    props = {p.key: p.value for p in onnx.load(out).metadata_props}
    info = ModelInfo.from_props(props)
    assert (info.stack, info.chunk_steps, info.lookahead_steps) == (3, 5, 0)
    assert [(s.name, s.shape, s.batch_axis) for s in info.states] == [("h", (1, None, 32), 1), ("c", (1, None, 32), 1)]
    assert info.version == "7" and info.blank_id == 0 and len(info.vocab) == 29
    assert np.asarray(info.feature.mel_matrix).shape == (80, 257)
    assert info.feature.mean == [0.0] * 80
    model = OnnxAcousticModel(out, device="cpu")
    lp, _ = model.step(np.zeros((2, 12, 80), np.float32), model.initial_state(2))
    assert lp.shape == (2, 4, 29)


def test_int8_export_loads_and_stays_close(tmp_path, tiny_run):
    # A trained model: an untrained one's near-uniform outputs make the best token a coin toss under int8.
    ck = tiny_run["checkpoint"]
    report = export(ck, str(tmp_path / "q.onnx"), int8=True)
    assert report["argmax_agreement"] >= 0.8
    assert os.path.getsize(tmp_path / "q.onnx") < 0.5 * os.path.getsize(ck)
