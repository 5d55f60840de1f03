"""Transcript documents: txt, json, srt, vtt."""

from __future__ import annotations

import json

from .recognizer import Result

FORMATS = ("txt", "json", "srt", "vtt", "tsv")


def _timestamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cues(segments: list[Result], max_chars: int = 42, max_seconds: float = 6.0) -> list[tuple[float, float, str]]:
    """Split segments into subtitle cues of bounded length and duration, at word boundaries."""
    cues = []
    for seg in segments:
        words = seg.words or []
        if not words:
            cues.append((seg.start, seg.end, seg.text))
            continue
        cur = [words[0]]
        for w in words[1:]:
            text = " ".join(x.text for x in cur + [w])
            if len(text) > max_chars or w.end - cur[0].start > max_seconds:
                cues.append((cur[0].start, cur[-1].end, " ".join(x.text for x in cur)))
                cur = [w]
            else:
                cur.append(w)
        cues.append((cur[0].start, cur[-1].end, " ".join(x.text for x in cur)))
    return cues


def render(segments: list[Result], fmt: str) -> str:
    if fmt == "txt":
        return "".join(s.text + "\n" for s in segments)
    if fmt == "json":
        doc = {"text": " ".join(s.text for s in segments),
               "segments": [{k: v for k, v in s.to_dict().items() if k != "type"} for s in segments]}
        return json.dumps(doc, indent=2) + "\n"
    if fmt == "srt":
        return "".join(f"{i}\n{_timestamp(a, ',')} --> {_timestamp(b, ',')}\n{t}\n\n"
                       for i, (a, b, t) in enumerate(_cues(segments), 1))
    if fmt == "vtt":
        return "WEBVTT\n\n" + "".join(f"{_timestamp(a, '.')} --> {_timestamp(b, '.')}\n{t}\n\n"
                                      for a, b, t in _cues(segments))
    if fmt == "tsv":  # milliseconds, as subtitle and alignment tools expect
        return "start\tend\ttext\n" + "".join(f"{round(s.start * 1000)}\t{round(s.end * 1000)}\t{s.text}\n"
                                                for s in segments)
    raise ValueError(f"unknown format {fmt!r}")
