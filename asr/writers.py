"""The transcript formats, one registry for every sink: whole documents (`asr transcribe --format`) and, for the
formats that have one, a line per result as it happens (`asr live --output`, the display, the server's messages)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass

from .results import Result


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


def _json_document(segments: list[Result]) -> str:
    doc = {"text": " ".join(s.text for s in segments),
           "segments": [{k: v for k, v in s.to_dict().items() if k != "type"} for s in segments]}
    return json.dumps(doc, indent=2) + "\n"


def _srt(segments: list[Result]) -> str:
    return "".join(f"{i}\n{_timestamp(a, ',')} --> {_timestamp(b, ',')}\n{t}\n\n"
                   for i, (a, b, t) in enumerate(_cues(segments), 1))


def _vtt(segments: list[Result]) -> str:
    return "WEBVTT\n\n" + "".join(f"{_timestamp(a, '.')} --> {_timestamp(b, '.')}\n{t}\n\n" for a, b, t in _cues(segments))


def _tsv(segments: list[Result]) -> str:  # milliseconds, as subtitle and alignment tools expect
    return "start\tend\ttext\n" + "".join(f"{round(s.start * 1000)}\t{round(s.end * 1000)}\t{s.text}\n"
                                           for s in segments)


def text_line(result: Result, timestamps: bool = False) -> str:
    stamp = f"[{clock(result.start)} - {clock(result.end)}] " if timestamps else ""
    return stamp + result.text


def json_line(result: Result, timestamps: bool = False) -> str:
    """One result as a JSON object (times are in it anyway): the server's message and `asr live`'s output."""
    return json.dumps(result.to_dict())


def clock(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    h, m = divmod(int(m), 60)
    return f"{h:d}:{m:02d}:{s:05.2f}" if h else f"{m:02d}:{s:05.2f}"


@dataclass(frozen=True)
class Format:
    name: str  # also the file extension of its documents
    document: Callable[[list[Result]], str]
    line: Callable[..., str] | None = None  # (result, timestamps) -> one line, no newline; None: documents only
    line_extensions: tuple[str, ...] = ()  # file names that get its lines (live --output)


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("txt", lambda segments: "".join(s.text + "\n" for s in segments), text_line, ("txt",)),
    Format("json", _json_document, json_line, ("json", "jsonl")),
    Format("srt", _srt),
    Format("vtt", _vtt),
    Format("tsv", _tsv),
)}


def render(segments: list[Result], fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    return FORMATS[fmt].document(segments)


def line_format(path: str) -> Format:
    """The format whose lines a file of this name gets: JSON lines for .json/.jsonl, text lines otherwise."""
    ext = os.path.splitext(path)[1].lstrip(".")
    return next((f for f in FORMATS.values() if ext in f.line_extensions), FORMATS["txt"])
