"""`asr client`: stream a file or the microphone to `asr serve` and print the results.

From Python it is also a load generator: `await stream_file(url, path)` (or `stream_samples`, `stream_blocks`)
streams one audio stream and returns a ClientReport with every result and the latency of every partial.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import signal
import sys
import threading
import time
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .capture import BLOCK_SECONDS, RATE  # real time: blocks as a microphone delivers them
FAST_BLOCK_SECONDS = 0.5  # --fast: larger blocks, sent as fast as the server takes them


@dataclass
class ClientReport:
    results: list[dict] = field(default_factory=list)  # the server's partial and final messages, in order
    latencies: list[float] = field(default_factory=list)  # per partial: seconds from sending its end to receiving it
    audio_seconds: float = 0.0
    first_result_s: float | None = None  # from the connection opening to the first result
    send_lag_s: float = 0.0  # how far sending fell behind real time at worst (the server pushing back)
    eof_wait_s: float | None = None  # from sending eof to the server's eof
    error: str | None = None  # the server's error message, or why the connection failed

    @property
    def finals(self) -> list[dict]:
        return [r for r in self.results if r["type"] == "final"]

    @property
    def text(self) -> str:
        return " ".join(r["text"] for r in self.finals)


def pcm16(samples: np.ndarray) -> bytes:
    """float32 in [-1, 1] -> little-endian 16-bit PCM (exact for audio that came from 16-bit files)."""
    return np.clip(np.rint(np.asarray(samples, np.float32) * 32768.0), -32768, 32767).astype("<i2").tobytes()


def rechunk(blocks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Blocks of any length -> blocks of exactly `size` samples (the last one shorter)."""
    buf = np.zeros(0, np.float32)
    for block in blocks:
        buf = np.concatenate([buf, block]) if len(buf) else block
        while len(buf) >= size:
            yield buf[:size]
            buf = buf[size:]
    if len(buf):
        yield buf


async def stream_blocks(url: str, blocks: Iterable[np.ndarray] | AsyncIterable[np.ndarray], realtime: bool = True,
                        on_result: Callable[[dict], None] | None = None, stop: asyncio.Event | None = None,
                        open_timeout: float = 10.0, hotwords: list[str] | None = None, lm: bool = True) -> ClientReport:
    """Stream float32 16 kHz blocks; with realtime, each is sent when its last sample would have been captured.

    hotwords ("word" or "word:bonus") are boosted for this stream only; lm=False asks for decoding without the
    server's LM."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    report = ClientReport()
    sent_end: list[float] = []  # per block sent: stream seconds where it ends
    sent_at: list[float] = []  # and when it was sent
    eof_at: list[float] = []
    try:
        ws = await connect(url, open_timeout=open_timeout, compression=None, max_size=None)
    except Exception as e:  # OSError, timeouts, websockets' InvalidHandshake, InvalidURI, ...
        report.error = f"cannot connect to {url}: {e}"
        return report
    opened = time.monotonic()

    async def send() -> None:
        try:
            await _send()
        except ConnectionClosed:
            pass
        except Exception as e:  # the audio source failed (AudioError, DeviceError): end the connection
            report.error = str(e) or type(e).__name__
            await ws.close()

    async def _send() -> None:
        await ws.send(json.dumps({"sample_rate": RATE, **({"hotwords": hotwords} if hotwords else {}),
                                  **({} if lm else {"lm": False})}))
        t0, pos = time.monotonic(), 0
        async for block in _aiter(blocks):
            if stop is not None and stop.is_set():
                break
            pos += len(block)
            if realtime:
                delay = t0 + pos / RATE - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    report.send_lag_s = max(report.send_lag_s, -delay)
            await ws.send(pcm16(block))
            sent_end.append(pos / RATE)
            sent_at.append(time.monotonic())
        report.audio_seconds = pos / RATE
        await ws.send(json.dumps({"eof": 1}))
        eof_at.append(time.monotonic())

    sender = asyncio.create_task(send())
    got_eof = False
    try:
        async for msg in ws:
            now = time.monotonic()
            d = json.loads(msg)
            kind = d.get("type")
            if kind == "eof":
                got_eof = True
                if eof_at:
                    report.eof_wait_s = now - eof_at[0]
                break
            if kind == "error":
                report.error = "server: " + d.get("error", "error")
                break
            report.results.append(d)
            if report.first_result_s is None:
                report.first_result_s = now - opened
            if kind == "partial":
                i = bisect.bisect_left(sent_end, d["end"] - 1e-6)
                if i < len(sent_at):
                    report.latencies.append(now - sent_at[i])
            if on_result is not None:
                on_result(d)
    except ConnectionClosed:
        pass
    finally:
        if not sender.done():
            sender.cancel()
        try:
            await sender
        except (asyncio.CancelledError, ConnectionClosed):
            pass
        await ws.close()
    if not got_eof and report.error is None:
        report.error = f"connection closed before eof (code {ws.close_code}{', ' + ws.close_reason if ws.close_reason else ''})"
    return report


async def _aiter(blocks):
    if hasattr(blocks, "__aiter__"):
        async for b in blocks:
            yield b
    else:
        for b in blocks:
            yield b


async def stream_samples(url: str, samples: np.ndarray, realtime: bool = True, block_seconds: float | None = None,
                         **kw) -> ClientReport:
    """One in-memory 16 kHz signal as one stream (the benchmark's load generator)."""
    size = int(RATE * (block_seconds or (BLOCK_SECONDS if realtime else FAST_BLOCK_SECONDS)))
    return await stream_blocks(url, (samples[i : i + size] for i in range(0, len(samples), size)), realtime, **kw)


async def stream_file(url: str, path: str, realtime: bool = True, block_seconds: float | None = None,
                      **kw) -> ClientReport:
    """One audio file (any format and rate `asr transcribe` reads), read block by block, as one stream."""
    from .audio import read_blocks

    size = int(RATE * (block_seconds or (BLOCK_SECONDS if realtime else FAST_BLOCK_SECONDS)))
    return await stream_blocks(url, rechunk(read_blocks(path, RATE), size), realtime, **kw)


async def _mic_blocks(device, stop: asyncio.Event, duration: float):
    """Microphone blocks from its capture thread, until stop is set or duration seconds were captured."""
    from .capture import Microphone

    loop = asyncio.get_running_loop()
    q: asyncio.Queue = asyncio.Queue()
    quit_thread = threading.Event()

    def capture() -> None:
        try:
            with Microphone(device, RATE) as mic:
                print(f"asr: listening ({mic.rate} Hz); Ctrl+C to stop", file=sys.stderr)
                for block in mic.blocks():
                    loop.call_soon_threadsafe(q.put_nowait, block.samples)
                    if quit_thread.is_set():
                        break
        except Exception as e:  # DeviceError: reported by the consumer
            loop.call_soon_threadsafe(q.put_nowait, e)
        loop.call_soon_threadsafe(q.put_nowait, None)

    threading.Thread(target=capture, daemon=True).start()
    seconds = 0.0
    try:
        while not stop.is_set():
            getter = asyncio.ensure_future(q.get())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait([getter, stopper], return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not getter.done():
                getter.cancel()
                break
            item = getter.result()
            if item is None:
                break
            if isinstance(item, Exception):
                raise item
            yield item
            seconds += len(item) / RATE
            if duration and seconds >= duration:
                break
    finally:
        quit_thread.set()


def run_client(args) -> int:
    from .capture import DeviceError, resolve_device
    from .display import Display
    from .results import Result

    if bool(args.file) == bool(args.mic):
        print("asr: client: give one audio FILE or --mic", file=sys.stderr)
        return 2
    display = Display()

    def show(d: dict) -> None:
        display.show(Result.from_dict(d))

    async def main() -> ClientReport:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # end the audio early: the server still sends the finals
            loop.add_signal_handler(sig, stop.set)
        if args.mic:
            blocks = _mic_blocks(resolve_device(args.input_device), stop, args.duration)
            return await stream_blocks(args.url, blocks, realtime=False, on_result=show, stop=stop,
                                       hotwords=args.hotword, lm=not args.no_lm)
        return await stream_file(args.url, args.file, realtime=args.realtime, on_result=show, stop=stop,
                                 hotwords=args.hotword, lm=not args.no_lm)

    try:
        report = asyncio.run(main())
    except DeviceError as e:
        print(f"asr: {e}", file=sys.stderr)
        return 1
    if report.error:
        print(f"asr: {report.error}", file=sys.stderr)
        return 1
    return 0
