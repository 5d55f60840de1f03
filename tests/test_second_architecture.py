"""A second architecture whose state is not (h, c): an LSTM followed by a lookahead convolution that keeps its
own buffer of past LSTM outputs (training.model.LookaheadAcousticModel, model.lookahead = L). Trained for a few
seconds on the bundled samples, exported, and run through every caller: the ONNX-vs-PyTorch check, warm start
from the exported file, the runtime's stepping (alone, in random blocks, batched) and `asr transcribe`.

The runtime's side of the state contract (asr/model.py, asr/recognizer.py) is checked here too: where it is
missing or wrong these tests fail with a message naming it, they never skip."""

import json
import subprocess

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from conftest import run_asr, sample_pairs, stream_in_random_blocks  # noqa: E402

LOOKAHEAD = 2
STATES = ["lstm_hidden", "lstm_cell", "past"]


@pytest.fixture(scope="module")
def tiny2(tmp_path_factory, sample_manifest):
    from export.onnx_export import export
    from training.config import load_config
    from training.train import train

    out = tmp_path_factory.mktemp("tiny2")
    # Like conftest's tiny_run, smaller: about 20 s on one core, enough to spell most of the samples' words.
    cfg = load_config(None, ["epochs=150", "model.hidden=96", "model.layers=1", f"model.lookahead={LOOKAHEAD}",
                             "model.dropout=0.0", "lr=1e-2", "final_lr_ratio=0.1", "warmup_steps=10",
                             "batch_seconds=60", "average_last=1", "augment.speeds=[1.0]", "augment.freq_masks=0",
                             "augment.time_masks_per_second=0.0", "augment.gain_db=0.0", "threads=1"])
    train([sample_manifest], [sample_manifest], str(out), cfg, cache_dir=str(out / "cache"), device="cpu")
    path = out / "tiny2.onnx"
    report = export(str(out / "best.pt"), str(path))
    return {"checkpoint": str(out / "best.pt"), "onnx": str(path), "report": report}


def _runtime(path):
    from asr.model import OnnxAcousticModel

    missing = [m for m in ("initial_state", "step", "stack_states", "unstack_states")
               if not hasattr(OnnxAcousticModel, m)]
    assert not missing, f"runtime lacks the state contract: asr.model.OnnxAcousticModel has no {missing}"
    return OnnxAcousticModel(path, device="cpu")


def _recognizer(path):
    import asr

    rec = asr.Recognizer.load(path, device="cpu", lm=None)
    assert rec.info.lookahead_steps == LOOKAHEAD, "runtime does not read asr.lookahead_steps (asr/metadata.py)"
    return rec


def _torch_model(checkpoint):
    from training import checkpoint as ckpt

    return ckpt.build_model(ckpt.load(checkpoint), checkpoint)


def _chunks(rng, steps, most=9):
    out = []
    while steps > 0:
        out.append(min(steps, int(rng.integers(1, most + 1))))
        steps -= out[-1]
    return out


@pytest.mark.parametrize("kw", [dict(lookahead=0), dict(lookahead=LOOKAHEAD), dict(lookahead=3, stack=2, layers=2)])
def test_torch_step_streamed_and_flushed_is_the_offline_forward(kw):
    """The offline definition training optimises is what the stream computes: any chunking, state carried,
    lookahead_steps of zero features at the end, the first lookahead_steps outputs dropped."""
    from training.model import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=16, **kw)).eval()
    assert model.lookahead_steps == kw["lookahead"]
    rng = np.random.default_rng(1)
    stack, late = model.config.stack, model.lookahead_steps
    for steps in (1, 7, 40):
        x = torch.from_numpy(rng.standard_normal((2, steps * stack, 80)).astype(np.float32))
        with torch.no_grad():
            offline = model(x)
            padded = torch.nn.functional.pad(x, (0, 0, 0, late * stack))
            state, outs, start = model.initial_state(2), [], 0
            for n in _chunks(rng, steps + late):
                lp, state = model.step(padded[:, start * stack:(start + n) * stack], state)
                outs.append(lp)
                start += n
        assert offline.shape == (2, steps, 29)
        torch.testing.assert_close(torch.cat(outs, dim=1)[:, late:], offline, rtol=0, atol=1e-5)


def test_the_model_file_declares_its_own_state_and_lookahead(tiny2):
    from asr.metadata import ModelInfo

    proto = onnx.load(tiny2["onnx"])
    props = {p.key: p.value for p in proto.metadata_props}
    states = json.loads(props["asr.states"])
    assert [s["name"] for s in states] == STATES
    assert states[2] == {"name": "past", "shape": [None, LOOKAHEAD, 96], "batch_axis": 0}
    assert json.loads(props["asr.lookahead_steps"]) == LOOKAHEAD
    assert "asr.layers" not in props and "asr.hidden" not in props  # nothing of an (h, c) schema is written
    assert [i.name for i in proto.graph.input] == ["features", *STATES]
    assert [o.name for o in proto.graph.output] == ["log_probs", *(f"{s}_out" for s in STATES)]
    info = ModelInfo.from_props(props)
    assert [s.name for s in info.states] == STATES and info.lookahead_steps == LOOKAHEAD
    assert tiny2["report"]["max_abs_diff"] < 1e-4  # export's own check ran


def test_onnx_equals_torch_on_random_chunk_splits_with_state_carried(tiny2):
    model, runtime = _torch_model(tiny2["checkpoint"]), _runtime(tiny2["onnx"])
    rng = np.random.default_rng(5)
    stack = model.config.stack
    for steps in (3, 25, 70):
        x = rng.standard_normal((2, steps * stack, 80)).astype(np.float32)
        padded = np.concatenate([x, np.zeros((2, LOOKAHEAD * stack, 80), np.float32)], axis=1)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        state, outs, start = runtime.initial_state(2), [], 0
        for n in _chunks(rng, steps + LOOKAHEAD):
            lp, state = runtime.step(padded[:, start * stack:(start + n) * stack], state)
            outs.append(lp)
            start += n
        # Each chunk's outputs depend on the state the previous ones left (the runtime's state stays opaque).
        np.testing.assert_allclose(np.concatenate(outs, axis=1)[:, LOOKAHEAD:], ref, atol=1e-4)


def test_warm_start_from_the_exported_file_reads_its_weights_and_declaration(tiny2, tmp_path):
    from training import checkpoint as ckpt
    from training.onnx_import import InitError, checkpoint_from_onnx

    read = checkpoint_from_onnx(tiny2["onnx"])
    saved = ckpt.load(tiny2["checkpoint"])["model"]
    assert set(read["model"]) == set(saved) and "lookahead.weight" in saved
    for name, tensor in saved.items():
        torch.testing.assert_close(read["model"][name], tensor, rtol=0, atol=0)
    # A file whose declared state is not what its configuration builds is refused, naming the key.
    proto = onnx.load(tiny2["onnx"])
    for p in proto.metadata_props:
        if p.key == "asr.states":
            states = json.loads(p.value)
            states[2]["shape"][1] = LOOKAHEAD + 1
            p.value = json.dumps(states)
    bad = tmp_path / "declares-another-state.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(InitError, match="asr.states"):
        checkpoint_from_onnx(str(bad))


def _finals(results):
    return [(r.text, round(r.start, 3), round(r.end, 3)) for r in results if r.final]


def _offline(rec, samples):
    stream = rec.stream()
    return _finals(stream.accept(samples) + stream.finish())


def test_streaming_in_random_blocks_equals_offline(tiny2):
    from asr.audio import read_audio

    rec = _recognizer(tiny2["onnx"])
    rng = np.random.default_rng(3)
    for wav, text in sample_pairs():
        samples = read_audio(str(wav), rec.sample_rate)
        offline = _offline(rec, samples)
        words = " ".join(t for t, _, _ in offline).split()
        assert len(set(words) & set(text.split())) >= 5, f"the tiny model should spell some words: {offline}"
        assert offline[-1][2] <= len(samples) / rec.sample_rate + 0.1, "word times not shifted back by the lookahead"
        for _ in range(2):
            results = stream_in_random_blocks(rec, samples, rng)
            assert _finals(results) == offline, f"{wav.name}: streaming in random blocks differs from offline"


def test_batched_stepping_equals_one_by_one(tiny2):
    """Streams of different lengths stepped as one batch: the state's batch axes differ (1 for the LSTM's, 0 for
    the buffer), so stacking and unstacking must follow the declaration."""
    from asr.audio import read_audio

    rec = _recognizer(tiny2["onnx"])
    audio = [read_audio(str(wav), rec.sample_rate) for wav, _ in sample_pairs()]
    audio[1] = audio[1][: len(audio[1]) // 2]
    alone = [_offline(rec, a) for a in audio]
    streams, results, pos, stepped = [rec.stream() for _ in audio], [[] for _ in audio], 0, []
    while pos < max(len(a) for a in audio) or any(r is not None for r in stepped):
        blocks = [a[pos:pos + 1600] if pos < len(a) else None for a in audio]
        pos += 1600
        stepped = rec.step_streams(streams, blocks)
        for k, r in enumerate(stepped):
            results[k] += r or []
    for k, stream in enumerate(streams):
        results[k] += stream.finish()
    assert [_finals(r) for r in results] == alone, "batched stepping differs from stepping each stream alone"


def test_asr_transcribe_runs_the_second_architecture(tiny2):
    wav = sample_pairs()[0][0]
    proc = run_asr("transcribe", "--model", tiny2["onnx"], wav)
    assert proc.returncode == 0, proc.stderr
    from asr.audio import read_audio

    rec = _recognizer(tiny2["onnx"])
    expected = " ".join(t for t, _, _ in _offline(rec, read_audio(str(wav), rec.sample_rate)))
    assert " ".join(proc.stdout.split()) == " ".join(expected.split())


def test_a_delayed_copy_of_the_plain_model_gives_the_same_words_at_the_same_times(tiny_run, tiny_onnx, tmp_path):
    """The plain tiny model's weights in the lookahead architecture, its convolution passing step t through
    unchanged: the same function, its outputs L steps late. The runtime must drop the first L outputs, flush the
    last L at the end and time words by audio steps, so every word and time equals the plain model's."""
    from asr.audio import read_audio
    from export.onnx_export import export
    from training import checkpoint as ckpt

    from training.model import ModelConfig, passthrough_lookahead

    ck = ckpt.load(tiny_run["checkpoint"])
    ck["train_config"]["model"]["lookahead"] = LOOKAHEAD
    ck["model"] = passthrough_lookahead(ck["model"], ModelConfig.from_dict(ck["train_config"]["model"]))
    ckpt.save(ck, str(tmp_path / "delayed.pt"))
    export(str(tmp_path / "delayed.pt"), str(tmp_path / "delayed.onnx"))
    plain, delayed = _recognizer_plain(tiny_onnx), _recognizer(str(tmp_path / "delayed.onnx"))
    for wav, _ in sample_pairs():
        samples = read_audio(str(wav), plain.sample_rate)
        want, got = (_words(rec, samples) for rec in (plain, delayed))
        assert want, "the plain tiny model should spell words"
        assert got == want, f"{wav.name}: a model with lookahead gives other words or times than without it"


def _recognizer_plain(path):
    import asr

    return asr.Recognizer.load(path, device="cpu", lm=None)


def _words(rec, samples):
    stream = rec.stream()
    return [(w.text, round(w.start, 3), round(w.end, 3)) for r in stream.accept(samples) + stream.finish()
            if r.final for w in r.words]


def test_the_server_serves_the_second_architecture(tiny2, tmp_path):
    """Three `asr client` processes at once against `asr serve`: batched server stepping with this state."""
    from asr.audio import read_audio
    from asr.serverprocess import ServerProcess
    from conftest import asr_command

    rec = _recognizer(tiny2["onnx"])
    server = ServerProcess(tiny2["onnx"], tmp_path / "server.log")
    try:
        clients = [(wav, subprocess.Popen([*asr_command(), "client", str(wav), "--url", server.url, "--fast"],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
                   for wav, _ in sample_pairs()]
        for wav, proc in clients:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            got = [json.loads(line) for line in out.splitlines()]
            want = [r.to_dict() for r in rec.transcribe(read_audio(str(wav), rec.sample_rate))]
            assert [m for m in got if m["type"] == "final"] == json.loads(json.dumps(want)), wav.name
    finally:
        assert server.stop() == 0, server.log()


def test_training_grows_a_lookahead_on_a_plain_init(tiny_onnx, sample_manifest, tmp_path):
    """`init=` a plain exported model with `model.lookahead=L`: training starts from the lookahead architecture
    with the plain model's weights and a pass-through convolution, so before any step it computes exactly the
    plain model's function (its log-probs on real features), and the run's configuration records the lookahead."""
    from training.config import load_config
    from training.model import LookaheadAcousticModel
    from training.onnx_import import load_init
    from training import checkpoint as ckpt
    from training.train import setup

    cfg = load_config(None, [f"init={tiny_onnx}", f"model.lookahead={LOOKAHEAD}", "threads=1",
                             "augment.speeds=[1.0]"])
    run = setup([sample_manifest], [sample_manifest], str(tmp_path / "run"), cfg, resume=False,
                cache_dir=str(tmp_path / "cache"), device="cpu")
    assert isinstance(run.model, LookaheadAcousticModel) and run.cfg.model.lookahead == LOOKAHEAD
    plain = ckpt.build_model(load_init(tiny_onnx), tiny_onnx).eval()
    run.model.eval()
    feats = torch.tensor(run.dev_split.feats[1.0].get(0)[None, :60])
    with torch.no_grad():
        want, got = plain(feats), run.model(feats)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)
