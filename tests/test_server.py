"""`asr serve` as a subprocess on loopback, driven by real WebSocket clients.

Most clients here use aiohttp's WebSocket implementation (not the server's library); the load test uses the
project's own load generator (asr.client) and one test runs the `asr client` command.
"""

import asyncio
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from asr.audio import read_audio
from asr.client import pcm16, stream_samples
from asr.recognizer import Recognizer
from asr.serverprocess import ServerProcess
from conftest import asr_command, sample_pairs

aiohttp = pytest.importorskip("aiohttp")

MAX_MESSAGE = 65536
IDLE = 3.0


@pytest.fixture(scope="module")
def model(request):
    # ASR_TEST_SERVER_MODEL skips training the tiny model when iterating on this file alone.
    return os.environ.get("ASR_TEST_SERVER_MODEL") or request.getfixturevalue("any_model")


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    s = ServerProcess(model, tmp_path_factory.mktemp("server") / "server.log", "--max-clients", 40,
                      "--max-message-bytes", MAX_MESSAGE, "--idle-timeout", IDLE)
    yield s
    assert s.stop() == 0, open(s.log_path).read()


@pytest.fixture(scope="module")
def audio():
    return {wav.name: read_audio(str(wav)) for wav, _ in sample_pairs()}


@pytest.fixture(scope="module")
def expected(model, audio):
    """What Recognizer.transcribe gives for each sample, as the server's JSON messages."""
    rec = Recognizer.load(model, device="cpu", threads=1)
    return {name: [json.loads(json.dumps(r.to_dict())) for r in rec.transcribe(a)] for name, a in audio.items()}


def finals(messages):
    return [m for m in messages if m["type"] == "final"]


async def aio_stream(url, samples, block=1600, pace=0.0, first=None, extra=None):
    """One aiohttp WebSocket client: config, PCM16 blocks, eof; returns every message the server sent."""
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, max_msg_size=0) as ws:
            first = first or json.dumps({"sample_rate": 16000})
            try:
                await (ws.send_bytes(first) if isinstance(first, bytes) else ws.send_str(first))
                for i in range(0, len(samples), block):
                    await ws.send_bytes(pcm16(samples[i : i + block]))
                    if pace:
                        await asyncio.sleep(pace)
                if extra is not None:
                    await (ws.send_bytes(extra) if isinstance(extra, bytes) else ws.send_str(extra))
                await ws.send_str(json.dumps({"eof": 1}))
            except (ConnectionError, aiohttp.ClientError):  # a rejected client: the server closed on it
                pass
            return await aio_collect(ws)


async def aio_collect(ws, timeout=60):
    messages = []
    while True:
        m = await ws.receive(timeout=timeout)
        if m.type != aiohttp.WSMsgType.TEXT:
            messages.append({"type": "closed", "code": ws.close_code})
            return messages
        messages.append(json.loads(m.data))


def test_health_and_the_client_command_give_the_same_finals_as_transcribe(server, expected):
    h = server.health()
    assert h["status"] == "ok" and h["max_clients"] == 40 and h["sample_rate"] == 16000
    wav = sample_pairs()[0][0]
    r = subprocess.run([*asr_command(), "client", str(wav), "--url", server.url, "--fast"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    messages = [json.loads(line) for line in r.stdout.splitlines()]
    assert finals(messages) == expected[wav.name]
    assert any(m["type"] == "partial" for m in messages)


def test_twenty_simultaneous_clients_all_get_correct_finals(server, audio, expected):
    names = sorted(audio)

    async def main():
        return await asyncio.gather(*(aio_stream(server.url, audio[names[i % 3]], pace=0.01) for i in range(20)))

    results = asyncio.run(main())
    for i, messages in enumerate(results):
        assert messages[-2:] == [{"type": "eof"}, {"type": "closed", "code": 1000}]
        assert finals(messages) == expected[names[i % 3]], i
    h = server.wait_idle()
    assert h["mean_batch"] > 1.0  # ready chunks of concurrent streams were run together


def test_other_sample_rates_are_resampled_like_files(server, model, audio, tmp_path):
    import soundfile as sf
    import soxr

    pcm = np.clip(np.rint(soxr.resample(audio[sorted(audio)[0]], 16000, 48000) * 32768), -32768, 32767)
    path = tmp_path / "48k.wav"
    sf.write(path, pcm.astype(np.int16), 48000, subtype="PCM_16")
    want = [json.loads(json.dumps(r.to_dict())) for r in Recognizer.load(model, device="cpu").transcribe(str(path))]
    messages = asyncio.run(aio_stream(server.url, read_audio(str(path), 48000), block=4800,
                                      first='{"sample_rate": 48000}'))
    assert finals(messages) == want and want


def test_bad_clients_are_rejected_and_others_unaffected(server, audio, expected):
    name = sorted(audio)[1]
    good = audio[name]

    async def bad(first=None, extra=None, samples=good[:8000]):
        return await aio_stream(server.url, samples, first=first, extra=extra)

    async def silent(after_config: bool):
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(server.url) as ws:
                if after_config:
                    await ws.send_str('{"sample_rate": 16000}')
                t = time.monotonic()
                messages = await aio_collect(ws)
                return messages, time.monotonic() - t

    async def health_message():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(server.url) as ws:
                await ws.send_str('{"health": 1}')
                return await aio_collect(ws)

    async def main():
        return await asyncio.gather(
            *(aio_stream(server.url, good, pace=0.005) for _ in range(3)),
            bad(first="{not json"),
            bad(first=pcm16(good[:1600])),  # audio before the configuration
            bad(first='{"sample_rate": "fast"}'),
            bad(first='{"sample_rate": 16000, "language": "fr"}'),
            bad(extra=b"\x00" * (MAX_MESSAGE + 2)),  # oversized
            bad(extra=b"\x00" * 641),  # half a sample
            bad(extra='{"eof": "maybe", "x": 1}'),
            silent(False), silent(True), health_message())

    *ok, not_json, binary_first, bad_rate, unknown, oversized, odd, bad_text, idle1, idle2, health = asyncio.run(main())
    for messages in ok:
        assert finals(messages) == expected[name]
        assert messages[-1] == {"type": "closed", "code": 1000}
    for messages, words in [(not_json, "invalid JSON"), (binary_first, "first message"), (bad_rate, "sample_rate"),
                            (unknown, "language"), (oversized, "over the limit"), (odd, "odd"),
                            (bad_text, "unexpected message")]:
        errors = [m for m in messages if m["type"] == "error"]
        assert len(errors) == 1 and words in errors[0]["error"], messages
        assert messages[-1]["type"] == "closed" and messages[-1]["code"] in (1007, 1008, 1009), messages
        assert not any(m["type"] == "eof" for m in messages)
    for messages, waited in (idle1, idle2):
        assert messages[0]["type"] == "error" and "idle" in messages[0]["error"]
        assert IDLE - 0.5 < waited < IDLE + 10
    assert health[0]["type"] == "health" and health[0]["status"] == "ok"
    server.wait_idle()


def test_memory_returns_near_baseline_after_clients_leave(server, audio):
    long = np.concatenate(list(audio.values()))  # 25 s each, sent faster than real time: backpressure too

    async def round_of_clients():
        return await asyncio.gather(*(aio_stream(server.url, long, block=8000) for _ in range(20)))

    server.wait_idle()
    baseline = server.rss_mb()
    for _ in range(2):
        results = asyncio.run(round_of_clients())
        assert all(m[-2]["type"] == "eof" for m in results)
        server.wait_idle()
    after = server.rss_mb()
    assert after < baseline + 60, (baseline, after)


def test_bounded_load_keeps_p95_partial_latency_low(server, audio, expected):
    name = sorted(audio)[2]

    async def client(i):
        await asyncio.sleep(0.05 * i)
        return await stream_samples(server.url, audio[name], realtime=True)

    async def main():
        return await asyncio.gather(*(client(i) for i in range(8)))

    reports = asyncio.run(main())
    latencies = [x for r in reports for x in r.latencies]
    for r in reports:
        assert r.error is None and r.finals == expected[name]
    assert len(latencies) > 8 * 10
    assert np.percentile(latencies, 95) < 2.0, np.percentile(latencies, [50, 95])


def test_sigterm_finalises_open_streams_then_exits_zero(model, audio, tmp_path):
    name = sorted(audio)[0]
    half = audio[name][: len(audio[name]) // 2]
    rec = Recognizer.load(model, device="cpu", threads=1)
    want = [json.loads(json.dumps(r.to_dict())) for r in rec.transcribe(half)]
    s = ServerProcess(model, tmp_path / "server.log", "--max-clients", 1)

    async def main():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(s.url) as ws:
                await ws.send_str('{"sample_rate": 16000}')
                for i in range(0, len(half), 1600):
                    await ws.send_bytes(pcm16(half[i : i + 1600]))
                deadline = time.monotonic() + 30
                while s.health()["audio_seconds"] < len(half) / 16000:  # the server has read all of it
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
                async with session.ws_connect(s.url) as ws2:  # one client too many
                    full = await aio_collect(ws2)
                s.proc.send_signal(signal.SIGTERM)
                return full, await aio_collect(ws)

    full, messages = asyncio.run(main())
    assert full[0]["type"] == "error" and "full" in full[0]["error"] and full[-1]["code"] == 1013
    assert messages[-2:] == [{"type": "eof"}, {"type": "closed", "code": 1001}]
    assert finals(messages) == want and want
    try:
        assert s.proc.wait(timeout=30) == 0  # the one SIGTERM: no second signal
    finally:
        s.stop()
    assert "shutting down" in open(s.log_path).read()


def test_hotwords_per_connection(server, model, audio):
    """A stream's own hotwords apply to it alone (other streams keep the server's decoding); bad ones are rejected."""
    name = sorted(audio)[0]
    rec = Recognizer.load(model, device="cpu", threads=1)
    stream = rec.stream({"canoe": 4.0, "planks": 4.0})
    want = [r.to_dict() for r in stream.accept(audio[name]) + stream.finish() if r.final]
    first = json.dumps({"sample_rate": 16000, "hotwords": ["canoe:4", "planks:4"]})

    async def main():
        return await asyncio.gather(aio_stream(server.url, audio[name], first=first),
                                    aio_stream(server.url, audio[name], first=json.dumps(
                                        {"sample_rate": 16000, "hotwords": "canoe"})))

    boosted, bad = asyncio.run(main())
    assert [json.loads(json.dumps(m)) for m in finals(boosted)] == json.loads(json.dumps(want))
    assert any(m["type"] == "error" and "hotwords" in m["error"] for m in bad), bad


def test_a_stream_can_ask_for_no_lm(server, model, audio, expected):
    """"lm": false decodes that stream greedily, whatever the server's default; anything but a boolean is refused."""
    name = sorted(audio)[0]
    rec = Recognizer.load(model, device="cpu", threads=1)
    stream = rec.stream(lm=False)
    want = [r.to_dict() for r in stream.accept(audio[name]) + stream.finish() if r.final]

    async def main():
        return await asyncio.gather(
            aio_stream(server.url, audio[name], first=json.dumps({"sample_rate": 16000, "lm": False})),
            aio_stream(server.url, audio[name], first=json.dumps({"sample_rate": 16000, "lm": "no"})))

    plain, bad = asyncio.run(main())
    assert [json.loads(json.dumps(m)) for m in finals(plain)] == json.loads(json.dumps(want))
    if rec.lm is not None:  # the bundled model: its server decodes with the LM unless asked not to
        assert finals(expected[name]) != finals(plain)
    assert any(m["type"] == "error" and '"lm" must be true or false' in m["error"] for m in bad), bad


def test_a_model_with_its_own_state_and_lookahead_is_served_like_it_transcribes(audio, tmp_path):
    """The server's batched rounds go through Recognizer.step_streams, whatever the model's state: here a graph
    whose only state is a buffer with batch axis 0 that delays every output by 7 steps (no torch needed)."""
    from asr.model import OnnxAcousticModel
    from conftest import BUNDLED
    from test_streaming import _delay_model

    if not BUNDLED.exists():
        pytest.skip("bundled model not built")
    path = _delay_model(tmp_path / "late.onnx", OnnxAcousticModel(str(BUNDLED), device="cpu").info, 7)
    rec = Recognizer.load(path, device="cpu", lm=None)
    names = sorted(audio)
    want = {n: [json.loads(json.dumps(r.to_dict())) for r in rec.transcribe(audio[n])] for n in names}
    s = ServerProcess(path, tmp_path / "server.log")
    try:
        async def main():
            return await asyncio.gather(*(aio_stream(s.url, audio[n], pace=0.002) for n in names))

        for n, messages in zip(names, asyncio.run(main())):
            assert finals(messages) == want[n] and want[n], n
        assert s.wait_idle()["mean_batch"] > 1.0
    finally:
        assert s.stop() == 0, open(s.log_path).read()
