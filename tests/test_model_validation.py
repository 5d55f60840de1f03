"""A model file whose metadata or graph breaks the contract is refused at load, in one line, by every
command (not accepted, then failing on every stream)."""

import json

import onnx
import pytest

from conftest import BUNDLED, SAMPLES, run_asr

SOURCE = BUNDLED.with_name(BUNDLED.stem + "-int8.onnx")  # the smaller bundled model: quicker to rewrite


@pytest.fixture(scope="module")
def proto():
    if not SOURCE.exists():
        pytest.skip("bundled model not built")
    return onnx.load(str(SOURCE))


def _meta(proto, key, change):
    entry = next(p for p in proto.metadata_props if p.key == key)
    entry.value = change(entry.value)


def _legacy(proto, hidden):
    """The file as written before asr.states: the LSTM's sizes in asr.layers / asr.hidden / asr.state_size."""
    (h,) = [st for st in json.loads(next(p.value for p in proto.metadata_props if p.key == "asr.states"))
            if st["name"] == "h"]
    _drop(proto, "asr.states")
    for key, value in (("asr.layers", h["shape"][0]), ("asr.hidden", hidden), ("asr.state_size", h["shape"][-1])):
        proto.metadata_props.add(key=key, value=str(value))


def _json(change):
    def edit(text):
        value = json.loads(text)
        return json.dumps(change(value))
    return edit


def _feature(key, value):
    return _json(lambda f: {**f, key: value})


def _rename_input(proto, old, new):
    for x in proto.graph.input:
        if x.name == old:
            x.name = new
    for node in proto.graph.node:
        for k, name in enumerate(node.input):
            if name == old:
                node.input[k] = new


def _drop(proto, key):
    kept = [p for p in proto.metadata_props if p.key != key]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)


FAULTS = {
    "short vocabulary": (lambda m: _meta(m, "asr.vocab", _json(lambda v: v[:-1])),
                         "outputs 29 scores per step but its vocabulary has 28"),
    "duplicate tokens": (lambda m: _meta(m, "asr.vocab", _json(lambda v: v[:-1] + [v[1]])), "distinct"),
    "sample rate 0": (lambda m: _meta(m, "asr.feature", _feature("sample_rate", 0)), "feature.sample_rate is 0"),
    "hop length text": (lambda m: _meta(m, "asr.feature", _feature("hop_length", "10ms")), "feature.hop_length"),
    "zero std": (lambda m: _meta(m, "asr.feature", _json(lambda f: {**f, "std": [0.0] * len(f["std"])})),
                 "feature.std"),
    "mel matrix cut": (lambda m: _meta(m, "asr.feature", _json(lambda f: {**f, "mel_matrix": f["mel_matrix"][:10]})),
                       "feature.mel_matrix has shape"),
    "blank out of range": (lambda m: _meta(m, "asr.blank_id", lambda v: "29"), "blank_id is 29"),
    "chunk steps 0": (lambda m: _meta(m, "asr.chunk_steps", lambda v: "0"), "chunk_steps is 0"),
    "hidden size wrong": (lambda m: _meta(m, "asr.states", _json(lambda v: [
        {**st, "shape": st["shape"][:-1] + [256]} if st["name"] == "c" else st for st in v])), "model input c"),
    "hidden size wrong (file without asr.states)": (lambda m: _legacy(m, hidden=256), "model input c"),
    "no feature metadata": (lambda m: _drop(m, "asr.feature"), "lacks asr.feature"),
    "metadata not JSON": (lambda m: _meta(m, "asr.vocab", lambda v: v[:-3]), "asr.vocab is not JSON"),
    "input renamed": (lambda m: _rename_input(m, "features", "x"), "model inputs are ['c', 'h', 'x']"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_model_breaking_the_contract_is_one_line_exit_1(tmp_path, proto, fault):
    edit, message = FAULTS[fault]
    bad = onnx.ModelProto()
    bad.CopyFrom(proto)
    edit(bad)
    path = tmp_path / "bad.onnx"
    onnx.save(bad, str(path))
    proc = run_asr("transcribe", "--model", path, SAMPLES / "harvard-slt.wav")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert str(path) in lines[0] and message in lines[0], lines[0]
    assert proc.stdout == ""


def test_the_server_refuses_to_start_with_such_a_model(tmp_path, proto):
    bad = onnx.ModelProto()
    bad.CopyFrom(proto)
    FAULTS["short vocabulary"][0](bad)
    onnx.save(bad, str(tmp_path / "bad.onnx"))
    proc = run_asr("serve", "--model", tmp_path / "bad.onnx", "--port", "0", timeout=60)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_the_bundled_models_pass_the_checks():
    from asr.model import OnnxAcousticModel

    for path in (BUNDLED, SOURCE):
        if path.exists():
            assert OnnxAcousticModel(str(path), device="cpu").info.vocab[0] == "<blank>"
