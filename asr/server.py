"""`asr serve`: a WebSocket server where many concurrent streams share one Recognizer.

Protocol (one audio stream per connection):
  client -> {"sample_rate": 16000, "hotwords": ["word", "word:bonus"], "lm": true}   first message, text (JSON);
                                             hotwords optional; "lm": false decodes this stream without the LM
  client -> binary messages                  little-endian PCM16 mono at that rate, any length (even byte count)
  client -> {"eof": 1}                       text: end of audio
  server -> {"type": "partial"|"final", "text", "start", "end", "words": [...]}   as results appear
  server -> {"type": "eof"}                  after the last final; then the server closes the connection
  server -> {"type": "error", "error": "..."}  a rejected connection or message; then the server closes

One worker thread owns every Stream and the model: each round it hands the audio that arrived to
Recognizer.step_streams, which advances every stream that has a chunk ready by one chunk in one batched model call
(results go out as the writers' JSON lines). The event
loop only moves bytes, so it stays responsive however busy the model is. GET /health answers with JSON;
GET / serves the live-captions page (asr/webpage.py).
The /vosk path speaks the Vosk server's dialect instead (asr/vosk.py), on the same worker, and so does a
connection to / whose first message is Vosk's {"config": ...}.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import math
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .messages import clip
from .webpage import page_response, respond, route
from .writers import json_line

log = logging.getLogger("asr.server")

MIN_RATE, MAX_RATE = 8000, 192000
MAX_QUEUED_PARTIALS = 64  # results waiting to be sent to one client, beyond which its partials are skipped
MAX_QUEUED_RESULTS = 4096  # beyond which the connection is closed
MAX_ERROR_CHARS = 300  # error replies quote client input: keep them short and on one line
FD_RESERVE = 16  # file descriptors kept free for everything but connections (logs, /proc, libraries)
LOG_INTERVAL = 10.0  # seconds between two reports of the same resource problem


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 2700  # 0: any free port (the one chosen is printed on stderr)
    max_clients: int = 64
    max_message_bytes: int = 1 << 20  # larger messages are answered with an error
    idle_timeout: float = 30.0  # seconds without a message from the client
    max_backlog_seconds: float = 10.0  # audio received but not yet recognised before reading pauses (backpressure)
    shutdown_timeout: float = 30.0  # seconds to finalise open streams on SIGTERM/SIGINT
    handshake_timeout: float = 10.0  # seconds from TCP accept to an open WebSocket (capped by idle_timeout)
    extra_connections: int = 16  # TCP connections beyond max_clients (handshakes, /health, refusals); more: closed

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Refuse values that cannot work (ValueError naming the field), so the API is as safe as the command."""
        def whole(name, lo, hi=None):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
                raise ValueError(f"server {name} must be a whole number "
                                 f"{f'from {lo} to {hi}' if hi is not None else f'of at least {lo}'} (got {v!r})")

        def seconds(name, zero_ok=False):
            v = getattr(self, name)
            ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and (v >= 0 if zero_ok
                                                                                                   else v > 0)
            if not ok:
                raise ValueError(f"server {name} must be a finite number of seconds "
                                 f"{'of at least 0' if zero_ok else 'above 0'} (got {v!r})")

        if not isinstance(self.host, str):
            raise ValueError(f"server host must be a string (got {self.host!r})")
        whole("port", 0, 65535)
        whole("max_clients", 1)
        whole("max_message_bytes", 1024)
        whole("extra_connections", 1)
        for name in ("idle_timeout", "max_backlog_seconds", "handshake_timeout"):
            seconds(name)
        seconds("shutdown_timeout", zero_ok=True)


class _Throttled:
    """Report a recurring problem at most once per LOG_INTERVAL, counting the occurrences in between: under a
    flood, a line per event would fill the disk and starve the event loop."""

    def __init__(self, describe):
        self.describe, self.count, self.last = describe, 0, -math.inf

    def __call__(self, *args) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.last >= LOG_INTERVAL:
            log.warning("%s", self.describe(self.count, *args))
            self.count, self.last = 0, now


def _fd_room() -> int | None:
    """File descriptors still free under the soft RLIMIT_NOFILE (None where that cannot be known)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        used = len(os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"))
    except (ImportError, OSError):
        return None
    return None if soft == resource.RLIM_INFINITY else soft - used


class Rejected(Exception):
    """A client error: sent as {"type": "error"} and the connection is closed with `code`."""

    def __init__(self, message: str, code: int = 1008):
        super().__init__(message)
        self.code = code


class _Error(str):
    """An internal error to report to the client in place of its next result (the connection then closes)."""


@dataclass
class _Job:
    session: "Session"
    audio: list  # int16 arrays at the client's rate, in order
    flush: bool  # end of audio reached now: flush the resampler
    eof: bool  # end of audio has been handed over (now or earlier): finish when no chunk is left


@dataclass(eq=False)
class Session:
    """One connection's audio stream. The event loop owns the queues; the worker thread owns stream/resampler."""

    ws: object
    rate: int = 0
    stream: object = None
    resampler: object = None
    pending: list = field(default_factory=list)
    pending_samples: int = 0
    eof: bool = False  # the client said eof, or the server is shutting down
    eof_sent: bool = False  # the worker knows
    active: bool = False  # the worker may have a ready chunk for this stream
    done: bool = False
    dropped: bool = False
    backlog: float = 0.0  # seconds of audio received but not yet recognised
    received: int = 0  # samples received
    chunks_due: int = 0  # model chunks that the audio handed to the worker completes
    outq: asyncio.Queue = field(default_factory=asyncio.Queue)
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task | None = None
    sender: asyncio.Task | None = None
    closer: asyncio.Task | None = None
    encode: object = json_line  # a Result -> what goes on outq (the Vosk dialect keeps the Result itself)
    want_sync: bool = False  # the reader waits for every chunk received so far to be recognised...
    synced: asyncio.Event = field(default_factory=asyncio.Event)  # ...and this says they are

    def __post_init__(self):
        self.drained.set()


class Server:
    def __init__(self, recognizer, config: ServerConfig | None = None):
        self.rec = recognizer
        self.config = config or ServerConfig()
        self.config.validate()  # fields may have been changed since construction
        self.connections: set = set()  # every open TCP connection, handshake or not
        self.max_connections = self.config.max_clients + self.config.extra_connections
        self.clients: set[Session] = set()  # every handled connection
        self.sessions: set[Session] = set()  # those streaming audio
        self.closing = False
        self.started = time.monotonic()
        self.streams_total = 0
        self.audio_seconds = 0.0
        self.rounds = self.batched_chunks = 0
        self.port: int | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr-model")
        self._wake: asyncio.Event | None = None
        self._previous_handler = None
        self._accept_failed = _Throttled(lambda n, exc: (
            f"cannot accept connections: {exc.strerror}; raise the open file limit (ulimit -n) or lower "
            f"--max-clients ({n} failure(s) since the last report)"))
        self._refused = _Throttled(lambda n: (
            f"closing new connections unanswered: {self.max_connections} TCP connections are open, the most allowed "
            f"({n} closed since the last report)"))

    # ---- health -------------------------------------------------------------------------------------------------
    def health(self) -> dict:
        return {"status": "shutting-down" if self.closing else "ok", "clients": len(self.clients),
                "streams": len(self.sessions), "max_clients": self.config.max_clients,
                "connections": len(self.connections), "max_connections": self.max_connections,
                "streams_total": self.streams_total,
                "audio_seconds": round(self.audio_seconds, 3), "model": self.rec.model.path,
                "providers": self.rec.model.providers, "sample_rate": self.rec.sample_rate,
                "model_calls": self.rounds, "chunks": self.batched_chunks,
                "mean_batch": round(self.batched_chunks / self.rounds, 2) if self.rounds else 0.0,
                "uptime_s": round(time.monotonic() - self.started, 1)}

    def _process_request(self, connection, request):
        if (page := page_response(connection, request)) is not None:  # the captions page, also while draining
            return page
        if route(request) == "/health":
            return respond(connection, 503 if self.closing else 200, json.dumps(self.health()) + "\n",
                           "application/json")
        if self.closing:  # the listener stays open while streams finalise, for /health; no new streams
            return connection.respond(503, "server is shutting down\n")
        return None

    def _connection_limits(self) -> tuple[int, int]:
        """(most TCP connections at once, listen backlog). A socket accepted beyond the first is closed at once,
        but asyncio accepts up to `backlog` sockets before any is seen, so both must fit the descriptors left
        under the open file limit: accept() then never fails however many sockets arrive."""
        c = self.config
        want = c.max_clients + c.extra_connections
        room = _fd_room()
        if room is None:
            return want, 100
        budget = room - FD_RESERVE
        backlog = min(100, max(8, budget - want))  # asyncio's default is 100
        cap = min(want, max(1, budget - backlog))
        if cap < want:
            print(f"asr: warning: the open file limit (ulimit -n) leaves room for {cap} connections, fewer than "
                  f"--max-clients {c.max_clients} + {c.extra_connections}", file=sys.stderr, flush=True)
        return cap, backlog

    def _loop_exception(self, loop, context) -> None:
        exc = context.get("exception")
        if (isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
                and "accept" in context.get("message", "")):
            # asyncio reports each failed accept() with a traceback, many per second while descriptors run out
            self._accept_failed(exc)
        elif self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    # ---- serving ------------------------------------------------------------------------------------------------
    async def serve(self, stop: asyncio.Future | None = None, ready=None) -> None:
        """Serve until `stop` completes (or SIGTERM/SIGINT when stop is None); then finalise open streams."""
        from websockets.asyncio.server import serve

        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if stop is None:
            stop = loop.create_future()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        c = self.config
        self.max_connections, backlog = self._connection_limits()
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_exception)
        # The WebSocket layer cuts off (close code 1009) what is far beyond the limit without buffering it;
        # messages up to 4x the limit are read and answered with an error message. A connection that has not
        # finished its handshake in time is dropped, so silent sockets cannot hold descriptors for long.
        try:
            server = await serve(self._handle, c.host, c.port, process_request=self._process_request,
                                 max_size=4 * c.max_message_bytes, compression=None, server_header=None,
                                 open_timeout=min(c.handshake_timeout, c.idle_timeout), backlog=backlog,
                                 create_connection=_counted_connection(self))
        except OSError as e:  # a bad --host (name not found) or a port in use
            raise OSError(f"cannot listen on {c.host}:{c.port}: {e.strerror or e}") from None
        batcher = asyncio.create_task(self._batch_loop())
        self.port = server.sockets[0].getsockname()[1]
        print(f"asr: serving on ws://{c.host}:{self.port} (model {self.rec.model.path}, "
              f"{', '.join(self.rec.model.providers)}, at most {c.max_clients} clients)", file=sys.stderr, flush=True)
        print(f"asr: live captions page: http://{_url_host(c.host)}:{self.port}/", file=sys.stderr, flush=True)
        if ready is not None:
            ready(self)
        try:
            await stop
        finally:
            try:
                await self._shutdown(server)
            finally:
                batcher.cancel()
                self._executor.shutdown(wait=True)
                loop.set_exception_handler(self._previous_handler)

    async def _shutdown(self, server) -> None:
        self.closing = True
        print(f"asr: shutting down; finalising {len(self.sessions)} open streams", file=sys.stderr, flush=True)
        for s in list(self.clients):
            if s.reader is not None:
                s.reader.cancel()  # the handler then finalises the stream: its finals, eof, close
        # The listener stays open meanwhile: /health answers 503 "shutting-down", new streams get HTTP 503.
        deadline = time.monotonic() + self.config.shutdown_timeout
        while self.clients and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for s in list(self.clients):
            await s.ws.close(1001, "server shutting down")
        server.close()
        try:
            await asyncio.wait_for(server.wait_closed(), 10)
        except asyncio.TimeoutError:
            log.warning("connections still open at exit: %d", len(self.connections))

    async def _handle(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        if self.closing:
            return await _reject(ws, "server is shutting down", 1001)
        if len(self.clients) >= self.config.max_clients:
            return await _reject(ws, f"server full ({self.config.max_clients} clients); try again later", 1013)
        s = Session(ws)
        self.clients.add(s)
        try:
            if _path(ws) == "/vosk":
                from .vosk import read_vosk

                s.reader = asyncio.create_task(read_vosk(self, s))
            else:
                s.reader = asyncio.create_task(self._read(s))
            await asyncio.wait([s.reader])
            if not s.reader.cancelled() and s.reader.exception() is not None:
                exc = s.reader.exception()
                if isinstance(exc, Rejected):
                    await _reject(ws, str(exc), exc.code)
                elif not isinstance(exc, ConnectionClosed):  # a bug: say so rather than close as if all went well
                    log.error("reading from a client failed", exc_info=exc)
                    await _reject(ws, f"internal error: {type(exc).__name__}", 1011)
                return  # otherwise the client went away: nothing to send
            if s.stream is None:  # shutting down before the stream started
                await ws.close(1001, "server shutting down")
                return
            # End of audio (or shutdown): recognise what was received, send the finals and eof, close.
            s.eof = True
            self._wake.set()
            await s.sender
            await ws.close(1001 if self.closing else 1000)
        except Exception as e:  # ConnectionClosed while finalising, or a bug: never take other clients down
            if not isinstance(e, ConnectionClosed):
                log.exception("connection handler failed")
        finally:
            s.dropped = True
            self.clients.discard(s)
            self.sessions.discard(s)
            if s.sender is not None:
                if s.sender.done():
                    s.sender.cancelled() or s.sender.exception()  # retrieved: a closed connection is no news
                else:
                    s.sender.cancel()

    async def _recv(self, ws):
        try:
            msg = await asyncio.wait_for(ws.recv(), self.config.idle_timeout)
        except asyncio.TimeoutError:
            raise Rejected(f"no message for {self.config.idle_timeout:g} s (idle timeout)") from None
        size = len(msg)
        if size > self.config.max_message_bytes:
            raise Rejected(f"message of {size} bytes is over the limit of {self.config.max_message_bytes}", 1009)
        return msg

    async def _read(self, s: Session) -> None:
        """Read the configuration, then audio until eof; raise Rejected for a protocol violation."""
        first = await self._recv(s.ws)
        if isinstance(first, bytes):
            raise Rejected('the first message must be JSON text such as {"sample_rate": 16000}, not binary audio')
        cfg = _parse_json(first, "the first message")
        if "config" in cfg:  # a Vosk client at the default URL: its dialect, as on /vosk
            from .vosk import read_vosk

            return await read_vosk(self, s, first)
        if cfg.get("health") and len(cfg) == 1:
            await s.ws.send(json.dumps({"type": "health", **self.health()}))
            raise Rejected("health answered", 1000) from None
        unknown = sorted(set(cfg) - {"sample_rate", "hotwords", "lm"})
        if unknown:
            raise Rejected(f"unknown field(s) in the first message: {', '.join(unknown)}")
        rate = cfg.get("sample_rate")
        if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
            raise Rejected(f'"sample_rate" must be an integer from {MIN_RATE} to {MAX_RATE} (got {clip(repr(rate))})')
        from .beam import MAX_HOTWORDS

        hotwords = cfg.get("hotwords", [])
        if (not isinstance(hotwords, list) or not all(isinstance(h, str) for h in hotwords)
                or len(hotwords) > MAX_HOTWORDS):
            raise Rejected(f'"hotwords" must be a list of at most {MAX_HOTWORDS} strings, "word" or "word:bonus"')
        use_lm = cfg.get("lm", True)
        if not isinstance(use_lm, bool):
            raise Rejected(f'"lm" must be true or false (got {clip(repr(use_lm))})')
        await self._start_stream(s, rate, hotwords, use_lm)
        s.sender = asyncio.create_task(self._send(s))  # results go out as they appear
        while True:
            await s.drained.wait()  # backpressure: the client's sends stall while the model catches up
            msg = await self._recv(s.ws)
            if isinstance(msg, bytes):
                self._take_audio(s, msg)
            else:
                obj = _parse_json(msg, "a text message")
                if obj.get("eof") and len(obj) == 1:
                    return
                raise Rejected(f'unexpected message {msg[:80]!r}: send binary PCM16 audio or {{"eof": 1}}')

    async def _start_stream(self, s: Session, rate: int, hotwords: list[str], use_lm: bool) -> None:
        from .audio import Resampler

        s.rate, s.resampler = rate, Resampler(rate, self.rec.sample_rate)
        # Parsing hotwords and building their prefix tables takes time in proportion to their size (bounded by
        # the message limit): the model's thread does it, so the event loop keeps serving everyone else.
        s.stream = await asyncio.get_running_loop().run_in_executor(self._executor, self._new_stream, hotwords, use_lm)
        self.sessions.add(s)
        self.streams_total += 1

    def _take_audio(self, s: Session, msg: bytes) -> None:
        """Queue a binary message's PCM16 samples for the worker (Rejected for an odd byte count)."""
        if len(msg) % 2:
            raise Rejected(f"binary messages must hold whole PCM16 samples (got {len(msg)} bytes, an odd count)")
        audio = np.frombuffer(msg, dtype="<i2")
        s.pending.append(audio)
        s.pending_samples += len(audio)
        s.received += len(audio)
        seconds = len(audio) / s.rate
        self.audio_seconds += seconds
        s.backlog += seconds
        if s.backlog > self.config.max_backlog_seconds:
            s.drained.clear()
        self._wake.set()

    def _new_stream(self, hotwords: list[str], use_lm: bool):
        """Worker thread: a Stream with this connection's hotwords (Rejected when they are unusable)."""
        from .beam import hotword_boosts

        try:
            boosts = hotword_boosts(hotwords)
            return self.rec.stream(boosts or None, lm=use_lm)  # a phone model refuses words it cannot pronounce
        except ValueError as e:
            raise Rejected(str(e)) from None

    async def _send(self, s: Session) -> None:
        while True:
            item = await s.outq.get()
            if item is None:
                await s.ws.send('{"type": "eof"}')
                return
            if isinstance(item, _Error):
                await s.ws.send(json.dumps({"type": "error", "error": _one_line(str(item))}))
                await s.ws.close(1011, "internal error")
                return
            await s.ws.send(item)

    # ---- the batching loop --------------------------------------------------------------------------------------
    async def _batch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while True:
                jobs = []
                for s in list(self.sessions):
                    if s.done or s.dropped:
                        continue
                    flush = s.eof and not s.eof_sent
                    if s.active or flush or s.want_sync or (s.pending and self._chunk_due(s)):
                        jobs.append(_Job(s, s.pending, flush, s.eof))
                        s.pending, s.pending_samples, s.eof_sent = [], 0, s.eof
                if not jobs:
                    break
                try:
                    outs = await loop.run_in_executor(self._executor, self._round, jobs)
                except Exception as e:
                    log.exception("model round failed")
                    for job in jobs:
                        job.session.done = True
                        job.session.outq.put_nowait(_Error(f"internal error: {e}"))
                        job.session.synced.set()
                    continue
                for job, (results, more, finished, backlog) in zip(jobs, outs):
                    s = job.session
                    if s.dropped:
                        s.synced.set()
                        continue
                    for r in results:  # a client slow to read gets fewer partials, never fewer finals
                        if r.final or s.outq.qsize() < MAX_QUEUED_PARTIALS:
                            s.outq.put_nowait(s.encode(r))
                    if s.outq.qsize() > MAX_QUEUED_RESULTS:  # it does not read at all: memory must stay bounded
                        s.dropped = True
                        self.sessions.discard(s)
                        s.closer = asyncio.create_task(s.ws.close(1008, "the client does not read its results"))
                        s.synced.set()
                        continue
                    s.active = more
                    if s.want_sync and not more and not s.pending:  # audio that came during the round: once more
                        s.want_sync = False
                        s.synced.set()
                    s.backlog = backlog + s.pending_samples / s.rate
                    if s.backlog <= self.config.max_backlog_seconds:
                        s.drained.set()
                    if finished:
                        s.done = True
                        s.outq.put_nowait(None)

    def _chunk_due(self, s: Session) -> bool:
        """Does the audio received complete a new model chunk? Until it does, feeding it would be wasted rounds
        (a round per 20 ms message costs more than the model); at the model's rate this is exact, so results
        come no later. Audio that needs resampling is fed as it comes."""
        if s.rate != self.rec.sample_rate:
            return True
        chunks = self.rec.info.feature.frames(s.received) // self.rec.chunk_frames
        if chunks > s.chunks_due:
            s.chunks_due = chunks
            return True
        return False

    def _round(self, jobs: list[_Job]) -> list[tuple]:
        """Worker thread: feed new audio and advance every ready stream by one chunk, in one model call."""
        audio = []
        for job in jobs:
            s = job.session
            parts = [s.resampler(np.concatenate(job.audio).astype(np.float32) / 32768.0)] if job.audio else []
            if job.flush:
                parts.append(s.resampler(np.zeros(0, np.float32), last=True))
            audio.append(np.concatenate(parts) if parts else None)
        streams = [job.session.stream for job in jobs]
        stepped = self.rec.step_streams(streams, audio)
        took = sum(r is not None for r in stepped)
        if took:
            self.rounds += 1
            self.batched_chunks += took
        outs = []
        for job, st, results in zip(jobs, streams, stepped):
            more, finished = results is not None, False
            if not more and job.eof:
                results, finished = st.finish(), True
            outs.append((results or [], more, finished, st.pending_seconds))
        return outs


def _parse_json(text: str, what: str) -> dict:
    try:
        obj = json.loads(text)
    except RecursionError:  # json gives up on deep nesting this way, not with a ValueError
        raise Rejected(f"{what} is invalid JSON: nested too deeply", 1007) from None
    except ValueError as e:
        raise Rejected(f"{what} is invalid JSON: {e}", 1007) from None
    if not isinstance(obj, dict):
        raise Rejected("messages must be JSON objects")
    return obj


def _counted_connection(server: Server):
    """A websockets connection class that keeps server.connections, the open TCP connections, and closes at once
    those beyond server.max_connections: silent sockets that never finish a handshake count too."""
    from websockets.asyncio.server import ServerConnection

    class CountedConnection(ServerConnection):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(server.connections) >= server.max_connections:
                server._refused()
                transport.abort()  # its handshake then ends at once, before reading anything
            else:
                server.connections.add(self)

        def connection_lost(self, exc) -> None:
            server.connections.discard(self)
            super().connection_lost(exc)

    return CountedConnection


def _url_host(host: str) -> str:
    """The address to put in the page's URL: an all-interfaces listener is reached on this machine as localhost,
    which browsers treat as secure (the microphone is given to secure pages only)."""
    if host in ("", "0.0.0.0", "::"):
        return "localhost"
    return f"[{host}]" if ":" in host else host


def _path(ws) -> str:
    request = getattr(ws, "request", None)
    return route(request) if request is not None else ""


def _one_line(message: str) -> str:
    """Error replies quote client input and library messages: one line, at most MAX_ERROR_CHARS."""
    message = " ".join(message.splitlines())
    return message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 3] + "..."


async def _reject(ws, message: str, code: int) -> None:
    """Send {"type": "error"} (unless only a close is due) and close; the client may already be gone."""
    from websockets.exceptions import ConnectionClosed

    message = _one_line(message)
    try:
        if code != 1000:
            await ws.send(json.dumps({"type": "error", "error": message}))
        await ws.close(code, message.encode()[:120].decode(errors="ignore"))  # a close reason has 123 bytes
    except ConnectionClosed:
        pass


def run_server(recognizer, config: ServerConfig) -> int:
    """`asr serve`: blocks until SIGTERM/SIGINT, finalises open streams, returns 0."""
    logging.basicConfig(level=logging.WARNING, format="asr: %(name)s: %(message)s")
    server = Server(recognizer, config)
    asyncio.run(server.serve())
    print("asr: server stopped", file=sys.stderr, flush=True)
    return 0
