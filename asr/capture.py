"""Microphone capture: a sounddevice callback thread hands 20 ms blocks to a bounded queue.

The callback never blocks and never allocates much: when the consumer falls behind, the oldest block
is dropped and counted, so memory stays bounded and the newest audio is always recognised.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .audio import Resampler
from .messages import first_line

RATE = 16000  # the sample rate the live path carries: microphone, client, server
BLOCK_SECONDS = 0.02  # a microphone block; the client sends real-time audio in blocks of this size too


class DeviceError(Exception):
    """An input device problem, phrased for users in one line."""


def _sd():
    try:
        import sounddevice
    except OSError as e:  # the PortAudio library is missing
        raise DeviceError(f"audio input unavailable: {e} (install libportaudio2)") from None
    return sounddevice


def input_devices() -> list[dict]:
    sd = _sd()
    default_in = sd.default.device[0]
    apis = sd.query_hostapis()
    return [{"index": i, "name": d["name"], "hostapi": apis[d["hostapi"]]["name"], "channels": d["max_input_channels"],
             "default_samplerate": d["default_samplerate"], "default": i == default_in}
            for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]


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


@dataclass
class Block:
    samples: np.ndarray  # float32 mono at the target rate
    captured_at: float  # time.monotonic() when the callback received it


class Microphone:
    """Opens one input at a rate it supports; blocks() yields target-rate mono Blocks."""

    def __init__(self, device: int | None = None, sample_rate: int = RATE, max_queue_seconds: float = 10.0):
        self.sd = _sd()
        self.device, self.target_rate = device, sample_rate
        self.rate = self._pick_rate()
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, int(max_queue_seconds / BLOCK_SECONDS)))
        self.dropped_blocks = self.overflows = 0
        self._resample = Resampler(self.rate, sample_rate)
        self._stream = None

    def _pick_rate(self) -> int:
        try:
            self.sd.check_input_settings(device=self.device, channels=1, samplerate=self.target_rate, dtype="float32")
            return self.target_rate
        except Exception:
            pass
        try:
            return int(self.sd.query_devices(self.device, "input")["default_samplerate"])
        except Exception as e:
            raise DeviceError(f"no usable input device ({first_line(e)})") from None

    def _callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.overflows += 1
        item = (indata[:, 0].copy(), time.monotonic())
        while True:
            try:
                self.queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    self.queue.get_nowait()
                    self.dropped_blocks += 1
                except queue.Empty:
                    pass

    def __enter__(self) -> "Microphone":
        try:
            self._stream = self.sd.InputStream(device=self.device, channels=1, samplerate=self.rate, dtype="float32",
                                               blocksize=int(self.rate * BLOCK_SECONDS), callback=self._callback)
            self._stream.start()
        except Exception as e:
            raise DeviceError(f"cannot open the input device: {first_line(e)}") from None
        return self

    def __exit__(self, *exc) -> None:
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            except Exception:  # the device may already be gone; nothing left to release
                pass

    def blocks(self, timeout: float = 5.0) -> Iterator[Block]:
        while True:
            try:
                samples, captured_at = self.queue.get(timeout=timeout)
            except queue.Empty:
                raise DeviceError(f"no audio from the input device for {timeout:.0f} s (disconnected?)") from None
            out = self._resample(samples)
            if len(out):
                yield Block(out, captured_at)

    @property
    def dropped_seconds(self) -> float:
        return self.dropped_blocks * BLOCK_SECONDS
