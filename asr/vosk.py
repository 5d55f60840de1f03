"""The Vosk server's WebSocket dialect, on `asr serve`'s /vosk path (and on / when the first message is Vosk's
{"config": ...}), so that Vosk clients work unchanged.

  client -> {"config": {"sample_rate": 16000, "words": 1, "phrase_list": [...], "max_alternatives": 0}}
                                 optional, text, before the audio; every field optional
  client -> binary PCM16 mono    the server answers each message once, after recognising it:
  server -> {"partial": "..."}   while a segment is open, or
  server -> {"text": "...", "result": [{"word", "start", "end", "conf"}, ...]}   when segments closed since
                                 the previous answer (several are joined into one answer: none is lost)
  client -> {"eof": 1}           answered with the rest of the audio as one {"text", "result"}; then close

That one answer per message is what Vosk's own clients wait for (send a block, read a reply). The streams run on
the server's shared batching worker like every other connection; only the framing differs.
"""

from __future__ import annotations

import asyncio
import json
import math

from .beam import DEFAULT_HOTWORD_BONUS, MAX_HOTWORDS
from .messages import clip
from .server import MAX_RATE, MIN_RATE, Rejected, _Error, _one_line, _parse_json

CONFIG_FIELDS = ("sample_rate", "words", "phrase_list", "max_alternatives")
UNKNOWN_WORD = "[unk]"  # Vosk's phrase lists may name its unknown-word token: not a word to boost


def _keep(result):
    return result


async def read_vosk(server, s, first: str | bytes | None = None) -> None:
    """The reader of a /vosk connection (Server._handle runs it in place of Server._read), or of one to / that
    began with Vosk's configuration message (`first`, already received)."""
    rate, words, hotwords = server.rec.sample_rate, True, []
    msg = first if first is not None else await server._recv(s.ws)
    if isinstance(msg, str):
        obj = _parse_json(msg, "the first message")
        if "config" in obj:
            rate, words, hotwords = parse_config(obj, server.rec.sample_rate)
            msg = None
    s.encode = _keep
    await server._start_stream(s, rate, hotwords, use_lm=True)
    answers = Answers(words)
    try:
        while True:
            if msg is None:
                await s.drained.wait()
                msg = await server._recv(s.ws)
            if isinstance(msg, bytes):
                server._take_audio(s, msg)
                s.synced.clear()
                s.want_sync = True
                server._wake.set()
                await s.synced.wait()
                error = answers.collect(s.outq)
                if error is not None:
                    raise Rejected(error, 1011)
                await s.ws.send(answers.reply())
            else:
                obj = _parse_json(msg, "a text message")
                if obj.get("eof") and len(obj) == 1:
                    return
                if "config" in obj:
                    raise Rejected('{"config": ...} must come before the audio')
                raise Rejected(f'unexpected message {clip(msg, 80)!r}: send binary PCM16 audio or {{"eof": 1}}')
            msg = None
    finally:
        # At eof (or on shutdown) Server._handle marks the stream ended and awaits s.sender for the last answer.
        if s.stream is not None:
            s.sender = asyncio.create_task(_last_answer(s, answers))


def parse_config(obj: dict, default_rate: int) -> tuple[int, bool, list[str]]:
    """{"config": {...}} -> (sample rate, whether finals list their words, hotwords from the phrase list)."""
    cfg = obj["config"]
    if len(obj) != 1 or not isinstance(cfg, dict):
        raise Rejected('the configuration must be {"config": {"sample_rate": 16000, ...}}')
    unknown = sorted(set(cfg) - set(CONFIG_FIELDS))
    if unknown:
        raise Rejected(f"unknown field(s) in the configuration: {clip(', '.join(unknown))} "
                       f"(known: {', '.join(CONFIG_FIELDS)})")
    rate = cfg.get("sample_rate", default_rate)
    # Vosk takes the rate as a number and its own clients send 16000.0 as often as 16000.
    if (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate)
            or rate != int(rate) or not MIN_RATE <= rate <= MAX_RATE):
        raise Rejected(f'"sample_rate" must be a whole number from {MIN_RATE} to {MAX_RATE} (got {clip(repr(rate))})')
    words = cfg.get("words", True)
    if not isinstance(words, (bool, int)) or isinstance(words, int) and words not in (0, 1):
        raise Rejected(f'"words" must be true, false, 1 or 0 (got {clip(repr(words))})')
    alternatives = cfg.get("max_alternatives", 0)
    if not (isinstance(alternatives, (int, float)) and alternatives == 0):
        raise Rejected(f'"max_alternatives" other than 0 is not supported (got {clip(repr(alternatives))})')
    phrases = cfg.get("phrase_list", [])
    if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
        raise Rejected('"phrase_list" must be a list of strings')
    if len(phrases) > MAX_HOTWORDS:
        raise Rejected(f'"phrase_list" holds {len(phrases)} phrases: at most {MAX_HOTWORDS} are allowed')
    # A phrase list is Vosk's grammar; here its words are boosted as hotwords (a bias, not a constraint).
    words_listed = list(dict.fromkeys(w for p in phrases for w in p.lower().split() if w != UNKNOWN_WORD))
    if len(words_listed) > MAX_HOTWORDS:
        raise Rejected(f'"phrase_list" holds {len(words_listed)} words: at most {MAX_HOTWORDS} are allowed')
    # The bonus spelled out, so that a word holding a colon ("10:30") is not read as WORD:BONUS.
    hotwords = [f"{w}:{DEFAULT_HOTWORD_BONUS:g}" for w in words_listed]
    return int(rate), bool(words), hotwords


class Answers:
    """The results recognised since the previous answer, and the Vosk message that reports them."""

    def __init__(self, words: bool):
        self.words = words
        self.finals: list = []
        self.partial = ""

    def collect(self, outq: asyncio.Queue) -> str | None:
        """Take every result waiting on outq; returns an internal error's message instead, if there is one."""
        while not outq.empty():
            item = outq.get_nowait()
            if isinstance(item, _Error):
                return str(item)
            if item is not None:
                self.add(item)
        return None

    def add(self, result) -> None:
        if result.final:
            self.finals.append(result)
            self.partial = ""
        else:
            self.partial = result.text

    def reply(self, last: bool = False) -> str:
        if not self.finals and not last:
            return json.dumps({"partial": self.partial})
        segments, self.finals = self.finals, []
        out = {"text": " ".join(r.text for r in segments if r.text)}
        if self.words:
            out["result"] = [{"conf": w.confidence, "end": w.end, "start": w.start, "word": w.text}
                             for r in segments for w in r.words]
        return json.dumps(out)


async def _last_answer(s, answers: Answers) -> None:
    while True:
        item = await s.outq.get()
        if item is None:
            break
        if isinstance(item, _Error):
            await s.ws.send(json.dumps({"type": "error", "error": _one_line(str(item))}))
            await s.ws.close(1011, "internal error")
            return
        answers.add(item)
    await s.ws.send(answers.reply(last=True))
