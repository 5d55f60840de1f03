from dataclasses import replace

import numpy as np
import pytest

from asr.audio import read_audio
from asr.model import OnnxAcousticModel
from asr.recognizer import Recognizer
from conftest import BUNDLED, sample_pairs


def _feed(rec, samples, rng):
    stream, results, i = rec.stream(), [], 0
    while i < len(samples):
        n = int(rng.integers(1, 6000))
        results += stream.accept(samples[i : i + n])
        i += n
    return results + stream.finish()


def _finals(results):
    return [(r.text, r.start, r.end, [(w.text, w.start, w.end) for w in r.words]) for r in results if r.final]


def _two_utterances():
    wavs = [read_audio(str(w)) for w, _ in sample_pairs()]
    # A long pause between them: endpointing must split them identically too.
    return np.concatenate([wavs[0], np.zeros(16000 * 3, np.float32), wavs[1]])


def _batched(rec, audios):
    """Every stream advanced through Recognizer.step_streams (the server's path), whole audio handed over first."""
    streams = [rec.stream() for _ in audios]
    results = [[] for _ in audios]
    stepped = rec.step_streams(streams, audios)
    assert all(r is not None for r in stepped)  # every stream had a chunk: all went into the one call
    while any(r is not None for r in stepped):
        for i, r in enumerate(stepped):
            results[i] += r or []
        stepped = rec.step_streams(streams)
    return [r + s.finish() for r, s in zip(results, streams)]


def test_random_block_sizes_give_the_same_text_and_times_as_one_call(any_model):
    rec = Recognizer.load(any_model, device="cpu")
    samples = _two_utterances()
    offline = _finals(list(rec.transcribe(samples)))
    assert offline
    rng = np.random.default_rng(3)
    for _ in range(3):
        assert _finals(_feed(rec, samples, rng)) == offline


def test_streaming_log_probs_equal_offline(any_model):
    rec = Recognizer.load(any_model, device="cpu")
    feats = rec.stream().frontend.accept(read_audio(str(sample_pairs()[0][0])))
    stack = rec.info.stack
    feats = feats[: len(feats) // stack * stack]
    whole, _ = rec.model.step(feats[None], rec.model.initial_state())
    rng = np.random.default_rng(0)
    state = rec.model.initial_state()
    parts, i = [], 0
    while i < len(feats):
        n = int(rng.integers(1, 20)) * stack
        lp, state = rec.model.step(feats[None, i : i + n], state)
        parts.append(lp)
        i += n
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, atol=1e-4)


def test_partials_grow_into_the_final(any_model):
    """Greedy partials of a segment only ever extend: each is the start of the next and of the segment's final."""
    rec = Recognizer.load(any_model, device="cpu", lm=None)
    samples = _two_utterances()
    results = _feed(rec, samples, np.random.default_rng(5))
    finals = [r for r in results if r.final]
    assert len(finals) >= 2 and all(r.text for r in results)
    segment = []
    for r in results:
        if not r.final:
            segment.append(r.text)
            continue
        assert segment, "a final without partials before it"
        assert all(b.startswith(a) for a, b in zip(segment, segment[1:] + [r.text])), (segment, r.text)
        segment = []
    assert not segment  # the last partials grew into the last final too
    assert finals[-1].end <= len(samples) / 16000 + 0.1


def test_batched_model_calls_equal_per_stream_calls(any_model):
    """Recognizer.step_streams (the server's round): ready chunks of several streams in one model call."""
    rec = Recognizer.load(any_model, device="cpu")
    audios = [read_audio(str(w)) for w, _ in sample_pairs()]
    for audio, results in zip(audios, _batched(rec, audios)):
        assert _finals(results) == _finals(list(rec.transcribe(audio)))


def test_stream_has_one_verb_in_and_one_out(any_model):
    stream = Recognizer.load(any_model, device="cpu", lm=None).stream()
    public = {name for name in dir(stream) if not name.startswith("_") and callable(getattr(stream, name))}
    assert public == {"accept", "finish"}


# ---- a model whose state is not (h, c) and whose output comes L steps late ------------------------------------

def _delay_model(path, info, lookahead: int, declared: int | None = None, seed: int = 0):
    """A tiny ONNX model built here: log_softmax(stacked features @ W), each step's output delayed by `lookahead`
    steps through a state buffer "past" [N, L, V] (batch axis 0); without lookahead it has no state at all.
    `declared` is the lookahead its metadata claims (default: the true one)."""
    onnx = pytest.importorskip("onnx")  # builds the graph; not part of a runtime-only install
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    f, v = info.feature.n_mels, len(info.vocab)
    w = (rng.standard_normal((f * info.stack, v)) * 0.05).astype(np.float32)
    w[:, info.blank_id] = -2 / (f * info.stack)  # blank in quiet frames (low normalised energy): segments close
    w[:, info.vocab.index(" ")] *= 6  # spaces often enough for words
    init = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array([0, -1, f * info.stack]), "shape"),
            numpy_helper.from_array(np.array([1]), "one"), numpy_helper.from_array(np.array([0]), "zero"),
            numpy_helper.from_array(np.array([-max(lookahead, 1)]), "minus_l"),
            numpy_helper.from_array(np.array([1 << 30]), "big")]
    nodes = [helper.make_node("Reshape", ["features", "shape"], ["x"]), helper.make_node("MatMul", ["x", "W"], ["y"])]
    inputs = [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", "T", f])]
    outputs = [helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, ["N", "S", v])]
    states = []
    if lookahead:
        nodes += [helper.make_node("Concat", ["past", "y"], ["window"], axis=1),
                  helper.make_node("Shape", ["y"], ["y_shape"]),
                  helper.make_node("Gather", ["y_shape", "one"], ["steps"], axis=0),
                  helper.make_node("Slice", ["window", "zero", "steps", "one"], ["late"]),
                  helper.make_node("Slice", ["window", "minus_l", "big", "one"], ["past_out"]),
                  helper.make_node("LogSoftmax", ["late"], ["log_probs"], axis=-1)]
        inputs.append(helper.make_tensor_value_info("past", TensorProto.FLOAT, ["N", lookahead, v]))
        outputs.append(helper.make_tensor_value_info("past_out", TensorProto.FLOAT, ["N", lookahead, v]))
        states = [{"name": "past", "shape": [None, lookahead, v], "batch_axis": 0}]
    else:
        nodes.append(helper.make_node("LogSoftmax", ["y"], ["log_probs"], axis=-1))
    graph = helper.make_graph(nodes, "delay", inputs, outputs, init)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    meta = replace(info, states=states, lookahead_steps=lookahead if declared is None else declared)
    for key, value in meta.to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    return str(path)


@pytest.fixture(scope="module")
def bundled_info():
    if not BUNDLED.exists():
        pytest.skip("bundled model not built")
    return OnnxAcousticModel(str(BUNDLED), device="cpu").info


@pytest.mark.parametrize("lookahead", [2, 7])  # within one chunk of 4 steps, and beyond it
def test_a_lookahead_model_streams_like_the_same_model_without_delay(tmp_path, bundled_info, lookahead):
    """Outputs L steps late (state of its own, not h/c): the runtime drops the L outputs from before the audio and
    flushes L steps of zero features at the end, so text and times equal the undelayed model's, for any split
    and batched through step_streams; declared without its lookahead, the same graph gives other times."""
    plain = Recognizer.load(_delay_model(tmp_path / "plain.onnx", bundled_info, 0), device="cpu", lm=None)
    late = Recognizer.load(_delay_model(tmp_path / "late.onnx", bundled_info, lookahead), device="cpu", lm=None)
    samples = _two_utterances()
    samples = samples[: len(samples) - 16000 * 2]  # ends mid-speech: the flushed steps hold words
    want = list(plain.transcribe(samples))
    assert len(want) >= 2 and sum(len(r.words) for r in want) > 10
    assert _finals(list(late.transcribe(samples))) == _finals(want)
    assert _finals(_feed(late, samples, np.random.default_rng(1))) == _finals(want)
    audios = [read_audio(str(w)) for w, _ in sample_pairs()]
    for audio, results in zip(audios, _batched(late, audios)):
        assert _finals(results) == _finals(list(plain.transcribe(audio)))
    undeclared = Recognizer.load(_delay_model(tmp_path / "undeclared.onnx", bundled_info, lookahead, declared=0),
                                 device="cpu", lm=None)
    assert _finals(list(undeclared.transcribe(samples))) != _finals(want)
