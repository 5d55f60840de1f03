"""`asr transcribe` over many files: input expansion, parallel workers, atomic outputs, progress, summary."""

from __future__ import annotations

import glob
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from .atomic import atomic_write
from .audio import MEDIA_EXTENSIONS, AudioError, duration, find_audio
from .writers import FORMATS, render

def expand_inputs(items: list[str]) -> list[str]:
    """Files as given, folders searched recursively for audio/video, globs expanded; order kept, no repeats."""
    out: list[str] = []
    for item in items:
        if item == "-" or os.path.isfile(item):
            out.append(item)
        elif os.path.isdir(item):
            out += find_audio(item, MEDIA_EXTENSIONS)
        elif any(ch in item for ch in "*?["):
            out += sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
        else:
            out.append(item)  # reported as missing when transcribed
    seen: set[str] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def output_paths(path: str, output_dir: str, formats: list[str]) -> dict[str, str]:
    stem = "stdin" if path == "-" else os.path.splitext(os.path.basename(path))[0]
    return {fmt: os.path.join(output_dir, f"{stem}.{fmt}") for fmt in formats}


def write_atomic(path: str, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


@dataclass
class Outcome:
    path: str
    documents: dict[str, str] | None  # format -> text (when printing) else None
    audio_seconds: float
    error: str | None = None


_worker_recognizer = None


def _init_worker(loader) -> None:
    global _worker_recognizer
    _worker_recognizer = loader()


def transcribe_one(path: str, formats: list[str], output_dir: str | None, recognizer=None) -> Outcome:
    rec = recognizer or _worker_recognizer
    try:
        segments = list(rec.transcribe(path))
    except AudioError as e:
        return Outcome(path, None, 0.0, str(e))
    audio_seconds = segments[-1].end if segments else 0.0
    documents = {fmt: render(segments, fmt) for fmt in formats}
    if output_dir:
        for fmt, target in output_paths(path, output_dir, formats).items():
            write_atomic(target, documents[fmt])
        documents = None
    return Outcome(path, documents, audio_seconds)


def run_batch(inputs: list[str], formats: list[str], output_dir: str | None, loader, jobs: int = 1,
              skip_existing: bool = False, progress: bool = True, recognizer=None) -> int:
    """Transcribe inputs; returns the exit status (1 when any input failed).

    loader() builds a Recognizer in each worker process; recognizer, when given, serves a serial run."""
    started = time.monotonic()
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
    if skip_existing and output_dir:
        todo = [p for p in inputs if not all(map(os.path.exists, output_paths(p, output_dir, formats).values()))]
        if len(todo) < len(inputs):
            print(f"asr: skipping {len(inputs) - len(todo)} already transcribed", file=sys.stderr)
        inputs = todo
    durations = {p: _duration_or_zero(p) for p in inputs}
    bar = _progress(sum(durations.values()), enabled=progress and len(inputs) > 1)
    failed, audio = [], 0.0
    printing = output_dir is None

    def report(o: Outcome) -> None:
        nonlocal audio
        if o.error:
            failed.append(o.path)
            _write_err(bar, f"asr: {o.error}")
        else:
            audio += durations.get(o.path) or o.audio_seconds
            if printing:
                for fmt, doc in o.documents.items():
                    if len(inputs) > 1 or len(formats) > 1:
                        _write_out(bar, f"==> {o.path} ({fmt}) <==\n" if len(formats) > 1 else f"==> {o.path} <==\n")
                    _write_out(bar, doc)
        if bar is not None:
            bar.update(durations.get(o.path, 0.0))

    jobs = max(1, min(jobs, len(inputs)))
    if jobs == 1 or "-" in inputs:
        rec = recognizer or loader()
        for p in inputs:
            report(transcribe_one(p, formats, output_dir, rec))
    else:
        with ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=(loader,)) as pool:
            for outcome in pool.map(transcribe_one, inputs, [formats] * len(inputs), [output_dir] * len(inputs)):
                report(outcome)
    if bar is not None:
        bar.close()
    wall = time.monotonic() - started
    if len(inputs) > 1 or not printing:
        amount = f"{audio / 3600:.2f} h" if audio >= 3600 else f"{audio / 60:.1f} min"
        rtf = f"real-time factor {wall / audio:.4f}, " if audio else ""
        print(f"asr: {len(inputs) - len(failed)} transcribed, {len(failed)} failed, {amount} of audio in {wall:.1f} s "
              f"({rtf}{jobs} jobs)", file=sys.stderr)
    return 1 if failed else 0


def _duration_or_zero(path: str) -> float:
    if path == "-":
        return 0.0
    try:
        return duration(path)
    except AudioError:
        return 0.0


def _progress(total_seconds: float, enabled: bool):
    if not enabled or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=round(total_seconds, 1), unit="s audio", dynamic_ncols=True, file=sys.stderr)


def _write_out(bar, text: str) -> None:
    if bar is not None:
        bar.clear()
    sys.stdout.write(text)
    sys.stdout.flush()
    if bar is not None:
        bar.refresh()


def _write_err(bar, text: str) -> None:
    if bar is not None:
        bar.write(text, file=sys.stderr)
    else:
        print(text, file=sys.stderr)


__all__ = ["FORMATS", "expand_inputs", "run_batch"]
