"""Microphone capture (sounddevice callback thread -> bounded queue of 20 ms blocks) and `asr live`."""

from __future__ import annotations

import json
import queue
import signal
import sys
import time
from collections.abc import Iterator

import numpy as np

from .audio import Resampler

BLOCK_SECONDS = 0.02


class DeviceError(Exception):
    pass


def _sd():
    try:
        import sounddevice
    except OSError as e:  # PortAudio missing
        raise DeviceError(f"audio input unavailable: {e} (install libportaudio2)") from None
    return sounddevice


def input_devices() -> list[dict]:
    sd = _sd()
    default_in = sd.default.device[0]
    apis = sd.query_hostapis()
    return [{"index": i, "name": d["name"], "hostapi": apis[d["hostapi"]]["name"], "channels": d["max_input_channels"],
             "default_samplerate": d["default_samplerate"], "default": i == default_in}
            for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]


def list_devices() -> int:
    for d in input_devices():
        mark = "*" if d["default"] else " "
        print(f"{mark} {d['index']:3d}  {d['name']}  ({d['hostapi']}, {d['channels']} ch, {d['default_samplerate']:.0f} Hz)")
    return 0


def resolve_device(spec: str | None) -> int | None:
    """An index or a case-insensitive name substring -> device index (None: the default input)."""
    if spec is None:
        return None
    devices = input_devices()
    if spec.strip().isdigit():
        index = int(spec)
        if any(d["index"] == index for d in devices):
            return index
        raise DeviceError(f"no input device with index {index}; inputs: " + _names(devices))
    matches = [d for d in devices if spec.lower() in d["name"].lower()]
    if len(matches) == 1:
        return matches[0]["index"]
    if not matches:
        raise DeviceError(f"no input device matches {spec!r}; inputs: " + _names(devices))
    raise DeviceError(f"{spec!r} matches several input devices: " + _names(matches))


def _names(devices) -> str:
    return ", ".join(f"{d['index']}: {d['name']}" for d in devices) or "none"


class Microphone:
    """Captures one input at a rate it supports; blocks() yields 16 kHz mono float32 20 ms blocks.

    The callback never blocks: when the consumer falls behind, the oldest block is dropped and counted.
    """

    def __init__(self, device: int | None = None, sample_rate: int = 16000, max_queue_seconds: float = 10.0):
        self.sd = _sd()
        self.device, self.target_rate = device, sample_rate
        self.rate = self._pick_rate()
        self.queue: queue.Queue = queue.Queue(maxsize=int(max_queue_seconds / BLOCK_SECONDS))
        self.dropped_blocks = self.overflows = 0
        self._resample = Resampler(self.rate, sample_rate)
        self._stream = None

    def _pick_rate(self) -> int:
        try:
            self.sd.check_input_settings(device=self.device, channels=1, samplerate=self.target_rate, dtype="float32")
            return self.target_rate
        except Exception:
            return int(self.sd.query_devices(self.device, "input")["default_samplerate"])

    def _callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.overflows += 1
        block = indata[:, 0].copy()
        while True:
            try:
                self.queue.put_nowait(block)
                return
            except queue.Full:
                try:
                    self.queue.get_nowait()
                    self.dropped_blocks += 1
                except queue.Empty:
                    pass

    def __enter__(self) -> "Microphone":
        self._stream = self.sd.InputStream(device=self.device, channels=1, samplerate=self.rate, dtype="float32",
                                           blocksize=int(self.rate * BLOCK_SECONDS), callback=self._callback)
        self._stream.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()

    def blocks(self, timeout: float = 5.0) -> Iterator[np.ndarray]:
        while True:
            try:
                block = self.queue.get(timeout=timeout)
            except queue.Empty:
                raise DeviceError("no audio from the input device (disconnected?)") from None
            out = self._resample(block)
            if len(out):
                yield out

    @property
    def dropped_seconds(self) -> float:
        return self.dropped_blocks * BLOCK_SECONDS


def microphone_results(recognizer, device: str | None = None) -> Iterator:
    """Library use: partial and final Results from a microphone, until the caller stops iterating."""
    stream = recognizer.stream()
    with Microphone(resolve_device(device), recognizer.sample_rate) as mic:
        for block in mic.blocks():
            yield from stream.accept(block)


class Display:
    """Terminal: partial rewritten in place, finals as lines. Otherwise: one JSON object per line."""

    def __init__(self, out=sys.stdout, timestamps: bool = False):
        self.out, self.timestamps, self.tty = out, timestamps, out.isatty()

    def show(self, result) -> None:
        if not self.tty:
            self.out.write(json.dumps(result.to_dict()) + "\n")
        elif result.final:
            stamp = f"[{result.start:7.2f} - {result.end:7.2f}] " if self.timestamps else ""
            self.out.write(f"\r\033[K{stamp}{result.text}\n")
        else:
            self.out.write(f"\r\033[K{result.text[-(_width() - 1):]}")
        self.out.flush()


def _width() -> int:
    import shutil

    return shutil.get_terminal_size((100, 20)).columns


def run_live(recognizer, args) -> int:
    try:
        device = resolve_device(args.input_device)
        mic = Microphone(device, recognizer.sample_rate)
    except DeviceError as e:
        print(f"asr: {e}", file=sys.stderr)
        return 1
    display = Display(timestamps=args.timestamps)
    stream = recognizer.stream()
    # SIGINT (even when a launcher ignored it) and SIGTERM end the session like Ctrl+C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    segments, started, status = 0, time.monotonic(), 0
    try:
        with mic:
            print(f"asr: listening ({mic.rate} Hz); Ctrl+C to stop", file=sys.stderr)
            for block in mic.blocks():
                for r in stream.accept(block):
                    display.show(r)
                    segments += r.final
                if args.duration and stream.time >= args.duration:
                    break
    except KeyboardInterrupt:
        pass
    except DeviceError as e:
        print(f"\nasr: {e}", file=sys.stderr)
        status = 1
    for r in stream.finish():
        display.show(r)
        segments += 1
    print(f"asr: {stream.time:.1f} s of audio, {segments} segments, {mic.dropped_seconds:.2f} s dropped, "
          f"{mic.overflows} input overflows, {time.monotonic() - started:.1f} s wall", file=sys.stderr)
    return status
