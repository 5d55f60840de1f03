"""`asr transcribe` over many files: input expansion and output names, parallel workers that survive a dead
worker and die with their parent, atomic outputs, progress, summary, and a clean stop on SIGTERM or Ctrl+C."""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import NamedTuple

from .atomic import atomic_write, remove_leftovers
from .audio import MEDIA_EXTENSIONS, AudioError, collect_warnings, duration, find_audio
from .messages import first_line, printable
from .writers import FORMATS, render


class Input(NamedTuple):
    path: str
    name: str  # where its outputs go under --output-dir, without the format's extension


def expand_inputs(items: list[str]) -> list[Input]:
    """Files as given, folders searched recursively for audio/video, globs expanded; order kept, no repeats.

    Inputs found under a folder (or a glob's literal leading folders) keep their relative path as their output
    name, so a/x.wav and b/x.wav get a/x.txt and b/x.txt; files named directly get their stem."""
    out: list[Input] = []
    for item in items:
        if item == "-":
            out.append(Input("-", "stdin"))
        elif os.path.isfile(item):
            out.append(Input(item, _stem(item)))
        elif os.path.isdir(item):
            out += [Input(p, _name_under(p, item)) for p in find_audio(item, MEDIA_EXTENSIONS)]
        elif _has_magic(item):
            base = _literal_base(item)
            out += [Input(p, _name_under(p, base)) for p in sorted(glob.glob(item, recursive=True))
                    if os.path.isfile(p)]
        else:
            out.append(Input(item, _stem(item)))  # reported as missing when transcribed
    seen: set[str] = set()  # a file reached twice is transcribed once, under the first name
    return [i for i in out if not (_identity(i.path) in seen or seen.add(_identity(i.path)))]


def _has_magic(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _identity(path: str) -> str:
    return path if path == "-" else os.path.abspath(path)  # not realpath: a symlinked alias is its own input


def _literal_base(pattern: str) -> str:
    parts = pattern.split(os.sep)[:-1]
    literal = []
    for part in parts:
        if _has_magic(part):
            break
        literal.append(part)
    return os.sep.join(literal) or (os.sep if pattern.startswith(os.sep) else os.curdir)


def _name_under(path: str, base: str) -> str:
    rel = os.path.relpath(path, base)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
        return _stem(path)
    return os.path.splitext(rel)[0]


def output_paths(item: Input | str, output_dir: str, formats: list[str]) -> dict[str, str]:
    item = _as_input(item)
    return {fmt: os.path.join(output_dir, f"{item.name}.{fmt}") for fmt in formats}


def _as_input(item: Input | str) -> Input:
    if isinstance(item, Input):
        return item
    return Input(item, "stdin" if item == "-" else _stem(item))


def collisions(inputs: list[Input]) -> list[list[str]]:
    """Groups of inputs that would write the same output files."""
    by_name: dict[str, list[str]] = {}
    for item in inputs:
        by_name.setdefault(item.name, []).append(item.path)
    return [paths for paths in by_name.values() if len(paths) > 1]


def write_atomic(path: str, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


@dataclass
class Outcome:
    path: str
    documents: dict[str, str] | None  # format -> text (when printing) else None
    audio_seconds: float
    error: str | None = None
    warnings: list[str] = field(default_factory=list)  # damage the decoder skipped (the file still transcribed)


class BatchStopped(BaseException):
    """SIGTERM or SIGINT reached the batch; a BaseException so that no per-file handler swallows it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class _Stop:
    """Where a stop request is honoured: at once, or just after the outputs being written are complete."""
    in_worker = False
    writing = False
    pending: int | None = None
    stopped = False
    guard = threading.Lock()  # held while writing, so the parent watcher thread never exits mid-write


def _stop_now(signum: int) -> None:
    if _Stop.in_worker:
        os._exit(128 + signum)
    _Stop.stopped = True
    raise BatchStopped(signum)


def _on_signal(signum, frame) -> None:
    if _Stop.stopped:
        return
    if _Stop.writing:
        _Stop.pending = signum
    else:
        _stop_now(signum)


@contextlib.contextmanager
def _writing():
    with _Stop.guard:
        _Stop.writing = True
        try:
            yield
        finally:
            _Stop.writing = False
    if _Stop.pending is not None:
        _stop_now(_Stop.pending)


_worker_recognizer = None


def _init_worker(loader) -> None:
    global _worker_recognizer
    _Stop.in_worker, _Stop.pending, _Stop.stopped = True, None, False
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the whole group; the parent decides
    signal.signal(signal.SIGTERM, _on_signal)
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    # Fallback where PR_SET_PDEATHSIG does not exist: a reparented worker has lost its parent.
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    _worker_recognizer = loader()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    with _Stop.guard:
        os._exit(1)


def transcribe_one(item: Input | str, formats: list[str], output_dir: str | None, recognizer=None) -> Outcome:
    """One input to its documents (or output files); every failure is this input's, as an Outcome."""
    item = _as_input(item)
    rec = recognizer or _worker_recognizer
    try:
        with collect_warnings() as notes:
            segments = list(rec.transcribe(item.path))
    except AudioError as e:
        return Outcome(item.path, None, 0.0, str(e))
    except Exception as e:  # a runtime failure on one file is that file's failure, not the batch's
        return Outcome(item.path, None, 0.0, f"{item.path}: {_first_line(e)}")
    audio_seconds = segments[-1].end if segments else 0.0
    documents = {fmt: render(segments, fmt) for fmt in formats}
    if output_dir:
        with _writing():
            for fmt, target in output_paths(item, output_dir, formats).items():
                try:
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    write_atomic(target, documents[fmt])
                except OSError as e:  # disk full, name too long, no permission: named, with the output
                    return Outcome(item.path, None, audio_seconds,
                                   f"{item.path}: cannot write {target}: {e.strerror or _first_line(e)}")
        documents = None
    return Outcome(item.path, documents, audio_seconds, warnings=notes)


def _first_line(e: BaseException) -> str:
    """messages.first_line with the exception's kind in front: an unexpected failure says what it was."""
    return f"{type(e).__name__}: {first_line(e)}" if str(e).strip() else type(e).__name__


def run_batch(inputs: list[Input | str], formats: list[str], output_dir: str | None, loader, jobs: int = 1,
              skip_existing: bool = False, progress: bool = True, recognizer=None, runner=None) -> int:
    """Transcribe inputs; returns the exit status (1 when any input failed, 2 when outputs would collide,
    128 + the signal when stopped by SIGTERM or SIGINT).

    loader() builds a Recognizer in each worker process; recognizer, when given, serves a serial run. runner,
    when given, replaces the local workers: runner(inputs, formats, output_dir, loader, report, note) calls
    transcribe_one somewhere for every input, passes each Outcome to report in input order, and returns the
    summary's description of its workers (cluster.RayRunner runs them on Ray)."""
    started = time.monotonic()
    inputs = [_as_input(i) for i in inputs]
    if output_dir:
        clash = collisions(inputs)
        if clash:
            groups = "; ".join(" and ".join(paths) for paths in clash[:3])
            more = f" (and {len(clash) - 3} more)" if len(clash) > 3 else ""
            print(f"asr: these inputs would write the same outputs in {output_dir}: {groups}{more}; "
                  "rename them or transcribe them separately", file=sys.stderr)
            return 2
        os.makedirs(output_dir, exist_ok=True)
    if skip_existing and output_dir:
        todo = [i for i in inputs if not all(map(os.path.exists, output_paths(i, output_dir, formats).values()))]
        if len(todo) < len(inputs):
            print(f"asr: skipping {len(inputs) - len(todo)} already transcribed", file=sys.stderr)
        inputs = todo
    durations = {i.path: _duration_or_zero(i.path) for i in inputs}
    bar = _progress(sum(durations.values()), enabled=progress and len(inputs) > 1)
    failed, audio, done = [], 0.0, 0
    printing = output_dir is None

    def report(o: Outcome) -> None:
        nonlocal audio, done
        done += 1
        for note in o.warnings:
            _write_err(bar, f"asr: warning: {note}")
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
    workers = f"{jobs} jobs"
    _Stop.in_worker, _Stop.pending, _Stop.stopped = False, None, False
    try:
        with _stop_on_signals():
            if runner is not None:
                workers = runner(inputs, formats, output_dir, loader, report, lambda m: _write_err(bar, m))
            elif jobs == 1 or any(i.path == "-" for i in inputs):
                rec = recognizer or loader()
                for item in inputs:
                    report(transcribe_one(item, formats, output_dir, rec))
            else:
                _run_parallel(inputs, formats, output_dir, loader, jobs, report, lambda m: _write_err(bar, m))
    except BatchStopped as stop:
        if bar is not None:
            bar.close()
        resume = "; run again with --skip-existing to resume" if output_dir else ""
        print(f"asr: stopped by {signal.Signals(stop.signum).name}: {done - len(failed)} of {len(inputs)} files "
              f"transcribed, {len(failed)} failed{resume}", file=sys.stderr)
        return 128 + stop.signum
    if bar is not None:
        bar.close()
    wall = time.monotonic() - started
    if len(inputs) > 1 or not printing:
        amount = f"{audio / 3600:.2f} h" if audio >= 3600 else f"{audio / 60:.1f} min"
        rtf = f"real-time factor {wall / audio:.4f}, " if audio else ""
        print(f"asr: {len(inputs) - len(failed)} transcribed, {len(failed)} failed, {amount} of audio in {wall:.1f} s "
              f"({rtf}{workers})", file=sys.stderr)
    return 1 if failed else 0


@contextlib.contextmanager
def _stop_on_signals():
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _run_parallel(inputs: list[Input], formats, output_dir, loader, jobs: int, report, note) -> None:
    """Worker processes; outcomes are reported in input order. A dead worker (killed, out of memory, crashed)
    breaks the pool: it is restarted, and the files that were in flight are retried one at a time, so a file
    that kills its worker alone is reported as failed and the others are still transcribed."""
    queue, retry = deque(enumerate(inputs)), deque()
    suspects: set[int] = set()  # in flight when a worker died: run alone from then on
    finished: dict[int, Outcome] = {}
    next_index = 0

    def finish(index: int, outcome: Outcome) -> None:
        nonlocal next_index
        finished[index] = outcome
        while next_index in finished:
            report(finished.pop(next_index))
            next_index += 1

    while queue or retry:
        pool = ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=(loader,))
        running: dict = {}
        try:
            lost = []
            while (queue or retry or running) and not lost:
                while (retry or queue) and len(running) < (
                        1 if retry or suspects.intersection(i for i, _ in running.values()) else jobs):
                    index, item = retry.popleft() if retry else queue.popleft()
                    running[pool.submit(transcribe_one, item, formats, output_dir)] = (index, item)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    index, item = running.pop(future)
                    outcome = _result(future, item)
                    if outcome is None:
                        lost.append((index, item))
                    else:
                        finish(index, outcome)
            if lost:
                pool.shutdown(wait=True)  # the dead pool fails every unfinished future; the workers are gone
                for future, (index, item) in running.items():
                    outcome = _result(future, item)
                    if outcome is None:
                        lost.append((index, item))
                    else:
                        finish(index, outcome)
                running.clear()
                for index, item in sorted(lost):
                    for target in output_paths(item, output_dir, formats).values() if output_dir else ():
                        remove_leftovers(target)
                if len(lost) == 1:
                    finish(lost[0][0], Outcome(lost[0][1].path, None, 0.0,
                                               f"{lost[0][1].path}: the worker process transcribing it died"))
                else:
                    note(f"asr: a worker process died while transcribing {', '.join(i.path for _, i in sorted(lost))}; "
                         "retrying them one at a time")
                    retry.extend(sorted(lost))
                    suspects.update(index for index, _ in lost)
        except BatchStopped:
            _abandon(pool)
            for index in sorted(finished):  # done, though waiting for an earlier file: still counted
                report(finished.pop(index))
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _result(future, item: Input) -> Outcome | None:
    """The future's outcome; None when its worker died."""
    try:
        return future.result()
    except BrokenProcessPool:
        return None
    except Exception as e:
        return Outcome(item.path, None, 0.0, f"{item.path}: {_first_line(e)}")


def _abandon(pool: ProcessPoolExecutor) -> None:
    """Stop the workers now; each finishes the outputs it is writing (never leaving a temporary file) and exits."""
    workers = list((getattr(pool, "_processes", None) or {}).values())  # the pool's own, not the caller's others
    for p in workers:
        p.terminate()
    deadline = time.monotonic() + 5
    for p in workers:
        p.join(max(0.0, deadline - time.monotonic()))
    pool.shutdown(wait=False, cancel_futures=True)


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
    text = printable(text)
    if bar is not None:
        bar.write(text, file=sys.stderr)
    else:
        print(text, file=sys.stderr)


__all__ = ["FORMATS", "Input", "expand_inputs", "run_batch"]
