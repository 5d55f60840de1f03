"""The PyTorch side of the model contract: the exporter builds the graph's inputs, outputs and metadata from the
model's own declaration, so the shipped model survives a round trip unchanged, and packages point one way."""

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from conftest import ROOT  # noqa: E402


def test_the_shipped_model_read_back_and_exported_again_is_the_same_model(bundled_model, tmp_path):
    """init=model.onnx reads the weights back, export writes them again: the same graph (operators, weight names
    and values, inputs, outputs) and bit-identical log-probs through the runtime."""
    from asr.model import OnnxAcousticModel
    from export.onnx_export import export
    from training.onnx_import import checkpoint_from_onnx

    torch.save(checkpoint_from_onnx(bundled_model), tmp_path / "ck.pt")
    export(str(tmp_path / "ck.pt"), str(tmp_path / "again.onnx"))
    a, b = onnx.load(bundled_model), onnx.load(str(tmp_path / "again.onnx"))
    assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]
    assert [i.name for i in a.graph.input] == [i.name for i in b.graph.input] == ["features", "h", "c"]
    assert [o.name for o in a.graph.output] == [o.name for o in b.graph.output]
    wa, wb = ({t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer} for m in (a, b))
    assert list(wa) == list(wb) and all(np.array_equal(wa[k], wb[k]) for k in wa)
    props = {p.key: p.value for p in b.metadata_props}
    assert json.loads(props["asr.states"]) == [{"name": "h", "shape": [3, None, 512], "batch_axis": 1},
                                               {"name": "c", "shape": [3, None, 512], "batch_axis": 1}]
    assert json.loads(props["asr.lookahead_steps"]) == 0
    old, new = OnnxAcousticModel(bundled_model, device="cpu"), OnnxAcousticModel(str(tmp_path / "again.onnx"),
                                                                                 device="cpu")
    x = np.random.default_rng(0).standard_normal((2, 90, 80)).astype(np.float32)
    s_old, s_new = old.initial_state(2), new.initial_state(2)
    bounds = [0, 12, 30, 33, 90]  # chunks of 4, 6, 1 and 19 steps, state carried
    for start, end in zip(bounds, bounds[1:]):
        lp_old, s_old = old.step(x[:, start:end], s_old)
        lp_new, s_new = new.step(x[:, start:end], s_new)
        assert np.array_equal(lp_old, lp_new)


def test_training_never_imports_export_and_the_runtime_imports_neither():
    code = ("import sys, asr.recognizer, asr.evaluate; assert not {'torch', 'training', 'export'} & set(sys.modules); "
            "import training.train, training.onnx_import, training.onnx_check, training.checkpoint; "
            "assert not [m for m in sys.modules if m == 'export' or m.startswith('export.')]")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
