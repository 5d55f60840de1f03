"""`asr prepare`: a transcript that cannot be read is one skipped utterance, not the end of the run."""

import json

from conftest import run_asr
from test_prepare import _audio


def test_a_transcript_that_is_not_utf8_is_skipped_and_reported(tmp_path):
    corpus = tmp_path / "in"
    _audio(corpus / "good.wav")
    (corpus / "good.txt").write_text("A fine take.\n", encoding="utf-8")
    _audio(corpus / "latin" / "bad.wav")
    (corpus / "latin" / "bad.txt").write_bytes("Caf\u00e9 au lait\n".encode("latin-1"))
    _audio(corpus / "last.wav")
    (corpus / "last.txt").write_text("the last one", encoding="utf-8")
    out = tmp_path / "m.jsonl"
    proc = run_asr("prepare", "folder", corpus, "-o", out)
    # Skips are warnings (like a missing transcript): exit 0, one stderr line per skipped file, the rest kept.
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.txt" in lines[0] and "not UTF-8" in lines[0], proc.stderr
    assert "2 utterances" in proc.stdout and "1 skipped" in proc.stdout
    assert sorted(json.loads(line)["text"] for line in out.read_text().splitlines()) == ["a fine take", "the last one"]


def test_one_bad_librispeech_transcript_file_skips_only_its_chapter(tmp_path):
    root = tmp_path / "LibriSpeech" / "dev"
    _audio(root / "1" / "2" / "1-2-0000.flac", fmt="FLAC")
    (root / "1" / "2" / "1-2.trans.txt").write_text("1-2-0000 HELLO WORLD\n")
    _audio(root / "3" / "4" / "3-4-0000.flac", fmt="FLAC")
    (root / "3" / "4" / "3-4.trans.txt").write_bytes(b"3-4-0000 \xff\xfe BROKEN\n")
    out = tmp_path / "m.jsonl"
    proc = run_asr("prepare", "librispeech", tmp_path / "LibriSpeech", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "3-4.trans.txt" in proc.stderr
    assert [json.loads(line)["text"] for line in out.read_text().splitlines()] == ["hello world"]
