#!/usr/bin/env python3
"""Hostile-input probe: what a careless script or an attacker sends to the real `asr` command and server.

Runs well over a hundred cases against `.venv/bin/asr` subprocesses (transcribe, eval, live, devices, info,
serve, client, lm build, prepare, export, train) and against a real `asr serve` on loopback (the websockets
client, raw sockets with hand-made WebSocket frames, plain HTTP). Every case has its own time limit and the
whole run a budget; progress goes to stderr, a table (or --json) to stdout, then `N cases, M pass`.

A plain script, not a pytest test: the limits and guarantees it checks are in README.md ("Limits and
guarantees"); each case states its expectation in its `expect` text. Test data (1-3 s of the bundled sample,
hand-made headers, damaged files) is generated in a temporary folder and removed at the end (--keep keeps it).

    .venv/bin/python scripts/probe_bad_inputs.py              # everything, table on stdout
    .venv/bin/python scripts/probe_bad_inputs.py --json       # one JSON object
    .venv/bin/python scripts/probe_bad_inputs.py --only serve # cases whose group or name contains "serve"

Exit status: 0 when every case that ran passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asr.recognizer import default_lm_path  # noqa: E402

ASR = ROOT / ".venv" / "bin" / "asr"
MODEL = ROOT / "assets" / "en-lstm-ctc.onnx"
SAMPLE = ROOT / "assets" / "samples" / "harvard-slt.wav"
BUNDLED_NPZ = Path(default_lm_path())  # the book LM, when scripts/build_lm.sh has built it
TRACEBACK = "Traceback (most recent call last)"
NOBODY = 65534


def rnd(n: int) -> bytes:
    """n 'random' bytes, the same on every run, so that every case is reproducible."""
    return random.Random(n).randbytes(n)


@dataclass
class Row:
    case: str
    group: str
    expect: str
    got: str = ""
    one_line: bool | None = None  # errors on one line each, no traceback (server: error replies short, one line)
    kept: bool | None = None  # outputs already written kept / the server stayed healthy; None: not applicable
    result: str = "FAIL"  # PASS, FAIL or SKIP
    note: str = ""
    seconds: float = 0.0


@dataclass
class Case:
    group: str
    name: str
    expect: str
    fn: Callable[[float], Row]  # called with the time it may take; returns the row (case/group/expect filled in)
    timeout: float = 60.0


CASES: list[Case] = []


def case(group: str, name: str, expect: str, timeout: float = 60.0):
    def register(fn):
        CASES.append(Case(group, name, expect, fn, timeout))
        return fn
    return register


# ---- running the command -----------------------------------------------------------------------------------------
@dataclass
class Proc:
    rc: int | None  # None: killed at the time limit
    out: str
    err: str
    seconds: float

    @property
    def lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def asr(*args, timeout: float = 60, stdin: bytes | None = b"", env: dict | None = None, cwd: Path | None = None,
        as_nobody: bool = False) -> Proc:
    """One `asr` subprocess at low priority in its own session; killed with its workers at the time limit."""
    cmd = [str(ASR), *map(str, args)]
    if as_nobody:  # (setpriv must come after nice: the other way round nobody cannot exec the venv's python)
        cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd]
    cmd = ["nice", "-n", "10", *cmd]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, cwd=cwd,
                         start_new_session=True)
    try:
        out, err = p.communicate(stdin, timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        _kill_group(p.pid)
        out, err = p.communicate()
        rc = None
    return Proc(rc, out.decode(errors="replace"), err.decode(errors="replace"), time.monotonic() - t0)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def clean(p: Proc, max_lines: int = 1, prefixes: tuple = ("asr",)) -> bool:
    """No traceback, at most max_lines lines on stderr, each from asr itself (starts with "asr")."""
    return (TRACEBACK not in p.err and len(p.lines) <= max_lines
            and all(line.startswith(prefixes) for line in p.lines))


def got_of(p: Proc) -> str:
    return f"timeout {p.seconds:.0f}s" if p.rc is None else f"exit {p.rc}"


def first_line(p: Proc) -> str:
    if TRACEBACK in p.err:
        tail = [line for line in p.lines if not line.startswith(" ")]
        return "traceback: " + (tail[-1] if tail else "")
    return p.lines[0] if p.lines else (p.out.strip().splitlines() or [""])[0]


def cli_row(p: Proc, rc, max_lines: int = 1, mention: str | None = None, kept: bool | None = None,
            extra_ok: bool = True, note: str = "", prefixes: tuple = ("asr",)) -> Row:
    """rc: an int or a tuple of ints the command may exit with."""
    allowed = rc if isinstance(rc, tuple) else (rc,)
    one = clean(p, max_lines, prefixes)
    ok = p.rc in allowed and one and extra_ok and kept is not False
    notes = []
    if mention is not None and mention not in p.err:
        ok = False
        notes.append(f"stderr does not name {mention!r}")
    if note:
        notes.append(note)
    notes.append(first_line(p)[:160])
    return Row("", "", "", got_of(p), one, kept, "PASS" if ok else "FAIL", "; ".join(n for n in notes if n),
               p.seconds)


def simple(group: str, name: str, args: list, rc, expect: str | None = None, max_lines: int = 1,
           mention: str | None = None, timeout: float = 60, stdin: bytes | None = b"", env: dict | None = None,
           as_nobody: bool = False) -> None:
    """A case that only needs an exit status and a clean stderr."""
    allowed = rc if isinstance(rc, tuple) else (rc,)
    text = expect or ("exit " + "/".join(map(str, allowed)) + (", one line" if 0 not in allowed else ", no traceback"))

    def fn(limit):
        return cli_row(asr(*[a() if callable(a) else a for a in args], timeout=limit, stdin=stdin, env=env,
                           as_nobody=as_nobody), rc, max_lines, mention)
    CASES.append(Case(group, name, text, fn, timeout))


# ---- test data ---------------------------------------------------------------------------------------------------
class Data:
    """Everything the cases read, generated once in a temporary folder."""

    def __init__(self, root: Path):
        self.root = root
        root.chmod(0o755)  # the permission cases run as nobody
        x, self.sr = sf.read(str(SAMPLE), dtype="float32")
        self.speech = x[: 3 * self.sr]
        self.good = self.wav("good.wav", self.speech)
        self.short = self.wav("short.wav", self.speech[: self.sr])
        self.flac = self.path("good.flac")
        sf.write(str(self.flac), self.speech, self.sr, subtype="PCM_16")

    def path(self, name: str) -> Path:
        p = self.root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def wav(self, name: str, samples, rate: int | None = None, subtype: str = "PCM_16") -> Path:
        p = self.path(name)
        sf.write(str(p), samples, rate or self.sr, subtype=subtype)
        return p

    def bytes(self, name: str, data: bytes) -> Path:
        p = self.path(name)
        p.write_bytes(data)
        return p

    def text(self, name: str, text: str) -> Path:
        p = self.path(name)
        p.write_text(text, encoding="utf-8")
        return p

    def folder(self, name: str) -> Path:
        p = self.root / name
        p.mkdir(parents=True, exist_ok=True)
        p.chmod(0o777)
        return p

    def manifest(self, name: str, lines: list) -> Path:
        return self.text(name, "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))

    def pcm16(self, seconds: float = 1.0, rate: int = 16000) -> bytes:
        x = self.speech[: int(seconds * self.sr)]
        if rate != self.sr:
            x = np.interp(np.arange(int(len(x) * rate / self.sr)) * self.sr / rate, np.arange(len(x)), x)
        return np.clip(np.rint(x * 32767), -32768, 32767).astype("<i2").tobytes()


def wav_header(data: bytes, rate: int, channels: int, bits: int = 16, fmt: int = 1, data_size: int | None = None,
               riff_size: int | None = None, block: int | None = None) -> bytes:
    """A RIFF/WAVE file whose header says whatever it is told to, true or not."""
    block = channels * bits // 8 if block is None else block
    fmt_chunk = struct.pack("<4sIHHIIHH", b"fmt ", 16, fmt, channels & 0xFFFF, rate & 0xFFFFFFFF,
                            (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits)
    size = len(data) if data_size is None else data_size
    body = b"WAVE" + fmt_chunk + struct.pack("<4sI", b"data", size & 0xFFFFFFFF) + data
    return struct.pack("<4sI", b"RIFF", (len(body) if riff_size is None else riff_size) & 0xFFFFFFFF) + body


D: Data  # set in main()


def lazy(fn: Callable[[], object]) -> Callable[[], str]:
    """An argument computed when the case runs (the data folder does not exist when cases are declared)."""
    return lambda: str(fn())


def outputs(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink())


# ==== options: refused when parsed, one line, exit 2 =============================================================
for _name, _args in [
    ("no command", []), ("unknown command", ["bogus"]), ("transcribe without files", ["transcribe"]),
    ("--beam nan", ["transcribe", "--beam", "nan", "x.wav"]), ("--beam 1e9", ["transcribe", "--beam", "1000000000", "x.wav"]),
    ("--beam -1", ["transcribe", "--beam", "-1", "x.wav"]), ("--jobs 257", ["transcribe", "--jobs", "257", "x.wav"]),
    ("--jobs -1", ["transcribe", "--jobs", "-1", "x.wav"]), ("--threads -1", ["transcribe", "--threads", "-1", "x.wav"]),
    ("--max-segment nan", ["transcribe", "--max-segment", "nan", "x.wav"]),
    ("--max-segment inf", ["transcribe", "--max-segment", "inf", "x.wav"]),
    ("--max-segment -1", ["transcribe", "--max-segment", "-1", "x.wav"]),
    ("--max-segment 0", ["transcribe", "--max-segment", "0", "x.wav"]),
    ("--silence-after-speech 1e999", ["transcribe", "--silence-after-speech", "1e999", "x.wav"]),
    ("--lm-weight -1", ["transcribe", "--lm-weight", "-1", "x.wav"]),
    ("--word-bonus nan", ["transcribe", "--word-bonus", "nan", "x.wav"]),
    ("--token-beam 0", ["transcribe", "--token-beam", "0", "x.wav"]),
    ("--format xml", ["transcribe", "--format", "xml", "x.wav"]),
    ("--device tpu", ["transcribe", "--device", "tpu", "x.wav"]),
    ("serve --port 70000", ["serve", "--port", "70000"]), ("serve --port -1", ["serve", "--port", "-1"]),
    ("serve --max-clients 0", ["serve", "--max-clients", "0"]),
    ("serve --max-message-bytes 10", ["serve", "--max-message-bytes", "10"]),
    ("serve --idle-timeout 0", ["serve", "--idle-timeout", "0"]),
    ("serve --idle-timeout nan", ["serve", "--idle-timeout", "nan"]),
    ("live --duration -1", ["live", "--duration", "-1"]), ("live --duration nan", ["live", "--duration", "nan"]),
    ("live --max-queue 0", ["live", "--max-queue", "0"]),
    ("client --duration inf", ["client", "--duration", "inf", "x.wav"]),
    ("client --realtime --fast", ["client", "--realtime", "--fast", "x.wav"]),
    ("lm build --order 1", ["lm", "build", "x.txt", "-o", "x.arpa", "--order", "1"]),
    ("lm build --min-count 0", ["lm", "build", "x.txt", "-o", "x.arpa", "--min-count", "0"]),
    ("lm build without -o", ["lm", "build", "x.txt"]),
    ("prepare unknown layout", ["prepare", "nosuch", "x", "-o", "x.jsonl"]),
    ("export --chunk-steps 0", ["export", "x.pt", "-o", "x.onnx", "--chunk-steps", "0"]),
    ("train --epochs -1", ["train", "--train", "a", "--dev", "b", "--out", "c", "--epochs", "-1"]),
]:
    simple("options", _name, _args, 2, timeout=30)


# ==== transcribe: inputs =========================================================================================
def tr(*args, timeout=60, **kw) -> Proc:
    return asr("transcribe", "--no-lm", "--jobs", "1", *args, timeout=timeout, **kw)


def tr_case(name: str, make: Callable[[], object], rc, expect: str | None = None, max_lines: int = 1,
            mention: Callable[[], str] | str | None = None, timeout: float = 60, extra: tuple = ()):
    allowed = rc if isinstance(rc, tuple) else (rc,)
    text = expect or ("exit " + "/".join(map(str, allowed)) + (", one line naming it" if 0 not in allowed else ", no traceback"))

    def fn(limit):
        target = make()
        m = mention() if callable(mention) else mention
        return cli_row(tr(*extra, str(target), timeout=limit), rc, max_lines, m)
    CASES.append(Case("transcribe", name, text, fn, timeout))


tr_case("sanity: 3 s WAV", lambda: D.good, 0, "exit 0, text on stdout", max_lines=0)
tr_case("missing file", lambda: D.root / "missing.wav", 1, mention="missing.wav")
tr_case("0-byte .wav", lambda: D.bytes("empty.wav", b""), 1, mention="empty.wav")
tr_case("directory named x.wav (empty)", lambda: D.folder("dir.wav"), 1)
tr_case("random bytes .wav", lambda: D.bytes("rand.wav", rnd(20000)), 1, mention="rand.wav")
tr_case("random bytes .mp3", lambda: D.bytes("rand.mp3", rnd(20000)), 1, mention="rand.mp3")
tr_case("random bytes .m4a (PyAV)", lambda: D.bytes("rand.m4a", rnd(20000)), 1, mention="rand.m4a")
tr_case("random bytes .mkv", lambda: D.bytes("rand.mkv", rnd(20000)), 1, mention="rand.mkv")
tr_case("text file named .wav", lambda: D.text("text.wav", "hello world\n" * 100), 1, mention="text.wav")
tr_case("JSON named .flac", lambda: D.text("x.flac", '{"a": 1}'), 1, mention="x.flac")
tr_case("random bytes .flac", lambda: D.bytes("rand.flac", rnd(20000)), 1, mention="rand.flac")
tr_case("WAV with a LIST chunk claiming 4 GB before 'data'", lambda: D.bytes("list4g.wav", _list_chunk_wav()), (0, 1),
        "exit 0/1 at once, no traceback", timeout=40)
tr_case("WAV header only, 0 frames", lambda: D.bytes("hdr.wav", wav_header(b"", 16000, 1)), (0, 1),
        "exit 0 (nothing to say) or 1, no traceback")
tr_case("WAV header claiming 2^32 frames", lambda: D.bytes(
    "huge-claim.wav", wav_header(D.pcm16(1.0), 16000, 1, data_size=0xFFFFFFFF, riff_size=0xFFFFFFFF)), (0, 1),
    "exit 0/1 at once (reads what is there), no traceback", max_lines=1, timeout=40)
tr_case("WAV header claiming 65535 channels", lambda: D.bytes(
    "ch65535.wav", wav_header(rnd(4096), 16000, 65535)), (0, 1), "exit 0/1, no traceback, no hang", timeout=40)
tr_case("WAV, 255 channels, 0.5 s", lambda: D.wav("ch255.wav", np.tile(D.speech[: D.sr // 2, None], (1, 255))),
        0, "exit 0 (mixed to mono)", max_lines=0)
tr_case("WAV header rate 1 Hz", lambda: D.bytes("rate1.wav", wav_header(D.pcm16(0.5), 1, 1)), 1,
        mention="rate1.wav")
tr_case("WAV header rate 0 Hz", lambda: D.bytes("rate0.wav", wav_header(D.pcm16(0.5), 0, 1)), 1,
        mention="rate0.wav")
tr_case("WAV header rate 2^32-1 Hz", lambda: D.bytes("ratemax.wav", wav_header(D.pcm16(0.5), 0xFFFFFFFF, 1)), 1,
        mention="ratemax.wav")
tr_case("WAV at 3999 Hz (below 4000)", lambda: D.wav("r3999.wav", D.speech[:4000], 3999), 1, mention="r3999.wav")
tr_case("WAV at 4000 Hz (boundary)", lambda: D.wav("r4000.wav", D.speech[:8000], 4000), 0, max_lines=0)
tr_case("WAV at 384 kHz, 0.5 s", lambda: D.wav("r384k.wav", np.repeat(D.speech[:8000], 24), 384000), 0, max_lines=0)
tr_case("WAV header 0 bits per sample", lambda: D.bytes("bits0.wav", wav_header(rnd(2000), 16000, 1, bits=0)),
        1, mention="bits0.wav")
tr_case("WAV header block align 0", lambda: D.bytes("block0.wav", wav_header(D.pcm16(0.5), 16000, 1, block=0)),
        (0, 1), "exit 0/1, no traceback")
tr_case("WAV format tag 0x55 (MP3) with garbage", lambda: D.bytes(
    "tag55.wav", wav_header(rnd(4000), 16000, 1, fmt=0x55)), 1, mention="tag55.wav")
tr_case("float WAV with NaN", lambda: D.wav("nan.wav", np.where(np.arange(D.sr) == 8000, np.nan, D.speech[:D.sr]),
                                           subtype="FLOAT"), 1, "exit 1, one line naming the file", mention="nan.wav")
tr_case("float WAV with +inf", lambda: D.wav("inf.wav", np.where(np.arange(D.sr) == 100, np.inf, D.speech[:D.sr]),
                                            subtype="FLOAT"), 1, mention="inf.wav")
tr_case("float WAV, samples 1e30", lambda: D.wav("big.wav", D.speech[:D.sr] * 1e30, subtype="FLOAT"), (0, 1),
        "exit 0/1, no traceback")
tr_case("1 sample", lambda: D.wav("one.wav", D.speech[:1]), 0, max_lines=0)
tr_case("3 s of digital silence", lambda: D.wav("zeros.wav", np.zeros(3 * D.sr)), 0, max_lines=0)
tr_case("full-scale square wave", lambda: D.wav("square.wav", np.sign(np.sin(np.arange(2 * D.sr) / 3.0))), 0,
        max_lines=0)


def _list_chunk_wav() -> bytes:
    """A WAV whose LIST chunk before 'data' claims 4 GB: a reader that trusts it seeks past the end."""
    good = wav_header(D.pcm16(1.0), 16000, 1)
    at = good.index(b"data")
    return good[:at] + struct.pack("<4sI", b"LIST", 0xFFFFFFF0) + b"INFO" + good[at:]


def _cut(src: Path, name: str, fraction: float) -> Path:
    data = src.read_bytes()
    return D.bytes(name, data[: int(len(data) * fraction)])


def _ffmpeg(name: str, *opts: str) -> Path:
    out = D.path(name)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(D.good), *opts, str(out)], check=True,
                   timeout=30)
    return out


def _damaged_flac() -> Path:
    data = bytearray(D.flac.read_bytes())
    mid = len(data) // 2
    data[mid: mid + 2000] = rnd(2000)
    return D.bytes("damaged.flac", bytes(data))


tr_case("FLAC cut at 60 %", lambda: _cut(D.flac, "cut.flac", 0.6), 0,
        "exit 0, text, one 'asr: warning:' line naming it", mention="cut.flac")
tr_case("FLAC with 2 KB of garbage in the middle", _damaged_flac, (0, 1), "exit 0 (warning) or 1, one line")
tr_case("WAV cut at 50 % (header says more)", lambda: _cut(D.good, "cut.wav", 0.5), 0,
        "exit 0, at most one warning line")
tr_case("WAV cut inside its header", lambda: _cut(D.good, "cuthdr.wav", 0.0003), 1, mention="cuthdr.wav")
if shutil.which("ffmpeg"):
    tr_case("M4A cut at 50 % (PyAV)", lambda: _cut(_ffmpeg("full.m4a", "-c:a", "aac"), "cut.m4a", 0.5), (0, 1),
            "exit 0 (warning) or 1, one line", timeout=60)
    tr_case("MP3 cut at 50 %", lambda: _cut(_ffmpeg("full.mp3", "-c:a", "libmp3lame"), "cut.mp3", 0.5), (0, 1),
            "exit 0 (warning) or 1, one line")
    tr_case("video without an audio stream", lambda: subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=5:duration=1",
         str(D.path("noaudio.mkv"))], check=True, timeout=30) and D.path("noaudio.mkv"), 1, mention="noaudio.mkv")
tr_case("unicode file name", lambda: D.wav("späß 日本語 ✓.wav", D.speech[: D.sr]), 0, max_lines=0)
tr_case("file name with a newline (good audio)", lambda: D.wav("new\nline.wav", D.speech[: D.sr]), 0, max_lines=0)
tr_case("file name with a newline (bad audio)", lambda: D.bytes("bad\nname.wav", b"garbage"), 1,
        "exit 1, the error on ONE line (name escaped)")
@case("transcribe", "file name with an ANSI escape (bad audio)", "exit 1, one line, no raw ESC on stderr")
def _(limit):
    p = tr(D.bytes("\x1b[2Jclear.wav", b"garbage"), timeout=limit)
    raw = "\x1b" in p.err
    return cli_row(p, 1, extra_ok=not raw, note="the name's raw ESC reaches the terminal" if raw else "")


def _fifo() -> Path:
    p = D.root / "fifo.wav"
    if not p.exists():
        os.mkfifo(p)
    return p


def _link(name: str, target: str) -> Path:
    p = D.root / name
    if not p.is_symlink():
        os.symlink(target, p)
    return p


tr_case("a FIFO (nobody writes)", _fifo, 1, "exit 1 at once, one line (no hang)", mention="fifo.wav", timeout=30)
tr_case("/dev/zero", lambda: "/dev/zero", 1, "exit 1 at once, one line (no hang)", mention="/dev/zero", timeout=30)
tr_case("/dev/null", lambda: "/dev/null", 1, mention="/dev/null", timeout=30)
tr_case("symlink loop", lambda: (_link("loop-a.wav", "loop-b.wav"), _link("loop-b.wav", "loop-a.wav"))[0], 1,
        mention="loop-a.wav")
tr_case("broken symlink", lambda: _link("broken.wav", "does-not-exist.wav"), 1, mention="broken.wav")


def _dir_link_loop() -> Path:
    d = D.folder("dirloop")
    shutil.copy(D.short, d / "a.wav")
    if not (d / "again").is_symlink():
        os.symlink(".", d / "again")
    return d


tr_case("folder containing a symlink to itself", _dir_link_loop, (0, 1),
        "exit 0/1 in bounded time (no endless recursion)", max_lines=2, timeout=60)
tr_case("leading dash after --", lambda: "--", 2, "usage error without a file (exit 2)")


@case("transcribe", "file named -rf.wav after --", "exit 0 (a file, not an option)")
def _(limit):
    shutil.copy(D.short, D.root / "-rf.wav")
    return cli_row(tr("--", "-rf.wav", timeout=limit, cwd=D.root), 0, 0)


@case("transcribe", "stdin: nothing", "exit 1, one line")
def _(limit):
    return cli_row(tr("-", timeout=limit, stdin=b""), 1)


@case("transcribe", "stdin: 1 MB of random bytes", "exit 1, one line")
def _(limit):
    return cli_row(tr("-", timeout=limit, stdin=rnd(1 << 20)), 1)


@case("transcribe", "stdin: a good WAV", "exit 0, text")
def _(limit):
    p = tr("-", timeout=limit, stdin=D.good.read_bytes())
    return cli_row(p, 0, 0, extra_ok=bool(p.out.strip()))


@case("transcribe", "stdin given twice (- -)", "exit 0-2, no traceback, no hang")
def _(limit):
    return cli_row(tr("-", "-", timeout=limit, stdin=D.good.read_bytes()), (0, 1, 2), 3)


@case("transcribe", "$ASR_MODEL is random bytes", "exit 1, one line naming the model")
def _(limit):
    bad = D.bytes("envmodel.onnx", rnd(5000))
    return cli_row(tr(D.short, timeout=limit, env={"ASR_MODEL": str(bad)}), 1, mention="envmodel.onnx")


@case("transcribe", "--threads 4096 on this machine", "refused, capped or still quick (< 30 s for 1 s of audio)",
      timeout=30)
def _(limit):
    return cli_row(tr("--threads", "4096", D.short, timeout=limit), (0, 2), 1)


# ==== transcribe: models, LMs, hotwords ==========================================================================
def _no_metadata_onnx() -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    p = D.path("plain.onnx")
    onnx.save(helper.make_model(graph), str(p))
    return p


_MODELS = [
    ("random bytes .onnx", lambda: D.bytes("rand.onnx", rnd(100000))),
    ("empty .onnx", lambda: D.bytes("empty.onnx", b"")),
    ("bundled .onnx cut at 1 MB", lambda: D.bytes("cut.onnx", MODEL.read_bytes()[: 1 << 20])),
    ("ONNX without asr metadata", _no_metadata_onnx),
    ("missing model", lambda: D.root / "nosuch.onnx"),
    ("model is a directory", lambda: D.folder("model.onnx")),
]
for _name, _make in _MODELS:
    def _model_case(limit, make=_make):
        target = Path(make())
        return cli_row(tr("--model", target, D.short, timeout=limit), 1, mention=target.name)
    CASES.append(Case("model", f"transcribe --model {_name}", "exit 1, one line naming it", _model_case))

    def _info_case(limit, make=_make):
        target = Path(make())
        return cli_row(asr("info", target, timeout=limit), 1, mention=target.name)
    CASES.append(Case("info", f"info {_name}", "exit 1, one line naming it", _info_case))


@case("info", "info: the bundled model", "exit 0, JSON")
def _(limit):
    p = asr("info", timeout=limit)
    try:
        json.loads(p.out)
        ok = True
    except ValueError:
        ok = False
    return cli_row(p, 0, 0, extra_ok=ok)


simple("devices", "devices (no sound server here)", ["devices"], (0, 1), "exit 0 with a list, or 1 in one line")


def _arpa(name: str, text: str) -> Callable[[], Path]:
    return lambda: D.text(name, text)


_GOOD_ARPA = ("\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-1.0\t<s>\t-0.3\n-1.0\t</s>\n-0.5\tthe\t-0.2\n\n"
              "\\2-grams:\n-0.3\t<s> the\n\n\\end\\\n")


def _npz_wrong() -> Path:
    p = D.path("wrong.npz")
    np.savez(p, a=np.arange(5))
    return p


def _npz_pickle() -> Path:
    p = D.path("pickle.npz")
    np.savez(p, keys=np.array([{"evil": 1}], dtype=object))
    return p


_LMS = [
    ("random bytes .arpa", lambda: D.bytes("rand.arpa", rnd(20000))),
    ("random bytes .npz", lambda: D.bytes("rand.npz", rnd(20000))),
    ("bundled .npz cut in half", lambda: D.bytes("half.npz", BUNDLED_NPZ.read_bytes()[: BUNDLED_NPZ.stat().st_size // 2])
     if BUNDLED_NPZ.exists() else D.bytes("half.npz", b"PK\x03\x04")),
    (".npz with unrelated arrays", _npz_wrong),
    (".npz holding a pickled object", _npz_pickle),
    ("empty LM file", lambda: D.bytes("empty.arpa", b"")),
    ("LM is a directory", lambda: D.folder("lmdir.arpa")),
    ("missing LM", lambda: D.root / "nosuch.arpa"),
    ("ARPA header without n-grams", _arpa("hdr.arpa", "\\data\\\n\n\\end\\\n")),
    ("ARPA counts not matching", _arpa("count.arpa", _GOOD_ARPA.replace("ngram 1=3", "ngram 1=7"))),
    ("ARPA cut short", _arpa("short.arpa", _GOOD_ARPA[: len(_GOOD_ARPA) // 2 + 10])),
    ("ARPA malformed line", _arpa("malformed.arpa", _GOOD_ARPA.replace("-0.5\tthe\t-0.2", "zebra"))),
    ("ARPA not UTF-8", lambda: D.bytes("latin.arpa", _GOOD_ARPA.replace("the", "th\xe9").encode("latin-1"))),
    ("ARPA probability nan", _arpa("nanprob.arpa", _GOOD_ARPA.replace("-0.5\tthe", "nan\tthe"))),
    ("KenLM binary name, random bytes", lambda: D.bytes("rand.bin", rnd(20000))),
]
for _name, _make in _LMS:
    _rc = (0, 1) if "nan" in _name else 1

    def _lm_case(limit, make=_make, rc=_rc):
        target = make()
        return cli_row(asr("transcribe", "--jobs", "1", "--lm", str(target), D.short, timeout=limit), rc,
                       mention=None if rc != 1 else target.name)
    CASES.append(Case("lm", f"transcribe --lm {_name}", "exit 1, one line naming it" if _rc == 1 else
                      "exit 0/1 (refused or scored), no traceback", _lm_case))

_HOT = [
    ("1001 --hotword", lambda: sum((["--hotword", f"w{i}"] for i in range(1001)), [])),
    ("hotword of 65 characters", lambda: ["--hotword", "a" * 65]),
    ("hotword bonus nan", lambda: ["--hotword", "word:nan"]),
    ("hotword bonus 1e9", lambda: ["--hotword", "word:1e9"]),
    ("hotword bonus -101", lambda: ["--hotword", "word:-101"]),
    ("hotwords file 2 MB", lambda: ["--hotwords-file", str(D.text("hot-big.txt", "word\n" * 400000))]),
    ("hotwords file not UTF-8", lambda: ["--hotwords-file", str(D.bytes("hot-latin.txt", b"caf\xe9\n"))]),
    ("hotwords file missing", lambda: ["--hotwords-file", str(D.root / "nosuch-hot.txt")]),
    ("hotwords file is a directory", lambda: ["--hotwords-file", str(D.folder("hotdir"))]),
    ("hotwords file of 1001 lines", lambda: ["--hotwords-file", str(D.text("hot-1001.txt", "".join(
        f"w{i}\n" for i in range(1001))))]),
]
for _name, _make in _HOT:
    def _hot_case(limit, make=_make):
        return cli_row(tr(*make(), D.short, timeout=limit), (1, 2))
    CASES.append(Case("hotwords", _name, "exit 1/2 before any work, one line", _hot_case, 30))


# ==== transcribe: batches and outputs ============================================================================
def _fresh(name: str) -> Path:
    p = D.root / name
    if p.exists():
        shutil.rmtree(p)
    return D.folder(name)


@case("batch", "--output-dir is a file", "exit 1/2, one line, the file unchanged")
def _(limit):
    f = D.text("out-is-file", "precious\n")
    p = tr("--output-dir", f, D.short, timeout=limit)
    return cli_row(p, (1, 2), kept=f.read_text() == "precious\n")


@case("batch", "--output-dir under a file (file/sub)", "exit 1/2, one line")
def _(limit):
    f = D.text("out-is-file2", "precious\n")
    return cli_row(tr("--output-dir", f / "sub", D.short, timeout=limit), (1, 2), kept=f.read_text() == "precious\n")


@case("batch", "--output-dir /dev/null", "exit 1/2, one line, /dev/null still a device")
def _(limit):
    p = tr("--output-dir", "/dev/null", D.short, timeout=limit)
    return cli_row(p, (1, 2), kept=stat.S_ISCHR(os.stat("/dev/null").st_mode))


@case("batch", "--output-dir is the input folder, run twice", "exit 0 both times, one output per input")
def _(limit):
    d = _fresh("same")
    shutil.copy(D.short, d / "a.wav")
    p = tr("--format", "all", "--output-dir", d, d, timeout=limit)
    q = tr("--format", "all", "--output-dir", d, d, timeout=limit)
    names = outputs(d)
    want = sorted(["a.wav", "a.txt", "a.json", "a.srt", "a.vtt", "a.tsv"])
    row = cli_row(q, 0, 1, extra_ok=p.rc == 0 and names == want, note="" if names == want else f"files {names}")
    row.got = f"exit {p.rc}, {q.rc}"
    return row


@case("batch", "--format all without --output-dir", "exit 2, one line")
def _(limit):
    return cli_row(tr("--format", "all", D.short, timeout=limit), 2)


@case("batch", "good + empty + random + missing", "exit 1, each bad named, good written, summary")
def _(limit):
    d = _fresh("b1")
    shutil.copy(D.short, d / "good.wav")
    (d / "empty.wav").write_bytes(b"")
    (d / "rand.wav").write_bytes(rnd(4000))
    out = _fresh("b1-out")
    p = tr("--output-dir", out, d / "good.wav", d / "empty.wav", d / "rand.wav", d / "missing.wav", timeout=limit)
    return cli_row(p, 1, 4, kept=(out / "good.txt").exists(), extra_ok=all(n in p.err for n in
                                                                             ("empty.wav", "rand.wav", "missing.wav")))


@case("batch", "200 empty files + 1 good, --jobs 2", "exit 1, 200 lines + summary, good written, bounded")
def _(limit):
    d = _fresh("b200")
    for i in range(200):
        (d / f"e{i:03d}.wav").write_bytes(b"")
    shutil.copy(D.short, d / "zgood.wav")
    out = _fresh("b200-out")
    p = asr("transcribe", "--no-lm", "--jobs", "2", "--output-dir", out, d, timeout=limit)
    return cli_row(p, 1, 201, kept=(out / "zgood.txt").exists())


@case("batch", "y.wav and y.flac collide", "exit 2 up front naming them, nothing written")
def _(limit):
    d = _fresh("collide")
    shutil.copy(D.short, d / "y.wav")
    shutil.copy(D.flac, d / "y.flac")
    out = _fresh("collide-out")
    p = tr("--output-dir", out, d, timeout=limit)
    return cli_row(p, 2, 1, mention="y.", extra_ok=not outputs(out))


@case("batch", "planted symlink at the output name", "exit 0, the link replaced, its target unchanged")
def _(limit):
    out = _fresh("plant-out")
    victim = D.text("victim.txt", "do not overwrite\n")
    os.symlink(victim, out / "short.txt")
    p = tr("--output-dir", out, D.short, timeout=limit)
    replaced = not (out / "short.txt").is_symlink() and (out / "short.txt").exists()
    return cli_row(p, 0, 1, kept=victim.read_text() == "do not overwrite\n", extra_ok=replaced)


@case("batch", "input now corrupt: its old output kept", "exit 1, the earlier output unchanged")
def _(limit):
    d, out = _fresh("redo"), _fresh("redo-out")
    (d / "a.wav").write_bytes(rnd(3000))
    (out / "a.txt").write_text("earlier transcript\n")
    p = tr("--output-dir", out, d / "a.wav", timeout=limit)
    return cli_row(p, 1, 2, kept=(out / "a.txt").read_text() == "earlier transcript\n")


@case("batch", "--skip-existing keeps outputs, bad file fails alone", "exit 1, existing output byte-identical")
def _(limit):
    d, out = _fresh("skip"), _fresh("skip-out")
    shutil.copy(D.short, d / "a.wav")
    (d / "b.wav").write_bytes(b"RIFF")
    (out / "a.txt").write_text("kept as is\n")
    p = tr("--skip-existing", "--output-dir", out, d, timeout=limit)
    return cli_row(p, 1, 3, kept=(out / "a.txt").read_text() == "kept as is\n")


@case("batch", "output name too long (255-byte stem)", "exit 1, that file named with the reason, the other written")
def _(limit):
    d, out = _fresh("long"), _fresh("long-out")
    shutil.copy(D.short, d / ("n" * 251 + ".wav"))
    shutil.copy(D.short, d / "ok.wav")
    p = tr("--format", "json", "--output-dir", out, d, timeout=limit)
    return cli_row(p, 1, 2, kept=(out / "ok.json").exists())


@case("batch", "unicode and newline names into --output-dir", "exit 0, outputs under the same names")
def _(limit):
    d, out = _fresh("names"), _fresh("names-out")
    for n in ("späß 日本語.wav", "new\nline.wav", " space .wav"):
        shutil.copy(D.short, d / n)
    p = tr("--output-dir", out, d, timeout=limit)
    want = sorted(["späß 日本語.txt", "new\nline.txt", " space .txt"])
    return cli_row(p, 0, 1, extra_ok=outputs(out) == want, note="" if outputs(out) == want else f"outputs {outputs(out)}")


@case("batch", "two runs at once into one --output-dir", "both exit 0, every JSON complete, no temporary files left",
      timeout=120)
def _(limit):
    d, out = _fresh("conc"), _fresh("conc-out")
    for i in range(4):
        shutil.copy(D.short, d / f"f{i}.wav")
    results = [None, None]

    def run(i):
        results[i] = asr("transcribe", "--no-lm", "--jobs", "1", "--format", "json", "--output-dir", out, d,
                         timeout=limit)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = outputs(out)
    complete = names == [f"f{i}.json" for i in range(4)]
    for n in names:
        try:
            json.loads((out / n).read_text())
        except ValueError:
            complete = False
    a, b = results
    row = cli_row(a, 0, 1, kept=complete, extra_ok=b.rc == 0 and clean(b, 1))
    row.got = f"exit {a.rc}, {b.rc}"
    row.note = ("" if complete else f"outputs {names}; ") + row.note
    return row


def _first_output(out: Path, p: subprocess.Popen, limit: float) -> None:
    """Wait until the batch has written something (so it is really under way), or it ended, or the limit."""
    deadline = time.monotonic() + limit
    while (not [n for n in outputs(out) if not n.endswith(".part")] and p.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.02)


@case("batch", "kill -9 of asr transcribe mid-batch", "workers gone within 5 s, every output complete", timeout=90)
def _(limit):
    d, out = _fresh("kill"), _fresh("kill-out")
    for i in range(40):
        shutil.copy(D.good, d / f"k{i:02d}.wav")
    cmd = ["nice", "-n", "10", str(ASR), "transcribe", "--no-lm", "--jobs", "2", "--format", "json", "--output-dir",
           str(out), str(d)]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.monotonic()
    _first_output(out, p, limit / 2)
    os.kill(p.pid, signal.SIGKILL)  # the parent only: its workers must notice on their own
    p.wait()
    deadline = time.monotonic() + 5
    while _group_alive(p.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    orphans = _group_alive(p.pid)
    _kill_group(p.pid)
    complete = True
    for n in outputs(out):
        if n.endswith(".json"):
            try:
                json.loads((out / n).read_text())
            except ValueError:
                complete = False
    left = [n for n in outputs(out) if not n.endswith(".json")]
    return Row("", "", "", "workers alive" if orphans else "workers gone", None, complete,
               "PASS" if not orphans and complete else "FAIL",
               f"{len(outputs(out)) - len(left)} outputs done" + (f"; other files left: {left}" if left else ""),
               time.monotonic() - t0)


@case("batch", "SIGTERM mid-batch, then --skip-existing", "exit 143 with a count, then resume exit 0 with all",
      timeout=120)
def _(limit):
    d, out = _fresh("term"), _fresh("term-out")
    for i in range(40):
        shutil.copy(D.good, d / f"t{i:02d}.wav")
    args = [str(ASR), "transcribe", "--no-lm", "--jobs", "2", "--output-dir", str(out), str(d)]
    t0 = time.monotonic()
    p = subprocess.Popen(["nice", "-n", "10", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    _first_output(out, p, limit / 3)
    os.kill(p.pid, signal.SIGTERM)  # nice execs asr, so this is asr itself
    try:
        _, err = p.communicate(timeout=30)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        _kill_group(p.pid)
        _, err = p.communicate()
        rc = None
    first = Proc(rc, "", err.decode(errors="replace"), time.monotonic() - t0)
    resumed = asr(*args[1:], "--skip-existing", timeout=max(5, limit - first.seconds))
    complete = outputs(out) == [f"t{i:02d}.txt" for i in range(40)]
    ok = first.rc == 143 and TRACEBACK not in first.err and resumed.rc == 0 and complete
    return Row("", "", "", f"exit {first.rc}, resume exit {resumed.rc}", TRACEBACK not in first.err + resumed.err,
               complete, "PASS" if ok else "FAIL", first_line(first)[:120], time.monotonic() - t0)


@case("batch", "unreadable input (as nobody)", "exit 1, one line naming it")
def _(limit):
    f = D.path("secret.wav")
    shutil.copy(D.short, f)
    f.chmod(0)
    return cli_row(tr(f, timeout=limit, as_nobody=True, env={"HOME": str(D.folder("home"))}), 1, mention="secret.wav")


@case("batch", "unreadable folder as input (as nobody)", "exit 1, one line naming it and the reason")
def _(limit):
    d = _fresh("locked")
    shutil.copy(D.short, d / "a.wav")
    d.chmod(0)
    p = tr(d, timeout=limit, as_nobody=True, env={"HOME": str(D.folder("home"))})
    return cli_row(p, 1, mention="locked", extra_ok="permission" in p.err.lower(),
                   note="" if "permission" in p.err.lower() else "the reason (permission) is not given")


@case("batch", "--output-dir without write permission (as nobody)", "exit 1, each file named, no traceback")
def _(limit):
    d, out = _fresh("ro-in"), _fresh("ro-out")
    shutil.copy(D.short, d / "a.wav")
    shutil.copy(D.short, d / "b.wav")
    out.chmod(0o555)
    p = tr("--output-dir", out, d, timeout=limit, as_nobody=True, env={"HOME": str(D.folder("home"))})
    return cli_row(p, 1, 3, extra_ok="a.wav" in p.err and "b.wav" in p.err)


@case("batch", "$HOME not writable (as nobody), good file", "exit 0, nothing but asr's own lines on stderr")
def _(limit):
    return cli_row(tr(D.short, timeout=limit, as_nobody=True, env={"HOME": str(D.root)}), 0, 0)


# ==== eval =======================================================================================================
def ev_case(name: str, lines: Callable[[], list] | None, rc, expect: str, max_lines: int = 1,
            figure: bool | None = None, mention: str | None = None, path: Callable[[], object] | None = None):
    def fn(limit):
        m = path() if path else D.manifest(f"m-{abs(hash(name))}.jsonl", lines())
        p = asr("eval", "--no-lm", str(m), timeout=limit)
        has_figure = "WER" in p.out
        ok = figure is None or has_figure == figure
        return cli_row(p, rc, max_lines, mention, extra_ok=ok,
                       note="" if ok else ("a figure was printed" if has_figure else "no figure printed"))
    CASES.append(Case("eval", name, expect, fn))


_G = lambda: str(D.short)  # noqa: E731
ev_case("empty manifest", lambda: [], 1, "exit 1, one line, no figure", figure=False)
ev_case("manifest of blank lines", lambda: ["", "   "], 1, "exit 1, one line, no figure", figure=False)
ev_case("missing manifest", None, 1, "exit 1, one line", path=lambda: D.root / "nosuch.jsonl")
ev_case("manifest is a directory", None, 1, "exit 1, one line", path=lambda: D.folder("mdir.jsonl"))
ev_case("manifest not UTF-8", None, 1, "exit 1, one line naming it", mention="latin.jsonl",
        path=lambda: D.bytes("latin.jsonl", b'{"audio": "x.wav", "text": "caf\xe9"}\n'))
ev_case("line not JSON", lambda: ["{not json"], 1, "exit 1, one line naming manifest:line", mention=":1")
ev_case("line is a JSON array", lambda: [[1, 2]], 1, "exit 1, one line")
ev_case("line without 'text'", lambda: [{"audio": _G()}], 1, "exit 1, one line naming the line", mention=":1")
ev_case("line without 'audio'", lambda: [{"text": "hi"}], 1, "exit 1, one line naming the line", mention=":1")
ev_case("'audio' is a number", lambda: [{"audio": 5, "text": "hi"}], 1, "exit 1, one line")
ev_case("'text' is a number", lambda: [{"audio": _G(), "text": 42}], 1, "exit 1, one line naming the line",
        mention=":1")
ev_case("'text' is null", lambda: [{"audio": _G(), "text": None}], 1,
        "exit 1, one line naming the line (not scored against 'None')", mention=":1")
ev_case("every audio path missing", lambda: [{"audio": "no1.wav", "text": "a"}, {"audio": "no2.wav", "text": "b"}],
        1, "exit 1, each named, no figure", max_lines=3, figure=False)
ev_case("one good, one missing", lambda: [{"audio": _G(), "text": "the birch canoe"},
                                          {"audio": "gone.wav", "text": "b"}],
        1, "exit 1, the missing one named, a figure for the good one", figure=True, mention="gone.wav")
ev_case("audio path with a NUL byte + one good", lambda: [{"audio": "a\u0000b.wav", "text": "x"},
                                                          {"audio": _G(), "text": "the birch canoe"}],
        1, "exit 1, that line named, the good one still scored", max_lines=2, figure=True)
ev_case("audio is /dev/zero", lambda: [{"audio": "/dev/zero", "text": "x"}], 1, "exit 1 at once, no figure",
        max_lines=2, figure=False)
ev_case("audio is the manifest's folder ('')", lambda: [{"audio": "", "text": "x"}], 1, "exit 1, no traceback",
        max_lines=2, figure=False)


@case("eval", "--json with one good utterance", "exit 0, one JSON object")
def _(limit):
    m = D.manifest("m-json.jsonl", [{"audio": _G(), "text": "the birch canoe"}])
    p = asr("eval", "--no-lm", "--json", m, timeout=limit)
    try:
        ok = "wer" in json.loads(p.out)
    except ValueError:
        ok = False
    return cli_row(p, 0, 0, extra_ok=ok)


@case("eval", "--model random bytes .pt (checkpoint path)", "exit 1/2, one line", timeout=90)
def _(limit):
    m = D.manifest("m-pt.jsonl", [{"audio": _G(), "text": "x"}])
    return cli_row(asr("eval", m, "--model", D.bytes("rand.pt", rnd(5000)), timeout=limit), (1, 2))


# ==== live =======================================================================================================
simple("live", "live --duration 1 --input 9999", ["live", "--no-lm", "--duration", "1", "--input", "9999"], 1,
       "exit 1, one line", timeout=30)
simple("live", "live --duration 1 --input nosuchdevice", ["live", "--no-lm", "--duration", "1", "--input", "nosuchdevice"],
       1, "exit 1, one line", max_lines=2, timeout=30)
simple("live", "live --duration 1 (no default device)", ["live", "--no-lm", "--duration", "1"], 1,
       "exit 1, one line (+ the summary)", max_lines=2, timeout=30)
simple("live", "live --output into a missing folder", ["live", "--no-lm", "--duration", "1", "--input", "9999",
                                                       "--output", "/nonexistent/dir/x.txt"], 1, "exit 1, one line",
       timeout=30)
simple("live", "live --save-audio is a directory", ["live", "--no-lm", "--duration", "1", "--save-audio",
                                                    lazy(lambda: D.folder("saved.wav"))], 1, "exit 1, one line",
       max_lines=2, timeout=30)
simple("live", "live --save-audio into a missing folder", ["live", "--no-lm", "--duration", "1", "--save-audio",
                                                           lazy(lambda: D.root / "nosuch" / "x.wav")], 1,
       "exit 1, one line", max_lines=2, timeout=30)
simple("live", "live --lm random bytes", ["live", "--duration", "1", "--lm", lazy(lambda: D.bytes(
    "live.arpa", rnd(3000)))], 1, "exit 1, one line naming it", mention="live.arpa", timeout=30)

# ==== lm build ===================================================================================================
_SENT = "the cat sat on the mat\nthe dog sat on the log\nthe cat sat on the mat\n"


def lb_case(name: str, args: Callable[[], list], rc, expect: str | None = None, max_lines: int = 1,
            timeout: float = 60, mention: str | None = None):
    def fn(limit):
        return cli_row(asr("lm", "build", *map(str, args()), timeout=limit), rc, max_lines, mention)
    allowed = rc if isinstance(rc, tuple) else (rc,)
    CASES.append(Case("lm build", name, expect or ("exit " + "/".join(map(str, allowed)) + ", one line"), fn, timeout))


lb_case("missing text", lambda: [D.root / "nosuch.txt", "-o", D.root / "o.arpa"], 1)
lb_case("empty text", lambda: [D.text("empty.txt", ""), "-o", D.root / "o.arpa"], 1)
lb_case("random bytes text", lambda: [D.bytes("rand.txt", rnd(5000)), "-o", D.root / "o.arpa"], 1)
lb_case("text is a directory", lambda: [D.folder("tdir.txt"), "-o", D.root / "o.arpa"], 1)
lb_case("garbage named .xz", lambda: [D.bytes("g.xz", rnd(3000)), "-o", D.root / "o.arpa"], 1)
lb_case("gzip cut short", lambda: [D.bytes("cut.gz", __import__("gzip").compress(_SENT.encode() * 200)[:60]),
                                   "-o", D.root / "o.arpa"], 1)
lb_case("output into a missing folder", lambda: [D.text("s.txt", _SENT), "-o", D.root / "nosuch" / "o.arpa",
                                                 "--min-count", "1"], 1)
lb_case("output is a directory", lambda: [D.text("s.txt", _SENT), "-o", D.folder("odir.arpa"), "--min-count", "1"], 1)
lb_case("--exclude missing manifest", lambda: [D.text("s.txt", _SENT), "-o", D.root / "o.arpa", "--exclude",
                                               D.root / "nosuch.jsonl"], 1)
lb_case("--exclude random bytes", lambda: [D.text("s.txt", _SENT), "-o", D.root / "o.arpa", "--exclude",
                                           D.bytes("randx.jsonl", rnd(2000))], 1,
        "exit 1, one line naming it", mention="randx.jsonl")
lb_case("PATH@abc", lambda: [f"{D.text('s.txt', _SENT)}@abc", "-o", D.root / "o.arpa"], (1, 2))
lb_case("PATH@-1", lambda: [f"{D.text('s.txt', _SENT)}@-1", "-o", D.root / "o.arpa"], (1, 2))
lb_case("PATH@1000000000 (a billion repeats)", lambda: [f"{D.text('s.txt', _SENT)}@1000000000", "-o",
                                                        D.root / "o.arpa", "--min-count", "1"], (0, 1, 2),
        "refused, or done in bounded time (< 20 s)", timeout=20)
lb_case("--order 100 on 3 short sentences", lambda: [D.text("s.txt", _SENT), "-o", D.root / "o100.arpa",
                                                     "--min-count", "1", "--order", "100"], (0, 1),
        "exit 0/1, no traceback")


@case("lm build", "a built .npz reloads with --lm", "exit 0, then transcribe --lm exit 0")
def _(limit):
    out = D.root / "small.npz"
    p = asr("lm", "build", D.text("s.txt", _SENT), "-o", out, "--min-count", "1", timeout=limit)
    q = asr("transcribe", "--jobs", "1", "--lm", out, D.short, timeout=limit)
    row = cli_row(q, 0, 0, extra_ok=p.rc == 0)
    row.got = f"exit {p.rc}, {q.rc}"
    return row


# ==== prepare ====================================================================================================
def pr_case(name: str, layout: str, source: Callable[[], object], rc, expect: str, max_lines: int = 1,
            output: Callable[[], object] | None = None, timeout: float = 60):
    def fn(limit):
        out = output() if output else D.root / f"prep-{abs(hash(name))}.jsonl"
        return cli_row(asr("prepare", layout, str(source()), "-o", str(out), timeout=limit), rc, max_lines,
                       prefixes=("asr", "skipped: "))  # prepare's documented "skipped: REASON" lines
    CASES.append(Case("prepare", name, expect, fn, timeout))


def _pairs(name: str, audio: bytes | None, text: bytes) -> Path:
    d = _fresh(name)
    if audio is None:
        shutil.copy(D.short, d / "u.wav")
    else:
        (d / "u.wav").write_bytes(audio)
    (d / "u.txt").write_bytes(text)
    return d


def _folder_loop() -> Path:
    d = _pairs("prep-loop", None, b"the birch canoe\n")
    os.symlink(".", d / "again")
    return d


pr_case("missing source", "folder", lambda: D.root / "nosuch", 1, "exit 1, one line")
pr_case("empty folder", "folder", lambda: _fresh("prep-empty"), 0, "exit 0, empty manifest", max_lines=0)
pr_case("transcript not UTF-8", "folder", lambda: _pairs("prep-latin", None, b"caf\xe9\n"), 0,
        "exit 0, one skipped line", max_lines=1)
pr_case("audio is garbage", "folder", lambda: _pairs("prep-garbage", rnd(3000), b"hello\n"), 0,
        "exit 0, one skipped line", max_lines=1)
pr_case("transcript with digits", "folder", lambda: _pairs("prep-digits", None, b"call 911 now\n"), 0,
        "exit 0, one skipped line", max_lines=1)
pr_case("folder with a symlink to itself", "folder", _folder_loop, (0, 1), "bounded time, no traceback", max_lines=2)
pr_case("librispeech layout on an empty folder", "librispeech", lambda: _fresh("prep-ls"), (0, 1),
        "exit 0/1, no traceback")
pr_case("commonvoice: random bytes .tsv", "commonvoice", lambda: D.bytes("cv.tsv", rnd(3000)), (0, 1),
        "exit 0/1, one line")
pr_case("kaldi: folder without files", "kaldi", lambda: _fresh("prep-kaldi"), (0, 1), "exit 0/1, one line")
pr_case("ljspeech: metadata.csv of random bytes", "ljspeech",
        lambda: (_fresh("prep-lj") / "metadata.csv").write_bytes(rnd(3000)) and D.root / "prep-lj", (0, 1),
        "exit 0/1, one line")
pr_case("-o into a missing folder", "folder", lambda: _pairs("prep-ok", None, b"the birch canoe\n"), 1,
        "exit 1, one line", output=lambda: D.root / "nosuch" / "x.jsonl")
pr_case("-o is a directory", "folder", lambda: _pairs("prep-ok2", None, b"the birch canoe\n"), 1,
        "exit 1, one line", output=lambda: D.folder("pdir.jsonl"))

# ==== export / train (torch) =====================================================================================
simple("export", "export missing checkpoint", ["export", lazy(lambda: D.root / "nosuch.pt"), "-o",
                                               lazy(lambda: D.root / "x.onnx")], (1, 2), timeout=90)
simple("export", "export random bytes .pt", ["export", lazy(lambda: D.bytes("rand2.pt", rnd(5000))), "-o",
                                             lazy(lambda: D.root / "x.onnx")], (1, 2), timeout=90)
simple("export", "export empty .pt", ["export", lazy(lambda: D.bytes("empty.pt", b"")), "-o",
                                      lazy(lambda: D.root / "x.onnx")], (1, 2), timeout=90)
simple("export", "export a zip that is not a checkpoint", ["export", lazy(lambda: shutil.copy(
    BUNDLED_NPZ if BUNDLED_NPZ.exists() else D.flac, D.root / "zip.pt")), "-o", lazy(lambda: D.root / "x.onnx")],
       (1, 2), timeout=90)
simple("export", "export --accuracy random bytes", ["export", lazy(lambda: D.root / "nosuch.pt"), "-o",
                                                    lazy(lambda: D.root / "x.onnx"), "--accuracy",
                                                    lazy(lambda: D.bytes("acc.json", rnd(100)))], (1, 2),
       timeout=90)
simple("train", "train with missing manifests", ["train", "--train", lazy(lambda: D.root / "no.jsonl"), "--dev",
                                                 lazy(lambda: D.root / "no2.jsonl"), "--out",
                                                 lazy(lambda: D.root / "run1"), "--epochs", "1"], (1, 2), timeout=90)
simple("train", "train --set nosuch.key=1", ["train", "--train", "a", "--dev", "b", "--out",
                                             lazy(lambda: D.root / "run2"), "--set", "nosuch.key=1"], 2, timeout=90)
simple("train", "train --set model.hidden=-5", ["train", "--train", "a", "--dev", "b", "--out",
                                                lazy(lambda: D.root / "run3"), "--set", "model.hidden=-5"], 2,
       timeout=90)
simple("train", "train --config random bytes", ["train", "--train", "a", "--dev", "b", "--out",
                                                lazy(lambda: D.root / "run4"), "--config",
                                                lazy(lambda: D.bytes("c.toml", rnd(300)))], 2,
       "exit 2, one line naming it", mention="c.toml", timeout=90)


@case("train", "train --resume with a random-bytes last.pt", "exit 1/2, one line", timeout=90)
def _(limit):
    run = _fresh("run5")
    (run / "last.pt").write_bytes(rnd(4000))
    m = D.manifest("tm.jsonl", [{"audio": str(D.short), "duration": 1.0, "text": "the birch canoe"}])
    return cli_row(asr("train", "--train", m, "--dev", m, "--out", run, "--resume", "--epochs", "1", timeout=limit),
                   (1, 2))


# ==== the server =================================================================================================
class Server:
    """`asr serve` on loopback, greedy, with small limits so the cases stay short."""

    ARGS = ["--no-lm", "--threads", "1", "--max-clients", "8", "--max-message-bytes", "262144", "--idle-timeout", "3"]
    MAX_MESSAGE = 262144
    IDLE = 3.0

    def __init__(self, folder: Path):
        self.log_path = folder / "server.log"
        self.proc = None
        self.port = None
        self.restarts = 0

    def start(self) -> None:
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["nice", "-n", "10", str(ASR), "serve", "--port", "0", *self.ARGS],
                                     stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            m = re.findall(r"serving on ws://127\.0\.0\.1:(\d+)", self.log_path.read_text(errors="replace"))
            if m:
                self.port = int(m[-1])
                return
            time.sleep(0.1)
        raise RuntimeError("asr serve did not start: " + self.log_path.read_text(errors="replace")[-500:])

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def health(self, timeout: float = 5) -> tuple[int | None, dict | None]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                return e.code, json.loads(e.read())
            except ValueError:
                return e.code, None
        except (OSError, ValueError):
            return None, None

    def healthy(self, settle: float = 5.0) -> bool:
        """Alive and answering /health with status ok, and every stream of the case gone within `settle` s."""
        deadline = time.monotonic() + settle
        while True:
            code, h = self.health()
            alive = self.proc.poll() is None
            if alive and code == 200 and h and h.get("status") == "ok" and h.get("clients") == 0:
                return True
            if not alive or time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def ensure(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.restarts += self.proc is not None
            self.start()

    def stop(self) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                _kill_group(self.proc.pid)
                self.proc.wait()
        return self.proc.returncode if self.proc else None


S: Server  # set in main()


def error_replies_ok(msgs: list) -> tuple[bool, str]:
    """Every {"type": "error"} reply: valid JSON on one line, its text at most 300 characters."""
    texts = []
    for m in msgs:
        if isinstance(m, str) and '"error"' in m:
            try:
                e = json.loads(m).get("error", "")
            except ValueError:
                return False, "unparsable error reply"
            if "\n" in m or len(e) > 300:
                return False, f"error reply of {len(e)} characters / multi-line"
            texts.append(e)
    return True, texts[0][:140] if texts else ""


async def ws_session(sends: list, read_timeout: float = 10.0, max_msgs: int = 10000) -> tuple[list, object]:
    """Connect, send each item (str, bytes, or a float: sleep), read until the server closes; (replies, close code)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    msgs = []
    try:
        ws = await connect(S.url, max_size=None, compression=None, open_timeout=5, close_timeout=3, ping_interval=None)
    except InvalidStatus as e:
        return msgs, f"HTTP {e.response.status_code}"
    try:
        for item in sends:
            if isinstance(item, float):
                await asyncio.sleep(item)
            else:
                await ws.send(item)
    except ConnectionClosed:
        pass
    try:
        while len(msgs) < max_msgs:
            msgs.append(await asyncio.wait_for(ws.recv(), read_timeout))
    except ConnectionClosed:
        pass
    except asyncio.TimeoutError:
        await ws.close()
        return msgs, "still open"
    return msgs, ws.close_code


def server_case(name: str, expect: str, timeout: float = 30.0):
    """A server case: fn(limit) -> (got, one_line, passed, note); the server's health decides `kept`."""
    def register(fn):
        def run(limit):
            t0 = time.monotonic()
            S.ensure()
            got, one, passed, note = fn(limit)
            healthy = S.healthy()
            if not healthy:
                note = f"server unhealthy after the case (rc {S.proc.poll()}); " + note
            return Row("", "", "", str(got), one, healthy, "PASS" if passed and healthy else "FAIL", note,
                       time.monotonic() - t0)
        CASES.append(Case("serve", name, expect, run, timeout))
        return fn
    return register


def rejected(name: str, sends: Callable[[], list], code: int, expect: str | None = None, need_error: bool = True):
    """The server answers with one short error line (unless need_error is False) and closes with `code`."""
    @server_case(name, expect or f"error reply, close {code}")
    def fn(limit):
        msgs, got = asyncio.run(asyncio.wait_for(ws_session(sends()), limit))
        short, text = error_replies_ok(msgs)
        has_error = any('"error"' in m for m in msgs if isinstance(m, str))
        passed = got == code and short and (has_error or not need_error)
        return f"close {got}", short if has_error else None, passed, text


CFG = json.dumps({"sample_rate": 16000})
EOF = json.dumps({"eof": 1})


@server_case("sanity: 1 s stream", "finals, eof, close 1000")
def _(limit):
    msgs, got = asyncio.run(asyncio.wait_for(ws_session([CFG, D.pcm16(1.0), EOF]), limit))
    types = [json.loads(m).get("type") for m in msgs if isinstance(m, str)]
    return f"close {got}", None, got == 1000 and types[-1:] == ["eof"], f"{len(msgs)} messages"


rejected("binary first message", lambda: [D.pcm16(0.1)], 1008)
rejected("text first message not JSON", lambda: ["hello"], 1007)
rejected("first message a JSON array", lambda: ["[16000]"], 1008)
rejected("first message a JSON string", lambda: ['"sample_rate"'], 1008)
rejected("JSON nested 200,000 deep", lambda: ["[" * 200000], 1007)
rejected("JSON object nested 40,000 deep", lambda: ['{"a":' * 40000 + "1" + "}" * 40000], 1007)
rejected("unknown field", lambda: [json.dumps({"sample_rate": 16000, "model": "/etc/passwd"})], 1008)
rejected("unknown field named with 100 KB and newlines", lambda: [json.dumps({"sample_rate": 16000,
                                                                              ("x\n" * 50000): 1})], 1008)
rejected("no sample_rate", lambda: ["{}"], 1008)
for _rate in ["0", "-16000", "7999", "192001", "16000.5", '"16000"', "true", "null", "1e400", str(2 ** 70),
              "[16000]", "NaN"]:
    rejected(f"sample_rate {_rate}", lambda r=_rate: ['{"sample_rate": %s}' % r], 1008)
for _lm in ['"yes"', "1", "null", "{}"]:
    rejected(f'"lm": {_lm}', lambda v=_lm: ['{"sample_rate": 16000, "lm": %s}' % v], 1008)
rejected("1001 hotwords", lambda: [json.dumps({"sample_rate": 16000, "hotwords": [f"w{i}" for i in range(1001)]})], 1008)
rejected("hotword of 65 characters", lambda: [json.dumps({"sample_rate": 16000, "hotwords": ["a" * 65]})], 1008)
rejected("hotword bonus nan", lambda: [json.dumps({"sample_rate": 16000, "hotwords": ["word:nan"]})], 1008)
rejected("hotword bonus 1e300", lambda: [json.dumps({"sample_rate": 16000, "hotwords": ["word:1e300"]})], 1008)
rejected("hotwords not a list", lambda: [json.dumps({"sample_rate": 16000, "hotwords": "kubernetes"})], 1008)
rejected("hotwords holding a number", lambda: [json.dumps({"sample_rate": 16000, "hotwords": [5]})], 1008)
rejected("odd byte count", lambda: [CFG, b"\x00" * 321], 1008)
rejected("text message mid-stream", lambda: [CFG, D.pcm16(0.2), '{"sample_rate": 8000}'], 1008)
rejected("eof with extra fields", lambda: [CFG, D.pcm16(0.2), '{"eof": 1, "x": 2}'], 1008)
rejected("message over the limit (300 KB)", lambda: [CFG, b"\x00" * 300000], 1009)
rejected("message over 4x the limit (2 MB)", lambda: [CFG, b"\x00" * 2000000], 1009, "close 1009 (cut off unread)",
         need_error=False)
rejected("first message over the limit (300 KB of text)", lambda: [" " * 300000], 1009)
rejected("{\"health\": 1, \"x\": 2}", lambda: ['{"health": 1, "x": 2}'], 1008)
rejected("idle after the configuration", lambda: [CFG], 1008, "error reply after --idle-timeout (3 s), close 1008")
rejected("idle before any message", lambda: [], 1008, "error reply after --idle-timeout (3 s), close 1008")


@server_case('{"health": 1} first message', "a health reply, close 1000")
def _(limit):
    msgs, got = asyncio.run(asyncio.wait_for(ws_session(['{"health": 1}']), limit))
    ok = bool(msgs) and json.loads(msgs[0]).get("type") == "health"
    return f"close {got}", None, got == 1000 and ok, ""


@server_case('"lm": false and 1000 hotwords of 64 characters', "accepted, eof; /health answers meanwhile", timeout=60)
def _(limit):
    words = [("w%03d" % i) + "a" * 60 for i in range(1000)]

    async def go():
        task = asyncio.create_task(ws_session([json.dumps({"sample_rate": 16000, "hotwords": words, "lm": False}),
                                               D.pcm16(1.0), EOF], read_timeout=30))
        await asyncio.sleep(0.3)
        t0 = time.monotonic()
        code, _ = await asyncio.get_running_loop().run_in_executor(None, S.health)
        lag = time.monotonic() - t0
        msgs, got = await task
        return msgs, got, code, lag
    msgs, got, code, lag = asyncio.run(asyncio.wait_for(go(), limit))
    eof = bool(msgs) and json.loads(msgs[-1]).get("type") == "eof"
    return f"close {got}", None, got == 1000 and eof and code == 200 and lag < 2, f"/health took {lag:.2f} s"


for _rate in (8000, 11025, 192000):
    @server_case(f"sample_rate {_rate} with audio", "finals, eof, close 1000")
    def _(limit, rate=_rate):
        audio = D.pcm16(1.0, rate)
        step = rate // 2  # 0.25 s of PCM16 per message: under the 256 KiB message limit at any rate
        msgs, got = asyncio.run(asyncio.wait_for(ws_session(
            [json.dumps({"sample_rate": rate})] + [audio[i: i + step] for i in range(0, len(audio), step)] + [EOF]),
            limit))
        eof = bool(msgs) and json.loads(msgs[-1]).get("type") == "eof"
        return f"close {got}", None, got == 1000 and eof, ""


@server_case("empty binary messages and 2-byte messages", "eof, close 1000")
def _(limit):
    sends = [CFG] + [b""] * 100 + [b"\x01\x00"] * 2000 + [EOF]
    msgs, got = asyncio.run(asyncio.wait_for(ws_session(sends), limit))
    return f"close {got}", None, got == 1000, f"{len(msgs)} messages"


@server_case("full-scale -32768 audio", "eof, close 1000")
def _(limit):
    msgs, got = asyncio.run(asyncio.wait_for(ws_session([CFG, b"\x00\x80" * 32000, EOF]), limit))
    return f"close {got}", None, got == 1000, ""


@server_case("30 s of audio as fast as possible (backpressure)", "all finals, eof, close 1000", timeout=60)
def _(limit):
    x = D.pcm16(3.0)
    msgs, got = asyncio.run(asyncio.wait_for(ws_session([CFG] + [x] * 10 + [EOF], read_timeout=30), limit))
    eof = bool(msgs) and json.loads(msgs[-1]).get("type") == "eof"
    return f"close {got}", None, got == 1000 and eof, f"{len(msgs)} messages"


@server_case("sending after eof", "eof, close 1000, the extra messages ignored")
def _(limit):
    msgs, got = asyncio.run(asyncio.wait_for(ws_session([CFG, D.pcm16(0.5), EOF, D.pcm16(0.5), EOF, "junk"]), limit))
    eof = any(json.loads(m).get("type") == "eof" for m in msgs if isinstance(m, str))
    return f"close {got}", None, got == 1000 and eof, ""


@server_case("close mid-stream (no eof)", "server healthy, stream dropped")
def _(limit):
    from websockets.asyncio.client import connect

    async def go():
        async with connect(S.url, open_timeout=5) as ws:
            await ws.send(CFG)
            await ws.send(D.pcm16(0.5))
    asyncio.run(asyncio.wait_for(go(), limit))
    return "closed by client", None, True, ""


@server_case("TCP reset mid-stream", "server healthy, stream dropped")
def _(limit):
    from websockets.asyncio.client import connect

    async def go():
        ws = await connect(S.url, open_timeout=5)
        await ws.send(CFG)
        await ws.send(D.pcm16(0.5))
        sock = ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.transport.abort()
    asyncio.run(asyncio.wait_for(go(), limit))
    return "reset by client", None, True, ""


@server_case("client half-closes (FIN) after eof", "server healthy (results: websockets takes a FIN as the end)")
def _(limit):
    s = raw_ws()
    s.sendall(frame(1, CFG.encode()) + frame(2, D.pcm16(0.5)) + frame(1, EOF.encode()))
    s.shutdown(socket.SHUT_WR)
    frames = read_frames(s, 10)
    s.close()
    texts = [p.decode(errors="replace") for op, p in frames if op == 1]
    close = [struct.unpack(">H", p[:2])[0] for op, p in frames if op == 8 and len(p) >= 2]
    eof = any('"eof"' in t for t in texts)
    return (f"close {close[0] if close else None}", None, True,
            "finals and eof sent" if eof else "no results sent: the half-closed client loses them")


@server_case("8 streams at once (the maximum), same audio", "8 x the same finals, eof", timeout=60)
def _(limit):
    async def go():
        return await asyncio.gather(*[ws_session([CFG, D.pcm16(2.0), EOF], read_timeout=20) for _ in range(8)])
    res = asyncio.run(asyncio.wait_for(go(), limit))
    texts = {" ".join(json.loads(m)["text"] for m in msgs if '"final"' in m) for msgs, _ in res}
    codes = {c for _, c in res}
    return f"closes {sorted(map(str, codes))}", None, codes == {1000} and len(texts) == 1, f"{len(texts)} distinct texts"


@server_case("9th client while 8 stream", "the 9th: 'server full' error, close 1013")
def _(limit):
    from websockets.asyncio.client import connect

    async def go():
        held = [await connect(S.url, open_timeout=5) for _ in range(8)]
        for ws in held:
            await ws.send(CFG)
        await asyncio.sleep(0.3)
        msgs, got = await ws_session([CFG])
        for ws in held:
            await ws.close()
        return msgs, got
    msgs, got = asyncio.run(asyncio.wait_for(go(), limit))
    short, text = error_replies_ok(msgs)
    return f"close {got}", short, got == 1013 and "full" in text, text


@server_case("8 streams at once, each with 1000 hotwords of 64 characters", "all accepted; /health under 2 s meanwhile",
             timeout=90)
def _(limit):
    words = [("w%03d" % i) + "b" * 60 for i in range(1000)]
    cfg = json.dumps({"sample_rate": 16000, "hotwords": words})

    async def go():
        tasks = [asyncio.create_task(ws_session([cfg, D.pcm16(0.5), EOF], read_timeout=60)) for _ in range(8)]
        await asyncio.sleep(0.3)
        t0 = time.monotonic()
        code, _ = await asyncio.get_running_loop().run_in_executor(None, S.health)
        lag = time.monotonic() - t0
        return await asyncio.gather(*tasks), code, lag
    res, code, lag = asyncio.run(asyncio.wait_for(go(), limit))
    codes = sorted({str(c) for _, c in res})
    return f"closes {codes}", None, codes == ["1000"] and code == 200 and lag < 2, f"/health took {lag:.2f} s"


@server_case("300 connections opened and dropped, 30 at a time", "healthy, no connection left counted")
def _(limit):
    from websockets.asyncio.client import connect

    async def one(i):
        try:
            ws = await connect(S.url, open_timeout=5)
            if i % 3 == 0:
                await ws.send(CFG)
            if i % 2:
                ws.transport.abort()
            else:
                await ws.close()
        except Exception:
            pass

    async def go():
        for start in range(0, 300, 30):
            await asyncio.gather(*(one(i) for i in range(start, start + 30)))
    asyncio.run(asyncio.wait_for(go(), limit))
    time.sleep(0.5)
    _, h = S.health()
    left = h.get("connections") if h else None
    return f"{left} connections counted after", None, left is not None and left <= 1, ""


# ---- raw sockets and hand-made frames ----------------------------------------------------------------------------
def raw_connect() -> socket.socket:
    s = socket.create_connection(("127.0.0.1", S.port), timeout=5)
    return s


class RawSocket(socket.socket):
    leftover = b""  # bytes read past the handshake's end


def raw_ws() -> RawSocket:
    """A socket after a WebSocket handshake done by hand."""
    s = RawSocket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(("127.0.0.1", S.port))
    key = base64.b64encode(rnd(16)).decode()
    s.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{S.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        head += chunk
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    s.leftover = head.split(b"\r\n\r\n", 1)[1]
    return s


def frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True, rsv: int = 0,
          length: int | None = None) -> bytes:
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 65536:
        head = bytes([b0, m | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, m | 127]) + n.to_bytes(8, "big")
    if mask:
        key = rnd(4)
        data = np.frombuffer(payload, np.uint8) ^ np.resize(np.frombuffer(key, np.uint8), len(payload))
        return head + key + data.tobytes()
    return head + payload


def read_frames(s: socket.socket, timeout: float) -> list[tuple[int, bytes]]:
    """Server frames until a close frame, EOF or the timeout: [(opcode, payload)], ('timeout', b'') last if so."""
    buf, frames = getattr(s, "leftover", b""), []
    deadline = time.monotonic() + timeout
    while True:
        while len(buf) >= 2:
            op, n, at = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, at = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, at = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < at + n:
                break
            frames.append((op, buf[at: at + n]))
            buf = buf[at + n:]
            if op == 8:
                return frames
        left = deadline - time.monotonic()
        if left <= 0:
            frames.append((-1, b"timeout"))
            return frames
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return frames
        if not chunk:
            return frames
        buf += chunk


def raw_frames_case(name: str, payload: Callable[[], bytes], code: int, expect: str | None = None,
                    after_config: bool = True):
    @server_case(name, expect or f"close {code}")
    def fn(limit):
        s = raw_ws()
        try:
            if after_config:
                s.sendall(frame(1, CFG.encode()))
            s.sendall(payload())
        except OSError:
            pass
        frames = read_frames(s, min(10, limit))
        s.close()
        close = [struct.unpack(">H", p[:2])[0] for op, p in frames if op == 8 and len(p) >= 2]
        texts = [p.decode(errors="replace") for op, p in frames if op == 1]
        short, text = error_replies_ok(texts)
        got = close[0] if close else ("no close frame (timeout)" if frames and frames[-1][0] == -1 else "dropped")
        return f"close {got}", short if texts else None, got == code and short, text


raw_frames_case("text frame with invalid UTF-8", lambda: frame(1, b'{"sample_rate": \xff\xfe}'), 1007,
                after_config=False)
raw_frames_case("frame header claiming 2^63-1 bytes", lambda: frame(2, b"", length=(1 << 63) - 1)[:10]
                + rnd(4), 1009, "close 1009 at once (nothing allocated)")
raw_frames_case("unmasked client frame", lambda: frame(2, b"\x00\x00", mask=False), 1002)
raw_frames_case("reserved opcode 3", lambda: frame(3, b"xx"), 1002)
raw_frames_case("RSV bits set", lambda: frame(2, b"\x00\x00", rsv=7), 1002)
raw_frames_case("continuation frame with no start", lambda: frame(0, b"\x00\x00"), 1002)
raw_frames_case("fragmented ping (control frame with fin=0)", lambda: frame(9, b"x", fin=False), 1002)
raw_frames_case("fragments adding up over 4x the limit", lambda: frame(2, b"\x00" * 200000, fin=False)
                + b"".join(frame(0, b"\x00" * 200000, fin=False) for _ in range(5)) + frame(0, b"", fin=True), 1009)
raw_frames_case("5000 pings, pongs never read", lambda: frame(9, b"p") * 5000 + frame(1, b"junk"), 1007,
                "the server keeps up, then the junk text: close 1007")
raw_frames_case("close frame with code 1005 (reserved)", lambda: frame(8, struct.pack(">H", 1005)), 1002)


def _http(request: bytes, timeout: float = 8) -> tuple[str, float]:
    """Send raw bytes, read until the server closes: (status line or what happened, seconds)."""
    s = raw_connect()
    t0 = time.monotonic()
    try:
        s.sendall(request)
    except OSError:
        pass
    data = b""
    s.settimeout(timeout)
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if len(data) > 1 << 20:
                break
    except socket.timeout:
        return "no close (timeout)", time.monotonic() - t0
    except OSError as e:
        data = data or f"reset ({e.__class__.__name__})".encode()
    finally:
        s.close()
    return (data.split(b"\r\n", 1)[0].decode(errors="replace") or "closed without a reply"), time.monotonic() - t0


def http_case(name: str, request: Callable[[], bytes], expect: str, want: Callable[[str], bool]):
    @server_case(name, expect)
    def fn(limit):
        status, secs = _http(request(), min(8, limit))
        return status[:60], None, "timeout" not in status and want(status), f"{secs:.2f} s"


_H = lambda extra="": (f"GET /health HTTP/1.1\r\nHost: x\r\n{extra}\r\n").encode()  # noqa: E731
http_case("GET /health", lambda: _H() + b"", "200", lambda s: " 200 " in s)
http_case("GET /health/?probe=1", lambda: b"GET /health/?probe=1 HTTP/1.1\r\nHost: x\r\n\r\n", "200",
          lambda s: " 200 " in s)
http_case("GET / without upgrade", lambda: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "4xx, closed",
          lambda s: s.startswith("HTTP/1.1 4"))
http_case("POST /health", lambda: b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
          "refused or closed, no hang", lambda s: True)
http_case("HTTP/1.0 request", lambda: b"GET /health HTTP/1.0\r\n\r\n", "answered or refused, no hang", lambda s: True)
http_case("100 KB header line", lambda: _H("X-Big: " + "a" * 100000 + "\r\n"), "refused (4xx or closed)",
          lambda s: " 200 " not in s)
http_case("1000 headers", lambda: _H("".join(f"X-{i}: y\r\n" for i in range(1000))), "refused (4xx or closed)",
          lambda s: " 200 " not in s)
http_case("64 KB of random bytes instead of HTTP", lambda: rnd(65536), "closed, no hang", lambda s: True)
http_case("request line of 1 MB", lambda: b"GET /" + b"a" * (1 << 20) + b" HTTP/1.1\r\n\r\n", "refused, no hang",
          lambda s: " 200 " not in s)
http_case("upgrade with a bad Sec-WebSocket-Key", lambda: (
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: xx\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"), "400", lambda s: " 400 " in s)
http_case("upgrade with WebSocket version 8", lambda: (
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
    + base64.b64encode(rnd(16)) + b"\r\nSec-WebSocket-Version: 8\r\n\r\n"), "4xx", lambda s: " 4" in s)


@server_case("half-open socket (connects, sends nothing)", "dropped within the handshake timeout (3 s) + 2 s")
def _(limit):
    status, secs = _http(b"", 8)
    return f"{status[:40]} after {secs:.1f} s", None, "timeout" not in status and secs < Server.IDLE + 2, ""


@server_case("slowloris: one header byte every 0.3 s", "dropped within the handshake timeout (3 s) + 2 s")
def _(limit):
    s = raw_connect()
    t0 = time.monotonic()
    request = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 100
    closed_at = None
    for b in request:
        try:
            s.sendall(bytes([b]))
            s.settimeout(0.3)
            if s.recv(4096) == b"":
                closed_at = time.monotonic() - t0
                break
        except socket.timeout:
            pass
        except OSError:
            closed_at = time.monotonic() - t0
            break
        if time.monotonic() - t0 > 10:
            break
    s.close()
    ok = closed_at is not None and closed_at < Server.IDLE + 2
    return (f"dropped after {closed_at:.1f} s" if closed_at else "still open after 10 s"), None, ok, ""


@server_case("60 silent sockets (cap: 8 + 16)", "over the cap closed at once; the rest within 3 s + 2 s; then healthy",
             timeout=40)
def _(limit):
    socks = []
    for _ in range(60):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", S.port))
        socks.append(s)
    t0 = time.monotonic()

    def closed(s):
        try:
            return s.recv(1) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True
    quick = 0
    while time.monotonic() - t0 < 1.5:
        quick = sum(map(closed, socks))
        time.sleep(0.1)
    while time.monotonic() - t0 < Server.IDLE + 3 and not all(map(closed, socks)):
        time.sleep(0.1)
    everyone = sum(map(closed, socks))
    for s in socks:
        s.close()
    return (f"{quick} closed in 1.5 s, {everyone} in {time.monotonic() - t0:.1f} s", None,
            quick >= 60 - 24 and everyone == 60, "")


# ---- asr client against the server and against bad servers -------------------------------------------------------
def client_case(name: str, args: Callable[[], list], rc, expect: str, max_lines: int = 1, timeout: float = 40):
    @server_case(name, expect, timeout)
    def fn(limit):
        p = asr("client", *map(str, args()), timeout=limit)
        row = cli_row(p, rc, max_lines)
        return row.got, row.one_line, row.result == "PASS", row.note


client_case("client: sanity --fast", lambda: ["--fast", "--url", S.url, D.short], 0, "exit 0, text", max_lines=0)
client_case("client: missing file", lambda: ["--fast", "--url", S.url, D.root / "nosuch.wav"], 1, "exit 1, one line")
client_case("client: 0-byte file", lambda: ["--fast", "--url", S.url, D.bytes("empty.wav", b"")], 1, "exit 1, one line")
client_case("client: hotword the server refuses", lambda: ["--fast", "--url", S.url, "--hotword", "a" * 65, D.short],
            1, "exit 1, the server's reason in one line")
client_case("client: no file and no --mic", lambda: ["--url", S.url], 2, "exit 2, one line")
client_case("client: --mic with a bad device", lambda: ["--mic", "--input", "9999", "--duration", "1", "--url", S.url],
            1, "exit 1, one line")
client_case("client: closed port", lambda: ["--fast", "--url", "ws://127.0.0.1:1", D.short], 1, "exit 1, one line")
client_case("client: URL not ws://", lambda: ["--fast", "--url", "http://127.0.0.1:1/", D.short], 1, "exit 1, one line")
client_case("client: URL garbage", lambda: ["--fast", "--url", "::not a url::", D.short], (1, 2), "exit 1/2, one line")
client_case("client: URL is /health (HTTP 200, no upgrade)", lambda: ["--fast", "--url", S.url + "/health", D.short],
            (0, 1), "exit 0/1, one line")


class FakeServer:
    """A TCP listener that misbehaves: 'silent' accepts and never answers, 'garbage' answers random bytes."""

    def __init__(self, mode: str):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.mode, self.conns = mode, []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        try:
            while True:
                c, _ = self.sock.accept()
                self.conns.append(c)
                if self.mode == "garbage":
                    c.sendall(rnd(4096))
                elif self.mode == "fake101":
                    c.recv(4096)
                    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n")
        except OSError:
            pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


for _mode, _expect in [("silent", "exit 1 within the open timeout, one line"), ("garbage", "exit 1, one line"),
                       ("fake101", "exit 1, one line (bad accept key)")]:
    @case("client", f"client: server that is {_mode}", _expect, timeout=40)
    def _(limit, mode=_mode):
        fake = FakeServer(mode)
        try:
            return cli_row(asr("client", "--fast", "--url", f"ws://127.0.0.1:{fake.port}", D.short, timeout=limit), 1)
        finally:
            fake.close()


# ---- serve with bad settings, and the drain on SIGTERM (last) ----------------------------------------------------
simple("serve", "serve --model random bytes", ["serve", "--port", "0", "--model",
                                               lazy(lambda: D.bytes("srv.onnx", rnd(3000)))], 1, timeout=30)
simple("serve", "serve --lm random bytes", ["serve", "--port", "0", "--lm", lazy(lambda: D.bytes(
    "srv.arpa", rnd(3000)))], 1, "exit 1, one line naming it", mention="srv.arpa", timeout=30)
simple("serve", "serve --host 999.1.1.1", ["serve", "--no-lm", "--port", "0", "--host", "999.1.1.1"], 1,
       "exit 1, one line naming the host", mention="999.1.1.1", timeout=30)
simple("serve", "serve --hotwords-file missing", ["serve", "--no-lm", "--port", "0", "--hotwords-file",
                                                  lazy(lambda: D.root / "nosuch.txt")], 1, timeout=30)
simple("serve", "serve on a port in use", ["serve", "--no-lm", "--port", lazy(lambda: S.port)], 1,
       "exit 1, one line (address in use)", timeout=30)


@case("serve", "SIGTERM while a client does not answer the close", "/health 503 while draining, new streams HTTP 503, "
      "the stream gets eof, exit 0, no traceback in the log", timeout=60)
def _(limit):
    S.ensure()
    t0 = time.monotonic()
    s = raw_ws()
    s.sendall(frame(1, CFG.encode()) + frame(2, D.pcm16(1.0)))
    time.sleep(0.5)
    S.proc.send_signal(signal.SIGTERM)
    seen_503 = new_stream = None
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and S.proc.poll() is None:
        code, h = S.health(2)
        if code == 503:
            seen_503 = h.get("status") if h else "503"
            _, new_stream = asyncio.run(ws_session([CFG]))
            break
        time.sleep(0.05)
    frames = read_frames(s, 15)  # never answers the close frame: the server must give up on its own
    eof = any(b'"eof"' in p for op, p in frames if op == 1)
    try:
        rc = S.proc.wait(45)
    except subprocess.TimeoutExpired:
        _kill_group(S.proc.pid)
        rc = None
    s.close()
    log = S.log_path.read_text(errors="replace")
    ok = seen_503 == "shutting-down" and new_stream == "HTTP 503" and eof and rc == 0 and TRACEBACK not in log
    return Row("", "", "", f"health {seen_503}, new stream {new_stream}, exit {rc}", TRACEBACK not in log, None,
               "PASS" if ok else "FAIL", f"eof {'sent' if eof else 'missing'}; restarts during the run: {S.restarts}",
               time.monotonic() - t0)


# ==== the run ====================================================================================================
def run_case(c: Case, limit: float) -> Row:
    t0 = time.monotonic()
    try:
        row = c.fn(limit)
    except Exception as e:  # the probe's own trouble (or a hang caught by wait_for): report it as the case's failure
        row = Row("", "", "", "probe error", None, None, "FAIL", f"{type(e).__name__}: {str(e)[:150]}",
                  time.monotonic() - t0)
    row.case, row.group, row.expect = c.name, c.group, c.expect
    if not row.seconds:
        row.seconds = time.monotonic() - t0
    # file names with newlines or escapes must not break the table (or the terminal)
    row.note = re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], " ".join(row.note.split()))
    return row


def table(rows: list[Row]) -> str:
    def mark(v):
        return "-" if v is None else ("yes" if v else "NO")
    head = ("group", "case", "got", "1-line", "kept/ok", "result", "s", "note")
    data = [(r.group, r.case, r.got, mark(r.one_line), mark(r.kept), r.result, f"{r.seconds:.1f}", r.note[:90])
            for r in rows]
    widths = [max(len(h), *(len(d[i]) for d in data)) if data else len(h) for i, h in enumerate(head)]
    widths[-1] = len(head[-1])
    fmt = "  ".join(f"{{:{w}}}" for w in widths)
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*d) for d in data]
    return "\n".join(line.rstrip() for line in out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout instead of the table")
    ap.add_argument("--only", help="run only cases whose group or name contains this")
    ap.add_argument("--budget", type=float, default=570, help="seconds for the whole run (default 570)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    args = ap.parse_args(argv)
    if not ASR.exists():
        print(f"probe: {ASR} not found (run ./setup.sh --dev)", file=sys.stderr)
        return 2
    global D, S
    tmp = Path(tempfile.mkdtemp(prefix="asr-probe-"))
    D = Data(tmp)
    S = Server(tmp)
    cases = [c for c in CASES if not args.only or args.only in c.group or args.only in c.name]
    # The server cases share one server: start it once, before the first of them.
    rows: list[Row] = []
    t_start = time.monotonic()
    try:
        for i, c in enumerate(cases, 1):
            left = args.budget - (time.monotonic() - t_start)
            if left < 5:
                row = Row(c.name, c.group, c.expect, "not run", None, None, "SKIP", "the run's time budget is spent")
            else:
                row = run_case(c, min(c.timeout, left))
            rows.append(row)
            print(f"[{i:3d}/{len(cases)}] {row.result:4s} {c.group}: {c.name} ({row.got}, {row.seconds:.1f} s)"
                  + (f" -- {row.note[:100]}" if row.result == "FAIL" else ""), file=sys.stderr, flush=True)
    finally:
        S.stop()
        for p in tmp.rglob("*"):  # the permission cases leave folders nobody (root included) can list
            if p.is_dir() and not p.is_symlink():
                p.chmod(stat.S_IRWXU)
        if args.keep:
            print(f"probe: data kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    ran = [r for r in rows if r.result != "SKIP"]
    passed = sum(r.result == "PASS" for r in ran)
    summary = (f"{len(rows)} cases, {passed} pass, {len(ran) - passed} fail, {len(rows) - len(ran)} skipped "
               f"in {time.monotonic() - t_start:.0f} s")
    if args.json:
        print(json.dumps({"summary": summary, "cases": len(rows), "pass": passed, "fail": len(ran) - passed,
                          "skipped": len(rows) - len(ran), "rows": [asdict(r) for r in rows]}, indent=1))
    else:
        print(table(rows))
        print(summary)
    return 0 if passed == len(ran) else 1


if __name__ == "__main__":
    sys.exit(main())
