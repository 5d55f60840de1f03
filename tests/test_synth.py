import json
import shutil

import pytest
import soundfile as sf

from conftest import run_asr

pytestmark = pytest.mark.skipif(not (shutil.which("flite") and shutil.which("sox")), reason="needs flite and sox")


def test_synthetic_corpus_is_reproducible_resumable_and_in_the_training_alphabet(tmp_path):
    from training.synth import available_voices, synthesize

    sentences = tmp_path / "s.txt"
    sentences.write_text("The cat, the DOG and the bird.\ntoo short\nthe cat the dog and the bird\n"
                         "rice is often served in round bowls\nfour hours of steady work faced us\n"
                         "the box was thrown beside the parked truck\n")
    voices = available_voices(["flite-slt", "flite-rms"])
    total, errors = synthesize(str(sentences), str(tmp_path / "a"), voices, 2, seed=3, jobs=2)
    assert (total, errors) == (2, [])
    total, errors = synthesize(str(sentences), str(tmp_path / "a"), voices, 4, seed=3, jobs=2)
    assert (total, errors) == (4, [])  # the first two were kept, not redone
    entries = [json.loads(line) for line in open(tmp_path / "a" / "synth.jsonl")]
    assert len(entries) == 4
    # Normalised, deduplicated, short lines dropped: exactly four distinct sentences remain.
    assert sorted(e["text"] for e in entries) == sorted([
        "the cat the dog and the bird", "rice is often served in round bowls",
        "four hours of steady work faced us", "the box was thrown beside the parked truck"])
    assert {e["speaker"] for e in entries} == {"flite-slt", "flite-rms"}
    for e in entries:
        info = sf.info(str(tmp_path / "a" / e["audio"]))
        assert (info.samplerate, info.channels) == (16000, 1)
        assert abs(info.duration - e["duration"]) < 1e-3 and info.duration > 1.0
        assert 0.85 <= e["tempo"] <= 1.15 and abs(e["pitch_cents"]) <= 250
    synthesize(str(sentences), str(tmp_path / "b"), voices, 4, seed=3, jobs=1)
    again = [json.loads(line) for line in open(tmp_path / "b" / "synth.jsonl")]
    strip = lambda es: sorted((e["audio"], e["text"], e["tempo"], e["pitch_cents"]) for e in es)  # noqa: E731
    assert strip(again) == strip(entries)


def test_synth_command_errors_are_one_line(tmp_path):
    r = run_asr("synth", "--list-voices")
    assert r.returncode == 0 and "flite-slt\tinstalled" in r.stdout
    r = run_asr("synth", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "out"))
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "missing.txt" in r.stderr
    r = run_asr("synth", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "out"), "--voices", "nope")
    assert r.returncode == 1 and "unknown voice(s) nope" in r.stderr
    r = run_asr("synth")
    assert r.returncode == 2
