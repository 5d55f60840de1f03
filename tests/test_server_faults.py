"""`asr serve` against hostile or unlucky conditions: silent sockets under a low descriptor limit, accept()
failures, huge and deeply nested first messages, /health during the SIGTERM drain, nonsense settings.
Real server processes on loopback, real sockets, real WebSocket clients (aiohttp and websockets)."""

import asyncio
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import pytest

from asr.client import pcm16, stream_samples
from asr.server import Server, ServerConfig
from conftest import asr_command, run_asr
from test_server import ServerProcess, aio_collect, aio_stream, finals

aiohttp = pytest.importorskip("aiohttp")

MAX_MESSAGE = 262144  # room for a 60,000-character hotword and 100,000 levels of nesting


@pytest.fixture(scope="module")
def model(request):
    return os.environ.get("ASR_TEST_SERVER_MODEL") or request.getfixturevalue("any_model")


@pytest.fixture(scope="module")
def audio():
    from asr.audio import read_audio
    from conftest import sample_pairs

    return read_audio(str(sample_pairs()[0][0]))


@pytest.fixture(scope="module")
def expected(model, audio):
    from asr.recognizer import Recognizer

    rec = Recognizer.load(model, device="cpu", threads=1)
    return [json.loads(json.dumps(r.to_dict())) for r in rec.transcribe(audio)]


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    s = ServerProcess(model, tmp_path_factory.mktemp("faults") / "server.log", "--max-clients", 8,
                      "--max-message-bytes", MAX_MESSAGE, "--idle-timeout", 5)
    yield s
    assert s.stop() == 0, open(s.log_path).read()


def _limit_fds(n):
    def preexec():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    return preexec


def _silent_sockets(port, n):
    """n TCP connections that never send a byte (non-blocking connects: the kernel completes them)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    return socks


def _closed_by_peer(socks, within):
    """How many of socks the server has closed (readable with EOF or reset) within `within` seconds."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    closed, deadline = set(), time.monotonic() + within
    while time.monotonic() < deadline and len(closed) < len(socks):
        for key, _ in sel.select(timeout=0.1):
            try:
                data = key.fileobj.recv(1)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                closed.add(key.fileobj)
                sel.unregister(key.fileobj)
    sel.close()
    return len(closed)


def _served(url, audio, expected):
    report = asyncio.run(stream_samples(url, audio, realtime=False))
    assert report.error is None and report.finals == expected


def _wait_health(port, timeout):
    """Poll /health until it answers (it cannot while silent sockets hold every connection slot)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                return json.loads(r.read())
        except OSError:  # refused, reset or timed out
            assert time.monotonic() < deadline, "the server never answered /health again"
            time.sleep(0.2)


def test_silent_sockets_under_a_low_fd_limit_cannot_lock_clients_out(model, audio, expected, tmp_path):
    log = tmp_path / "server.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([*asr_command(), "serve", "--port", "0", "--model", model, "--device", "cpu",
                                 "--threads", "1", "--max-clients", "4", "--idle-timeout", "2"],
                                stdout=subprocess.DEVNULL, stderr=err, preexec_fn=_limit_fds(64))
    try:
        deadline = time.monotonic() + 90
        while "serving on" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        port = int(log.read_text().split("127.0.0.1:")[1].split()[0])
        socks = _silent_sockets(port, 300)  # far more than the server has descriptors for
        t0 = time.monotonic()
        # Beyond max_clients + 16 the server closes new sockets at once instead of running out of descriptors
        # (the kernel holds back the rest: the server's listen backlog fits its descriptors too).
        assert _closed_by_peer(socks, 1.8) >= 10
        health = _wait_health(port, 15)  # the silent ones held their slot for the 2 s handshake limit only
        assert time.monotonic() - t0 < 10
        assert health["max_connections"] == 20 and health["connections"] <= 20
        _served(f"ws://127.0.0.1:{port}", audio, expected)
        for s in socks:
            s.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "Traceback" not in text and "out of system resource" not in text
    assert len(text.splitlines()) < 10, text[:2000]


ACCEPT_FAILS = textwrap.dedent("""
    import asyncio, logging, os, resource, sys
    from asr.recognizer import Recognizer
    from asr.server import Server, ServerConfig

    logging.basicConfig(level=logging.WARNING, format="asr: %(name)s: %(message)s")
    rec = Recognizer.load(sys.argv[1], device="cpu", threads=1)
    hog = []

    def ready(server):
        # Take every descriptor left, as leaks elsewhere in a process would: accept() now fails (EMFILE).
        while True:
            try:
                hog.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                break
        print(server.port, flush=True)
        asyncio.get_running_loop().call_later(3, lambda: [os.close(fd) for fd in hog])

    resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    asyncio.run(Server(rec, ServerConfig(port=0, idle_timeout=2)).serve(ready=ready))
""")


def test_accept_failures_are_reported_once_per_interval_and_serving_resumes(model, audio, expected, tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", ACCEPT_FAILS, model], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        socks = _silent_sockets(port, 50)
        time.sleep(3.5)  # descriptors come back after 3 s
        for s in socks:
            s.close()
        _wait_health(port, 15)
        _served(f"ws://127.0.0.1:{port}", audio, expected)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    reports = [line for line in err.splitlines() if "cannot accept connections" in line]
    assert len(reports) == 1 and "Too many open files" in reports[0], err[-2000:]
    assert "Traceback" not in err and len(err.splitlines()) < 10, err[:2000]


async def _first_message_reply(url, first):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, max_msg_size=0) as ws:
            await ws.send_str(first)
            return await aio_collect(ws)


def test_huge_hotword_gets_a_one_line_error_and_others_are_served(server, audio, expected):
    first = json.dumps({"sample_rate": 16000, "hotwords": ["k" * 60000]})

    async def main():
        return await asyncio.gather(_first_message_reply(server.url, first),
                                    aio_stream(server.url, audio, pace=0.002))

    bad, good = asyncio.run(main())
    assert [m["type"] for m in bad] == ["error", "closed"] and bad[-1]["code"] == 1008, bad
    error = bad[0]["error"]
    assert "characters" in error and "\n" not in error and len(error) <= 300, error
    assert finals(good) == expected and good[-1] == {"type": "closed", "code": 1000}
    server.wait_idle()


@pytest.mark.parametrize("first", ["[" * 100000 + "]" * 100000,
                                   '{"sample_rate": 16000, "hotwords": ' + "[" * 100000 + "]" * 100000 + "}"])
def test_deeply_nested_json_gets_an_error_and_close_1007(server, first):
    messages = asyncio.run(_first_message_reply(server.url, first))
    assert [m["type"] for m in messages] == ["error", "closed"], messages
    assert messages[0]["error"] == "the first message is invalid JSON: nested too deeply"
    assert messages[1]["code"] == 1007
    assert server.health()["status"] == "ok"


def test_health_answers_503_during_the_sigterm_drain(model, audio, expected, tmp_path):
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    s = ServerProcess(model, tmp_path / "server.log", "--max-clients", 2)

    def get_health():
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{s.port}/health", timeout=5)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
        raise AssertionError("/health answered 200 while shutting down")

    async def main():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(s.url) as ws:
                await ws.send_str('{"sample_rate": 16000}')
                await ws.send_bytes(pcm16(audio))
                deadline = time.monotonic() + 30
                while s.health()["audio_seconds"] < len(audio) / 16000:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
                s.proc.send_signal(signal.SIGTERM)
                # This client reads nothing yet, so its stream's close handshake keeps the drain going.
                await asyncio.sleep(0.5)
                health = await asyncio.to_thread(get_health)
                with pytest.raises(InvalidStatus) as refused:
                    await connect(s.url, open_timeout=5)
                return health, refused.value.response.status_code, await aio_collect(ws)

    try:
        (code, body), new_stream, messages = asyncio.run(main())
        assert s.proc.wait(timeout=30) == 0
    finally:
        s.stop()
    assert code == 503 and body["status"] == "shutting-down" and body["streams"] == 1
    assert new_stream == 503
    assert finals(messages) == expected and messages[-2:] == [{"type": "eof"}, {"type": "closed", "code": 1001}]


@pytest.mark.parametrize("field, value", [("port", 65536), ("port", -1), ("port", True), ("max_clients", 0),
                                          ("idle_timeout", 0), ("idle_timeout", float("inf")),
                                          ("idle_timeout", float("nan")), ("max_message_bytes", 1023),
                                          ("shutdown_timeout", -1.0), ("max_backlog_seconds", float("nan"))])
def test_nonsense_server_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        ServerConfig(**{field: value})
    config = ServerConfig()
    setattr(config, field, value)  # changed after construction: the server checks again
    with pytest.raises(ValueError, match=field):
        Server(None, config)


def test_serve_refuses_a_bad_port_in_one_line():
    r = run_asr("serve", "--port", "70000", timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "70000" in r.stderr.strip().splitlines()[-1], r.stderr  # argparse may print its usage first


def test_devices_with_no_inputs_says_so_and_fails(tmp_path, capsys):
    from asr.live import list_devices

    assert list_devices([]) == 1
    assert "no audio input devices found" in capsys.readouterr().err
    # A real PortAudio that sees no sound server (and, on a machine without sound cards, no ALSA device).
    env = {"PULSE_SERVER": "unix:" + str(tmp_path / "nothing-here"), "XDG_RUNTIME_DIR": str(tmp_path)}
    r = run_asr("devices", env=env, timeout=60)
    if r.returncode == 0 and r.stdout.strip():
        pytest.skip("this machine has input devices outside any sound server")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "asr: no audio input devices found (no microphone, or no sound server running)"], r.stderr
