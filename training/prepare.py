"""Corpus importers: each a pure function `prepare_<corpus>(source) -> (entries, skipped)`.

An entry is a manifest line: {"audio", "duration", "text", "speaker"?}. Text is normalised to the
model's vocabulary; an utterance with characters the vocabulary cannot express (digits, letters with
accents, ...) is skipped and reported, never silently changed into something else.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from pathlib import Path

from asr.atomic import atomic_write
from asr.audio import AudioError, duration, find_audio
from asr.vocab import normalize_text


def _entry(audio: Path, text: str, speaker: str | None, skipped: list[str]) -> dict | None:
    norm = normalize_text(text, strict=True)
    if not norm:
        skipped.append(f"{audio}: transcript has characters outside the vocabulary: {text.strip()!r}")
        return None
    try:
        dur = duration(str(audio))
    except AudioError as e:
        skipped.append(str(e))
        return None
    entry = {"audio": str(audio.resolve()), "duration": round(dur, 3), "text": norm}
    if speaker:
        entry["speaker"] = speaker
    return entry


def _read_text(path: Path, skipped: list[str]) -> str | None:
    """A transcript file's text, or None with the reason added to skipped: one unreadable file (not UTF-8,
    no permission) is reported and left out, it does not abort the corpus."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        skipped.append(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})")
    except OSError as e:
        skipped.append(f"{path}: cannot be read ({e.strerror or e})")
    return None


def _collect(items, skipped):
    return [e for e in (_entry(a, t, s, skipped) for a, t, s in items) if e is not None], skipped


def prepare_librispeech(source: str) -> tuple[list[dict], list[str]]:
    """LibriSpeech layout: SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt with `ID TEXT` lines beside ID.flac."""
    items, skipped = [], []
    for trans in sorted(Path(source).rglob("*.trans.txt")):
        for line in (_read_text(trans, skipped) or "").splitlines():
            if line.strip():
                uid, _, text = line.strip().partition(" ")
                items.append((trans.parent / f"{uid}.flac", text, uid.split("-")[0]))
    return _collect(items, skipped)


def prepare_ljspeech(source: str) -> tuple[list[dict], list[str]]:
    """LJSpeech layout: metadata.csv (`id|text|normalised text`) and wavs/ID.wav."""
    root = Path(source)
    items = []
    with open(root / "metadata.csv", encoding="utf-8", newline="") as f:
        for row in csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE):
            if row:
                text = row[2] if len(row) > 2 and row[2] else row[1]
                items.append((root / "wavs" / f"{row[0]}.wav", text, "LJ"))
    return _collect(items, [])


def prepare_commonvoice(source: str) -> tuple[list[dict], list[str]]:
    """Common Voice layout: a .tsv (client_id, path, sentence, ...) and clips/. SOURCE: the .tsv, or the
    folder (then validated.tsv)."""
    path = Path(source)
    tsv = path if path.is_file() else path / "validated.tsv"
    clips = tsv.parent / "clips"
    items = []
    with open(tsv, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            items.append((clips / row["path"], row["sentence"], row.get("client_id")))
    return _collect(items, [])


def prepare_kaldi(source: str) -> tuple[list[dict], list[str]]:
    """Kaldi data folder: wav.scp (`utt path`), text (`utt words`), optional utt2spk. Piped commands and
    segments files are reported as unsupported."""
    root = Path(source)
    skipped: list[str] = []
    if (root / "segments").exists():
        skipped.append(f"{root / 'segments'}: segments files are not supported; whole recordings are used")
    wavs = {}
    for line in (root / "wav.scp").read_text(encoding="utf-8").splitlines():
        uid, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        if rest.endswith("|"):
            skipped.append(f"{uid}: piped wav.scp entries are not supported ({rest})")
        elif uid:
            wavs[uid] = Path(rest) if os.path.isabs(rest) else root / rest
    speakers = {}
    if (root / "utt2spk").exists():
        speakers = dict(line.split(maxsplit=1) for line in (root / "utt2spk").read_text().splitlines() if line.strip())
    items = []
    for line in (root / "text").read_text(encoding="utf-8").splitlines():
        uid, _, text = line.strip().partition(" ")
        if uid in wavs:
            items.append((wavs[uid], text, speakers.get(uid, "").strip() or None))
    return _collect(items, skipped)


def prepare_folder(source: str) -> tuple[list[dict], list[str]]:
    """Any folder (recursive) of audio files, each with a same-named .txt transcript."""
    items, skipped = [], []
    for audio in map(Path, find_audio(source)):
        txt = audio.with_suffix(".txt")
        if txt.exists():
            text = _read_text(txt, skipped)
            if text is not None:
                items.append((audio, text, None))
        else:
            skipped.append(f"{audio}: no transcript {txt.name}")
    return _collect(items, skipped)


IMPORTERS: dict[str, Callable[[str], tuple[list[dict], list[str]]]] = {
    "librispeech": prepare_librispeech, "ljspeech": prepare_ljspeech, "commonvoice": prepare_commonvoice,
    "kaldi": prepare_kaldi, "folder": prepare_folder,
}


def write_manifest(entries: list[dict], path: str) -> None:
    with atomic_write(path, "w", encoding="utf-8") as f:
        for e in entries:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
