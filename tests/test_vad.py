"""Voice activity detection with the real Silero VAD model from the silero-vad wheel (skipped without it)."""

import asyncio
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from asr.audio import read_audio
from asr.metrics import edit_distance
from asr.recognizer import Recognizer, Stream
from asr.vad import FRAME, VadConfig, VadError, VadModel, model_path
from conftest import SHARED_DATA, run_asr, sample_pairs

pytestmark = pytest.mark.skipif(importlib.util.find_spec("silero_vad") is None,
                                reason="needs the silero-vad wheel (pip install --no-deps silero-vad==6.2.3)")
SR = 16000


@pytest.fixture(scope="module")
def vad_model():
    return VadModel()


@pytest.fixture(scope="module")
def speech():
    return read_audio(str(sample_pairs()[0][0]), SR)


def noise(seconds, rng, level=0.05):
    """A real noise recording when the shared data is there, else white noise."""
    clips = sorted((SHARED_DATA / "noise").glob("*.flac")) if SHARED_DATA.is_dir() else []
    x = read_audio(str(clips[0]), SR) if clips else rng.standard_normal(int(seconds * SR)).astype(np.float32)
    x = np.resize(x, int(seconds * SR))
    return (x / (np.sqrt(np.mean(x**2)) + 1e-9) * level).astype(np.float32)


def probs_of(model, x, splits):
    s = model.stream()
    out = []
    for part in np.split(x, splits):
        s.push(part)
        out.append(s.probs())
    return np.concatenate(out)


def test_model_is_read_from_the_wheel_without_importing_it_or_torch():
    code = ("import sys, asr.vad as v; m = v.VadModel(); "
            "print(m.path, 'silero_vad' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0].endswith(os.path.join("silero_vad", "data", "silero_vad_16k_sequence.onnx"))
    assert out[1:] == ["False", "False"]


def test_probabilities_separate_speech_from_silence_and_noise(vad_model, speech):
    rng = np.random.default_rng(0)
    p_speech = probs_of(vad_model, speech, [])
    assert len(p_speech) == len(speech) // FRAME
    assert np.mean(p_speech > 0.5) > 0.5  # the sample is mostly speech
    assert np.mean(probs_of(vad_model, np.zeros(3 * SR, np.float32), []) > 0.5) == 0
    assert np.mean(probs_of(vad_model, noise(5, rng), []) > 0.5) < 0.1


def test_any_split_gives_the_same_probabilities(vad_model, speech):
    rng = np.random.default_rng(1)
    audio = np.tile(speech, 3)  # over 512 frames: pushed whole, it takes more than one model call
    whole = probs_of(vad_model, audio, [])
    assert len(whole) > 512
    for _ in range(3):
        cuts = np.sort(rng.integers(0, len(audio), 12))
        np.testing.assert_array_equal(probs_of(vad_model, audio, cuts), whole)


def test_equals_silero_frame_by_frame_model(vad_model, speech):
    """Our framing (64 samples of context before each 512) fed to the wheel's stock per-frame model gives the
    same probabilities as the sequence model we run."""
    import onnxruntime as ort

    stock = ort.InferenceSession(os.path.join(os.path.dirname(model_path()), "silero_vad.onnx"),
                                 providers=["CPUExecutionProvider"])
    x = speech[: len(speech) // FRAME * FRAME]
    state, context, ref = np.zeros((2, 1, 128), np.float32), np.zeros(64, np.float32), []
    for frame in x.reshape(-1, FRAME):
        p, state = stock.run(None, {"input": np.concatenate([context, frame])[None], "state": state,
                                    "sr": np.array(SR, np.int64)})
        context = frame[-64:]
        ref.append(float(p[0, 0]))
    np.testing.assert_allclose(probs_of(vad_model, x, []), ref, atol=1e-4)


def _padded(speech, rng):
    """1 s of quiet, the sample, 8 s of noise, the sample again, 2 s of quiet."""
    quiet = lambda s: (rng.standard_normal(int(s * SR)) * 1e-4).astype(np.float32)  # noqa: E731
    return np.concatenate([quiet(1), speech, noise(8, rng), speech, quiet(2)])


def test_transcribe_skips_long_non_speech_and_keeps_the_files_times(any_model, speech, monkeypatch):
    rng = np.random.default_rng(2)
    audio = _padded(speech, rng)
    reference = sample_pairs()[0][1].lower()
    second = 1 + len(speech) / SR + 8
    plain = list(Recognizer.load(any_model, device="cpu", threads=1, lm=None).transcribe(audio))
    rec = Recognizer.load(any_model, device="cpu", threads=1, lm=None, vad=VadConfig())
    fed = []
    accept = Stream.accept
    monkeypatch.setattr(Stream, "accept", lambda self, x: fed.append(len(x)) or accept(self, x))
    segments = list(rec.transcribe(audio))
    # Both copies of the speech were decoded, the noise between them mostly not.
    assert sum(fed) < 2 * len(speech) + 4 * SR
    first = [s for s in segments if s.end < second]
    later = [s for s in segments if s.start >= second - 0.4]
    assert first and later and len(first) + len(later) == len(segments)
    assert first[0].start >= 0.6 and later[0].start >= second - 0.4  # times are the file's own
    for part, lo, hi in ((first, 0, second - 0.4), (later, second - 0.4, 1e9)):
        text = " ".join(s.text for s in part)
        before = " ".join(w.text for s in plain for w in s.words if lo <= w.start < hi)
        # Characters: this model's spelling flips with small changes of its input (see the shift-robustness note)
        assert edit_distance(reference, text) <= edit_distance(reference, before) + 0.05 * len(reference), \
            (reference, before, text)


def _stream_finals(rec, audio, blocks):
    s = rec.stream()
    out = []
    for part in np.split(audio, blocks):
        out += [(s.time, r) for r in s.accept(part) if r.final]
    return out + [(s.time, r) for r in s.finish() if r.final]


def test_streams_close_a_segment_on_vad_silence(any_model, speech):
    rng = np.random.default_rng(3)
    audio = np.concatenate([speech, (rng.standard_normal(3 * SR) * 1e-4).astype(np.float32)])
    blocks = np.arange(320, len(audio), 320)
    plain = Recognizer.load(any_model, device="cpu", threads=1, lm=None)
    rec = Recognizer.load(any_model, device="cpu", threads=1, lm=None, vad=VadConfig(silence=0.4))
    before = _stream_finals(plain, audio, blocks)
    after = _stream_finals(rec, audio, blocks)
    end = before[-1][1].end  # the last word's end
    assert before[-1][0] > end + 0.9  # the CTC rule waits for 1 s of blanks
    assert after[-1][0] < before[-1][0] - 0.3 and after[-1][0] < end + 0.9
    assert " ".join(r.text for _, r in after) == " ".join(r.text for _, r in before)  # greedy: same words
    # Any block split gives the same segments (the VAD is read at the decoder's position).
    cuts = np.sort(rng.integers(0, len(audio), 40))
    again = _stream_finals(rec, audio, cuts)
    assert [r.to_dict() for _, r in again] == [r.to_dict() for _, r in after]


def test_server_vad_streams_match_in_process(any_model, speech):
    from asr.client import pcm16, stream_samples
    from asr.serverprocess import ServerProcess

    rng = np.random.default_rng(4)
    audio = np.concatenate([speech, (rng.standard_normal(2 * SR) * 1e-3).astype(np.float32), speech])
    audio = np.frombuffer(pcm16(audio), "<i2").astype(np.float32) / 32768.0  # what the server receives
    rec = Recognizer.load(any_model, device="cpu", threads=1, lm=None, vad=VadConfig())
    expected = [r.to_dict() for _, r in _stream_finals(rec, audio, [])]
    server = ServerProcess(any_model, None, "--vad", "--no-lm")
    try:
        report = asyncio.run(stream_samples(server.url, audio, realtime=False))
    finally:
        assert server.stop() == 0
    assert [json.loads(json.dumps(m)) for m in report.finals] == json.loads(json.dumps(expected))
    assert len(expected) >= 2


def test_cli_transcribe_vad(any_model, speech, tmp_path):
    path = tmp_path / "padded.wav"
    sf.write(path, _padded(speech, np.random.default_rng(5)), SR)
    r = run_asr("transcribe", path, "--model", any_model, "--no-lm", "--vad", "--format", "json", "--jobs", "1")
    assert r.returncode == 0, r.stderr
    segments = json.loads(r.stdout)["segments"]
    assert segments and segments[-1]["start"] > 9


def test_bad_vad_options_and_models_are_one_line(any_model, tmp_path, monkeypatch):
    wav = str(sample_pairs()[0][0])
    r = run_asr("transcribe", wav, "--vad", "--vad-threshold", "1.5")
    assert r.returncode == 2 and "--vad-threshold" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_asr("transcribe", wav, "--vad", "--vad-skip", "0.2")  # shorter than the pre-roll kept before speech
    assert r.returncode == 2 and "--vad-skip" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_asr("transcribe", wav, "--vad", "--vad-silence", "nan")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    for bad, says in ((tmp_path / "missing.onnx", "not found"), (any_model, "not Silero VAD")):
        r = run_asr("transcribe", wav, "--model", any_model, "--no-lm", "--vad", env={"ASR_VAD_MODEL": str(bad)})
        assert r.returncode == 1 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    monkeypatch.setattr("asr.vad.importlib.util.find_spec", lambda name: None)
    monkeypatch.delenv("ASR_VAD_MODEL", raising=False)
    with pytest.raises(VadError, match="pip install --no-deps silero-vad"):
        model_path()


@pytest.mark.skipif(not shutil.which("pulseaudio") or not shutil.which("paplay"), reason="PulseAudio not installed")
def test_live_vad_on_a_real_audio_stack_equals_the_offline_stream(any_model, tmp_path):
    """`asr live --vad` hearing a sample played into PulseAudio: its finals are exactly those of a VAD stream over
    the audio it heard (--save-audio), and the segment is closed by the endpoint, before Ctrl+C."""
    from test_live import _asr, start_pulse, stop_pulse

    wav = str(sample_pairs()[0][0])
    (tmp_path / "pulse").mkdir()
    env = start_pulse(tmp_path / "pulse")
    try:
        proc = subprocess.Popen(_asr("live", "--model", any_model, "--no-lm", "--vad", "--output",
                                     tmp_path / "finals.jsonl", "--save-audio", tmp_path / "heard.wav"),
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            assert "listening" in proc.stderr.readline()
            time.sleep(2.5)  # PortAudio's first callback arrives 1-2 s after the stream opens
            subprocess.run(["paplay", "--device=vsink", wav], env=env, check=True, timeout=60)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (tmp_path / "finals.jsonl").read_text().strip():
                time.sleep(0.05)
            closed_before_interrupt = bool((tmp_path / "finals.jsonl").read_text().strip())
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=20) == 0
        finally:
            proc.kill()
    finally:
        stop_pulse(env)
    assert closed_before_interrupt
    live = [json.loads(line) for line in (tmp_path / "finals.jsonl").read_text().splitlines()]
    heard = read_audio(str(tmp_path / "heard.wav"), SR)
    rec = Recognizer.load(any_model, device="cpu", threads=1, lm=None, vad=VadConfig())
    offline = [r for _, r in _stream_finals(rec, heard, np.arange(320, len(heard), 320))]
    assert [(r["text"], r["start"], r["end"]) for r in live] == [(r.text, r.start, r.end) for r in offline]
