"""`asr live`: microphone -> Stream -> terminal / JSON lines / files, for hours at a time."""

from __future__ import annotations

import json
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from .capture import BLOCK_SECONDS, DeviceError, Microphone, input_devices, resolve_device

SILENCE_WARNING_SECONDS = 3.0


def list_devices(devices: list[dict] | None = None) -> int:
    """`asr devices`: one line per input (devices: input_devices() unless given); 1 when there is none to use."""
    try:
        devices = input_devices() if devices is None else devices
    except DeviceError as e:
        print(f"asr: {e}", file=sys.stderr)
        return 1
    if not devices:
        print("asr: no audio input devices found (no microphone, or no sound server running)", file=sys.stderr)
        return 1
    for d in devices:
        mark = "*" if d["default"] else " "
        print(f"{mark} {d['index']:3d}  {d['name']}  ({d['hostapi']}, {d['channels']} ch, {d['default_samplerate']:.0f} Hz)")
    return 0


def microphone_results(recognizer, device: str | None = None) -> Iterator:
    """Library use: partial and final Results from a microphone until the caller stops iterating."""
    stream = recognizer.stream()
    with Microphone(resolve_device(device), recognizer.sample_rate) as mic:
        for block in mic.blocks():
            yield from stream.accept(block.samples)


class Display:
    """Terminal: the partial is updated in place (only its changed tail is redrawn) and each final becomes a
    line. Not a terminal: one JSON object per result and line."""

    def __init__(self, out=None, timestamps: bool = False, meter: bool = False):
        # sys.stdout looked up now, not at import: it may have been replaced since (tests, embedding apps)
        self.out, self.timestamps, self.meter = out or sys.stdout, timestamps, meter
        self.tty = self.out.isatty()
        self._shown = ""  # what the partial line shows now
        self._level = ""

    def show(self, result) -> None:
        if not self.tty:
            self.out.write(json.dumps(result.to_dict()) + "\n")
        elif result.final:
            stamp = f"[{_clock(result.start)} - {_clock(result.end)}] " if self.timestamps else ""
            self.out.write(f"\r\033[K{stamp}{result.text}\n")
            self._shown = ""
        else:
            self._redraw(self._level + result.text)
        self.out.flush()

    def level(self, samples: np.ndarray) -> None:
        if not (self.tty and self.meter):
            return
        db = 20 * np.log10(np.sqrt(np.mean(samples**2)) + 1e-9)
        bars = int(np.clip((db + 60) / 6, 0, 10))
        level = "[" + "#" * bars + " " * (10 - bars) + "] "
        if level != self._level:
            self._redraw(level + self._shown[len(self._level):])
            self._level = level
            self.out.flush()

    def _redraw(self, text: str) -> None:
        width = shutil.get_terminal_size((100, 20)).columns - 1
        text = text if len(text) <= width else "…" + text[-(width - 1):]
        common = 0
        while common < min(len(text), len(self._shown)) and text[common] == self._shown[common]:
            common += 1
        back = len(self._shown) - common
        # Stable words stay on screen untouched: move back over the changed tail only.
        self.out.write("\b" * back + text[common:] + ("\033[K" if back else ""))
        self._shown = text


def _clock(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    h, m = divmod(int(m), 60)
    return f"{h:d}:{m:02d}:{s:05.2f}" if h else f"{m:02d}:{s:05.2f}"


class FinalsFile:
    """--output: finals appended as text lines, or JSON lines for .jsonl/.json, flushed per segment."""

    def __init__(self, path: str, timestamps: bool):
        self.jsonl = path.endswith((".jsonl", ".json"))
        self.timestamps = timestamps
        self.f = open(path, "a", encoding="utf-8")

    def write(self, result) -> None:
        if self.jsonl:
            self.f.write(json.dumps(result.to_dict()) + "\n")
        else:
            stamp = f"[{_clock(result.start)} - {_clock(result.end)}] " if self.timestamps else ""
            self.f.write(f"{stamp}{result.text}\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()


class LiveSession:
    """Everything one `asr live` run keeps across device reconnects: stream, outputs, counters."""

    def __init__(self, recognizer, args):
        self.stream = recognizer.stream()
        self.rate = recognizer.sample_rate
        self.display = Display(timestamps=args.timestamps, meter=args.meter)
        self.finals = FinalsFile(args.output, args.timestamps) if args.output else None
        self.audio = None
        if args.save_audio:
            import soundfile as sf

            try:
                self.audio = sf.SoundFile(args.save_audio, "w", samplerate=recognizer.sample_rate, channels=1,
                                          format="WAV", subtype="PCM_16")
            except (sf.LibsndfileError, OSError) as e:
                raise ValueError(f"--save-audio {args.save_audio}: cannot write it ({str(e).splitlines()[0][:80]})") from None
        self.segments = self.dropped_blocks = self.overflows = 0
        self.zero_seconds, self.warned_silent = 0.0, False

    def feed(self, samples: np.ndarray) -> None:
        if self.audio is not None:
            self.audio.write(samples)
        self._check_silent(samples)
        self.display.level(samples)
        for result in self.stream.accept(samples):
            self._emit(result)

    def _check_silent(self, samples: np.ndarray) -> None:
        self.zero_seconds = self.zero_seconds + len(samples) / self.rate if not np.any(samples) else 0.0
        if self.zero_seconds >= SILENCE_WARNING_SECONDS and not self.warned_silent:
            self.warned_silent = True
            print("\nasr: the input has been pure digital silence for 3 s: is the microphone muted, or (macOS) "
                  "does this terminal lack microphone permission?", file=sys.stderr)

    def _emit(self, result) -> None:
        if not result.final:
            self.display.show(result)
            return
        with _signals_held():
            self.segments += 1
            if self.finals is not None:
                self.finals.write(result)
            self.display.show(result)

    def close(self) -> None:
        for result in self.stream.finish():
            self._emit(result)
        if self.finals is not None:
            self.finals.close()
        if self.audio is not None:
            self.audio.close()


@contextmanager
def _signals_held():
    """Ctrl+C or SIGTERM inside the block is raised when it ends: a final is saved and shown, never half of it.
    Only the main thread receives signals (and may set handlers); elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = [signal.signal(s, lambda signum, frame: caught.append(signum)) for s in held]
    try:
        yield
    finally:
        for s, handler in zip(held, previous):
            signal.signal(s, handler)
        if caught:
            raise KeyboardInterrupt


def run_live(recognizer, args) -> int:
    try:
        device = resolve_device(args.input_device)
        session = LiveSession(recognizer, args)
    except (DeviceError, OSError) as e:
        print(f"asr: {e}", file=sys.stderr)
        return 1
    # SIGINT (even when a launcher ignored it) and SIGTERM end the session like Ctrl+C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started, waiting = time.monotonic(), False
    try:
        while True:
            try:
                with Microphone(device, recognizer.sample_rate, args.max_queue) as mic:
                    print(f"asr: listening ({mic.rate} Hz); Ctrl+C to stop", file=sys.stderr)
                    waiting = False
                    try:
                        for block in mic.blocks():
                            session.feed(block.samples)
                            if args.duration and session.stream.time >= args.duration:
                                return 0
                    finally:
                        session.dropped_blocks += mic.dropped_blocks
                        session.overflows += mic.overflows
            except DeviceError as e:
                if not args.reconnect:
                    print(f"\nasr: {e}", file=sys.stderr)
                    return 1
                if not waiting:
                    print(f"\nasr: {e}; waiting for the device to return (Ctrl+C to stop)", file=sys.stderr)
                    waiting = True
                time.sleep(1.0)
                _reinit_portaudio()
    except KeyboardInterrupt:
        return 0
    finally:
        session.close()
        print(f"asr: {session.stream.time:.1f} s of audio, {session.segments} segments, "
              f"{session.dropped_blocks * BLOCK_SECONDS:.2f} s dropped, {session.overflows} input overflows, "
              f"{time.monotonic() - started:.1f} s wall", file=sys.stderr)


def _reinit_portaudio() -> None:
    """PortAudio only sees devices that appeared after it started once it is re-initialised."""
    import sounddevice as sd

    sd._terminate()
    sd._initialize()
