import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from conftest import BUNDLED, run_asr
from training import kokoro
from training.synth import KOKORO_VOICES, VOICES, Voice, available_voices, plan, synthesize

needs_kokoro = pytest.mark.skipif(bool(kokoro.missing()) or not shutil.which("sox"),
                                  reason=f"needs sox and Kokoro (scripts/install_kokoro.sh): missing "
                                         f"{', '.join(kokoro.missing()) or 'sox'}")
SENTENCES = "rice is often served in round bowls\nthe box was thrown beside the parked truck\n"


def test_kokoro_plans_draw_voice_blends_and_leave_the_debian_plans_unchanged():
    fake = [Voice(f"kokoro-{v}", lambda: True) for v in ("af_heart", "bm_george", "if_sara")]
    debian = [Voice("flite-slt", lambda: True), Voice("espeak-en-us+m3", lambda: True)]
    sentences = [f"sentence number {n} of the test" for n in range(200)]
    # The plans of the existing corpora (Debian voices) must not move: the same jobs with or without blending.
    assert list(plan(sentences, debian, 50, 2, (0.85, 1.15), 250)) == \
        list(plan(sentences, debian, 50, 2, (0.85, 1.15), 250, blend=0.7))
    jobs = list(plan(sentences, fake + debian, 200, 5, (0.9, 1.1), 250, blend=0.4))
    assert jobs == list(plan(sentences, fake + debian, 200, 5, (0.9, 1.1), 250, blend=0.4))
    ko = [j for j in jobs if j.voice.name.startswith("kokoro-")]
    assert all(j.cents == 0 and j.mix[0][0] == j.voice.name.removeprefix("kokoro-") for j in ko)
    blended = [j for j in ko if len(j.mix) == 2]
    assert 0.25 < len(blended) / len(ko) < 0.55
    for j in blended:
        assert j.mix[1][0] != j.mix[0][0] and abs(sum(w for _, w in j.mix) - 1) < 1e-9 and 0.2 <= j.mix[1][1] <= 0.5
    assert all(j.mix == () for j in jobs if not j.voice.name.startswith("kokoro-"))


def test_kokoro_voices_are_listed_and_a_missing_install_is_a_one_line_error(tmp_path):
    assert {v.name for v in KOKORO_VOICES}.isdisjoint(v.name for v in VOICES)
    (tmp_path / "s.txt").write_text(SENTENCES)
    env = {"ASR_KOKORO_DIR": str(tmp_path / "empty")}
    r = run_asr("synth", "--list-voices", env=env)
    assert r.returncode == 0 and "kokoro-af_heart\tmissing" in r.stdout
    r = run_asr("synth", tmp_path / "s.txt", "-o", tmp_path / "out", "--engine", "kokoro", env=env)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "install_kokoro.sh" in r.stderr
    r = run_asr("synth", tmp_path / "s.txt", "-o", tmp_path / "out", "--engine", "kokoro", "--blend", "2")
    assert r.returncode == 2 and "--blend" in r.stderr


@needs_kokoro
@pytest.mark.slow
def test_kokoro_speech_is_16k_reproducible_resumable_and_intelligible(tmp_path):
    (tmp_path / "s.txt").write_text(SENTENCES)
    voices = available_voices(["kokoro-af_heart", "kokoro-bm_george"])
    assert [v.name for v in voices] == ["kokoro-af_heart", "kokoro-bm_george"]
    args = dict(voices=voices, count=2, seed=3, jobs=2, blend=0.5)
    assert synthesize(str(tmp_path / "s.txt"), str(tmp_path / "a"), **args) == (2, [])
    entries = [json.loads(line) for line in open(tmp_path / "a" / "synth.jsonl")]
    assert sorted(e["text"] for e in entries) == sorted(SENTENCES.split("\n")[:2])
    assert {e["speaker"] for e in entries} == {"kokoro-af_heart", "kokoro-bm_george"}
    stamps = {e["audio"]: os.stat(tmp_path / "a" / e["audio"]).st_mtime_ns for e in entries}
    assert synthesize(str(tmp_path / "s.txt"), str(tmp_path / "a"), **args) == (2, [])  # nothing redone
    assert {a: os.stat(tmp_path / "a" / a).st_mtime_ns for a in stamps} == stamps
    assert len(open(tmp_path / "a" / "synth.jsonl").readlines()) == 2

    assert synthesize(str(tmp_path / "s.txt"), str(tmp_path / "b"), **{**args, "jobs": 1}) == (2, [])
    for e in entries:
        audio, rate = sf.read(str(tmp_path / "a" / e["audio"]), dtype="float32")
        assert rate == 16000 and audio.ndim == 1 and abs(len(audio) / rate - e["duration"]) < 1e-3
        assert np.sqrt(np.mean(audio ** 2)) > 0.02  # speech, not silence (normalised to -3 dB peak)
        words = len(e["text"].split())
        assert words / 4.5 < e["duration"] < words / 1.2 + 1.2, e  # 1.2-4.5 words/s, with up to 1.1 s of padding
        assert 0.85 <= e["tempo"] <= 1.15 and e["pitch_cents"] == 0
        again, _ = sf.read(str(tmp_path / "b" / e["audio"]), dtype="float32")
        assert np.array_equal(audio, again)  # same seed, same audio

    if not BUNDLED.exists():
        pytest.skip("bundled model not built")
    import asr
    from asr.metrics import ErrorCounter

    rec = asr.Recognizer.load(str(BUNDLED), lm=None, device="cpu", threads=1)
    errors = ErrorCounter()
    for e in entries:
        errors.add(e["text"], " ".join(seg.text for seg in rec.transcribe(str(tmp_path / "a" / e["audio"]))))
    assert errors.cer < 0.45, errors.cer  # measured 0.23 on these two (the bundled model reads real speech at ~0.25)
