import json

import pytest

from asr.results import Result, Word
from asr.writers import FORMATS, line_format, render


def _segments():
    words = [Word(w, 1.0 + i * 0.5, 1.4 + i * 0.5, 0.9) for i, w in enumerate("one two three four five six".split())]
    long = [Word("word", 10 + i * 0.4, 10.3 + i * 0.4, 0.8) for i in range(30)]
    return [Result(True, "one two three four five six", 1.0, 3.9, words),
            Result(True, " ".join(w.text for w in long), 10.0, long[-1].end, long)]


def test_json_document():
    doc = json.loads(render(_segments(), "json"))
    assert doc["text"].startswith("one two three")
    seg = doc["segments"][0]
    assert seg["start"] == 1.0 and seg["end"] == 3.9
    assert seg["words"][1] == {"text": "two", "start": 1.5, "end": 1.9, "confidence": 0.9}


def test_srt_and_vtt_cues_are_bounded():
    srt = render(_segments(), "srt")
    assert srt.startswith("1\n00:00:01,000 --> 00:00:03,900\none two three four five six\n\n")
    cues = [c for c in srt.strip().split("\n\n")]
    assert len(cues) > 3  # the long segment is split
    for cue in cues:
        text = cue.split("\n")[2]
        assert len(text) <= 42
    vtt = render(_segments(), "vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:01.000 --> 00:00:03.900\n")


def test_txt_is_one_line_per_segment():
    assert render(_segments(), "txt").count("\n") == 2


def test_one_registry_of_formats_for_every_sink(tmp_path, capsys):
    """The CLI offers exactly the registry's formats; live --output and the server write its lines."""
    from asr.cli import build_parser
    from asr.live import FinalsFile

    assert set(FORMATS) == {"txt", "json", "srt", "vtt", "tsv"}
    for name in [*FORMATS, "all"]:
        assert build_parser().parse_args(["transcribe", "x.wav", "--format", name]).format == name
    with pytest.raises(SystemExit):
        build_parser().parse_args(["transcribe", "x.wav", "--format", "doc"])
    assert "'txt', 'json', 'srt', 'vtt', 'tsv', 'all'" in capsys.readouterr().err
    assert all(render(_segments(), name) == f.document(_segments()) for name, f in FORMATS.items())
    with pytest.raises(ValueError, match="unknown format"):
        render(_segments(), "doc")
    final = _segments()[0]
    for name, fmt, want in [("a.jsonl", "json", json.dumps(final.to_dict())), ("b.json", "json", None),
                            ("c.txt", "txt", "[00:01.00 - 00:03.90] one two three four five six"),
                            ("d.srt", "txt", None)]:
        assert line_format(name).name == fmt
        out = FinalsFile(str(tmp_path / name), timestamps=True)
        out.write(final)
        out.close()
        line = (tmp_path / name).read_text()
        assert line.endswith("\n") and line.count("\n") == 1
        if want is not None:
            assert line == want + "\n"
    assert Result.from_dict(json.loads(FORMATS["json"].line(final))) == final
