"""`asr live`: microphone -> Stream -> terminal / JSON lines / files, for hours at a time."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from .capture import BLOCK_SECONDS, DeviceError, Microphone, input_devices, resolve_device
from .display import Display
from .messages import first_line
from .writers import line_format

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


class FinalsFile:
    """--output: finals appended as lines of the format its name says (writers.line_format: JSON lines for
    .jsonl/.json, else text), flushed per segment."""

    def __init__(self, path: str, timestamps: bool):
        self.line = line_format(path).line
        self.timestamps = timestamps
        self.f = open(path, "a", encoding="utf-8")

    def write(self, result) -> None:
        self.f.write(self.line(result, self.timestamps) + "\n")
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
                raise ValueError(f"--save-audio {args.save_audio}: cannot write it ({first_line(e)[:80]})") from None
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
