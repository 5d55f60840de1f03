import json

import numpy as np
import soundfile as sf

from conftest import run_asr
from asr.vocab import normalize_text
from training.prepare import prepare_commonvoice, prepare_folder, prepare_kaldi, prepare_librispeech, prepare_ljspeech


def _audio(path, seconds=0.5, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.zeros(int(16000 * seconds), np.float32), 16000, format=fmt)
    return path


def test_normalisation_keeps_words_and_refuses_what_it_cannot_spell():
    assert normalize_text("Mr. Smith's  dog—barked, \"loudly\"!", strict=True) == "mr smith's dog barked loudly"
    assert normalize_text("'Twas the night", strict=True) == "twas the night"
    assert normalize_text("room 101", strict=True) is None
    assert normalize_text("café", strict=True) is None
    # Evaluation compares with the same function, lenient: it never refuses a text.
    assert normalize_text("'Twas room 101, café") == "'twas room caf"


def test_librispeech(tmp_path):
    d = tmp_path / "LibriSpeech" / "train" / "19" / "198"
    _audio(d / "19-198-0000.flac", 1.25)
    _audio(d / "19-198-0001.flac")
    (d / "19-198.trans.txt").write_text("19-198-0000 NORTHANGER ABBEY\n19-198-0001 CHAPTER 1\n")
    entries, skipped = prepare_librispeech(str(tmp_path / "LibriSpeech"))
    assert entries == [{"audio": str((d / "19-198-0000.flac").resolve()), "duration": 1.25,
                        "text": "northanger abbey", "speaker": "19"}]
    assert len(skipped) == 1 and "19-198-0001" in skipped[0]


def test_ljspeech(tmp_path):
    _audio(tmp_path / "wavs" / "LJ001-0001.wav")
    _audio(tmp_path / "wavs" / "LJ001-0002.wav")
    (tmp_path / "metadata.csv").write_text("LJ001-0001|Printing, in 1450|Printing, in fourteen fifty\n"
                                           "LJ001-0002|In being comparatively modern.|\n")
    entries, skipped = prepare_ljspeech(str(tmp_path))
    assert [e["text"] for e in entries] == ["printing in fourteen fifty", "in being comparatively modern"]
    assert not skipped


def test_commonvoice(tmp_path):
    _audio(tmp_path / "clips" / "a.mp3", fmt="MP3")
    _audio(tmp_path / "clips" / "b.mp3", fmt="MP3")
    (tmp_path / "validated.tsv").write_text("client_id\tpath\tsentence\tup_votes\nc1\ta.mp3\tHello there.\t2\n"
                                            "c2\tb.mp3\tÜber alles\t1\n")
    entries, skipped = prepare_commonvoice(str(tmp_path))
    assert [(e["text"], e["speaker"]) for e in entries] == [("hello there", "c1")]
    assert len(skipped) == 1


def test_kaldi(tmp_path):
    _audio(tmp_path / "audio" / "u1.wav")
    (tmp_path / "wav.scp").write_text(f"u1 {tmp_path / 'audio' / 'u1.wav'}\nu2 sox x.wav -t wav - |\n")
    (tmp_path / "text").write_text("u1 HELLO WORLD\nu2 PIPED\n")
    (tmp_path / "utt2spk").write_text("u1 spk7\nu2 spk7\n")
    entries, skipped = prepare_kaldi(str(tmp_path))
    assert [(e["text"], e["speaker"]) for e in entries] == [("hello world", "spk7")]
    assert any("piped" in s for s in skipped)


def test_folder_and_cli(tmp_path):
    _audio(tmp_path / "in" / "one.wav")
    (tmp_path / "in" / "one.txt").write_text("First take.\n")
    _audio(tmp_path / "in" / "sub" / "two.flac")
    (tmp_path / "in" / "sub" / "two.txt").write_text("second")
    _audio(tmp_path / "in" / "three.wav")
    entries, skipped = prepare_folder(str(tmp_path / "in"))
    assert sorted(e["text"] for e in entries) == ["first take", "second"] and len(skipped) == 1
    out = tmp_path / "m.jsonl"
    r = run_asr("prepare", "folder", tmp_path / "in", "-o", out)
    assert r.returncode == 0 and "2 utterances" in r.stdout and "three.wav" in r.stderr
    assert len([json.loads(line) for line in out.read_text().splitlines()]) == 2
    r = run_asr("prepare", "ljspeech", tmp_path / "nothing", "-o", out)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
