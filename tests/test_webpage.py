"""The live-captions page of `asr serve`, in a real browser: headless Chromium (Debian's) whose fake microphone plays a
known utterance into the page, which resamples it in its AudioWorklet and streams it to a real `asr serve` on
loopback. Skips where Chromium or selenium is not installed (./setup.sh --dev installs both).

"At the model's level": the browser captures from no particular sample, and a start between two 10 ms hops frames
the audio differently, which alone moves this greedy model's output by up to ~20 % of its characters
(scripts/bench_webpage.py). So the page must give the same segments as `asr transcribe` of the file, at the same
times (within the capture's start-up, 0.5 s of silence in the test), and be no further from the command's text (CER), nor from the
transcript (WER), than the file itself is when it starts 40, 80 or 120 samples late, give or take 5 points."""

import json
import os
import re
import shutil
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.metrics import edit_distance
from asr.recognizer import Recognizer
from asr.results import Result, Word
from asr.serverprocess import ServerProcess
from asr.writers import render
from chromium import CaptionsPage, launch, unavailable
from conftest import SAMPLES, run_asr

SHIFTS = (40, 80, 120)  # samples
START_SLACK_S = 0.5  # the page's clock starts when its worklet first hears the microphone, a little after it opened
WEB = Path(__file__).resolve().parent.parent / "asr" / "web"


def browser():
    why = unavailable()
    if why:
        pytest.skip(why)


def error_rate(ref, hyp) -> float:
    return edit_distance(ref, hyp) / max(1, len(ref))


@pytest.fixture(scope="module")
def server(bundled_model, tmp_path_factory):
    s = ServerProcess(bundled_model, tmp_path_factory.mktemp("web") / "server.log", "--no-lm")
    yield s
    assert s.stop() == 0, s.log()


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.headers, r.read().decode()


def test_the_server_serves_the_page_and_its_files(server):
    base = f"http://127.0.0.1:{server.port}"
    status, headers, html = get(base + "/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in headers["Content-Security-Policy"] and headers["X-Content-Type-Options"] == "nosniff"
    assert 'id="toggle"' in html and 'src="captions.js"' in html
    for name, kind in [("captions.js", "text/javascript"), ("pcm-worklet.js", "text/javascript"),
                       ("captions.css", "text/css")]:
        status, headers, body = get(f"{base}/{name}?v=1")
        assert status == 200 and headers["Content-Type"].startswith(kind)
        assert body == (WEB / name).read_text()
    for name in os.listdir(WEB):  # nothing is fetched from elsewhere: no CDN, no absolute URL
        hosts = set(re.findall(r"(?:https?:|wss?:)?//[\w.-]+", (WEB / name).read_text()))
        assert hosts <= {"http://localhost"}, (name, hosts)  # that one is in the advice to use a secure origin
    assert json.loads(get(base + "/health")[2])["status"] == "ok"  # the server's other routes are untouched
    with pytest.raises(urllib.error.HTTPError) as e:
        get(base + "/other")
    assert e.value.code == 426  # anything else is still a WebSocket endpoint


@pytest.fixture(scope="module")
def utterances(tmp_path_factory):
    """Two bundled samples, 1.5 s apart, with silence around them: two finals."""
    (a, ta), (b, tb) = [(sf.read(str(SAMPLES / n), dtype="float32")[0], (SAMPLES / n).with_suffix(".txt").read_text())
                        for n in ("harvard-slt.wav", "harvard-rms.wav")]
    gap = lambda s: np.zeros(int(s * 16000), np.float32)  # noqa: E731
    path = tmp_path_factory.mktemp("mic") / "utterances.wav"
    sf.write(str(path), np.concatenate([gap(0.5), a, gap(1.5), b, gap(2.5)]), 16000, subtype="PCM_16")
    return path, f"{ta.strip()} {tb.strip()}"


@pytest.mark.slow
def test_the_page_shows_the_finals_of_asr_transcribe(server, utterances, bundled_model, tmp_path):
    browser()
    wav, reference = utterances
    r = run_asr("transcribe", "--no-lm", "--model", bundled_model, "--format", "json", wav)
    assert r.returncode == 0, r.stderr
    expected = json.loads(r.stdout)["segments"]
    assert len(expected) == 2

    downloads = tmp_path / "downloads"
    driver = launch(str(wav), downloads=str(downloads))
    try:
        page = CaptionsPage(driver, f"http://127.0.0.1:{server.port}/")
        assert page.state() == "idle" and page.text("toggle") == "Start"
        shown = page.listen(sf.info(str(wav)).duration)
        assert page.text("state") == "stopped" and page.text("notice") == ""
        assert re.fullmatch(r"microphone \d+ Hz → 16000 Hz", page.text("rate"))
        assert any(kind == "partial" for _, _, kind, _ in page.events)  # the partial line updated as it went
        screenshot = tmp_path / "page.png"
        assert driver.save_screenshot(str(screenshot))
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000
        if os.environ.get("ASR_SCREENSHOT"):
            shutil.copy(screenshot, os.environ["ASR_SCREENSHOT"])
        page.click("download-txt")
        page.click("download-srt")
        page.wait(lambda: {p.name for p in downloads.glob("captions.*")} == {"captions.txt", "captions.srt"}, 20,
                  "the downloads did not arrive")
    finally:
        driver.quit()

    # The same segments at the same times: the page's clock is behind the file's by its start-up, the same for both.
    assert len(shown) == len(expected), (shown, expected)
    late = [e["start"] - s["start"] for s, e in zip(shown, expected)]
    assert all(-0.05 <= x <= START_SLACK_S for x in late), late
    assert max(late) - min(late) <= 0.1, late  # a word's start can move by a model step or two
    for s, e in zip(shown, expected):
        assert abs((e["end"] - s["end"]) - late[0]) <= 0.15, (s, e, late)
        assert re.fullmatch(r"\d\d:\d\d\.\d - \d\d:\d\d\.\d", s["time"])
        assert s["text"] == " ".join(w["text"] for w in s["words"])

    page_text = " ".join(s["text"] for s in shown)
    file_text = " ".join(e["text"] for e in expected)
    audio = sf.read(str(wav), dtype="float32")[0]
    rec = Recognizer.load(bundled_model, device="cpu", threads=1, lm=None)
    shifted = [" ".join(r.text for r in rec.transcribe(audio[k:]) if r.final) for k in SHIFTS]
    assert " ".join(r.text for r in rec.transcribe(audio) if r.final) == file_text  # the same decoding as the command
    model_level = max(error_rate(file_text, t) for t in shifted)
    assert error_rate(file_text, page_text) <= model_level + 0.05, (page_text, file_text, model_level)
    wer_page = error_rate(reference.split(), page_text.split())
    wer_file = max(error_rate(reference.split(), t.split()) for t in [file_text, *shifted])
    assert wer_page <= wer_file + 0.05, (wer_page, wer_file)

    # The downloads are the page's finals in the formats of `asr transcribe --format txt|srt`.
    assert (downloads / "captions.txt").read_text() == "".join(s["text"] + "\n" for s in shown)
    results = [Result(True, s["text"], s["start"], s["end"], [Word(**w) for w in s["words"]]) for s in shown]
    assert (downloads / "captions.srt").read_text() == render(results, "srt")


@pytest.mark.slow
def test_a_refused_microphone_is_explained(server, utterances):
    browser()
    before = server.health()["streams_total"]
    driver = launch(str(utterances[0]), allow_microphone=False)
    try:
        page = CaptionsPage(driver, f"http://127.0.0.1:{server.port}/")
        page.click()
        page.wait(lambda: page.state() == "error", 20, "the page did not report the refusal")
        assert "Microphone access was refused" in page.text("notice")
        assert page.text("toggle") == "Start" and page.element("toggle").is_enabled()
    finally:
        driver.quit()
    assert server.health()["streams_total"] == before  # no stream was opened


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_page_reconnects_when_the_server_restarts(bundled_model, tmp_path):
    browser()
    speech = sf.read(str(SAMPLES / "harvard-slt.wav"), dtype="float32")[0][: int(3.0 * 16000)]  # one sentence
    wav = tmp_path / "loop.wav"
    sf.write(str(wav), np.concatenate([speech, np.zeros(24000, np.float32)]), 16000, subtype="PCM_16")
    port = free_port()
    first = ServerProcess(bundled_model, tmp_path / "first.log", "--no-lm", "--port", port)
    second = None
    driver = launch(str(wav), loop=True)
    try:
        page = CaptionsPage(driver, f"http://127.0.0.1:{port}/")
        page.click()
        page.wait(lambda: page.final_count() >= 1, 60, "no final before the restart")
        assert first.stop() == 0
        page.wait(lambda: page.state() == "reconnecting", 20, "the page did not notice the server going away")
        assert page.text("notice").startswith("Disconnected:")
        restarted_at = page.captured_seconds()
        count = page.final_count()
        second = ServerProcess(bundled_model, tmp_path / "second.log", "--no-lm", "--port", port)
        page.wait(lambda: page.state() == "connected", 30, "the page did not reconnect")
        assert page.text("notice") == ""
        page.wait(lambda: page.final_count() > count, 60, "no final after the reconnection")
        after = page.finals()[count:]
        # Times stay on the page's clock across the reconnection (the new stream's own clock starts at 0).
        assert after[0]["start"] >= restarted_at - 10.5, (after, restarted_at)
        assert after[0]["start"] > page.finals()[count - 1]["end"]
        assert second.health()["streams_total"] == 1
        page.click()
        page.wait(lambda: page.state() == "idle", 30, "the page did not stop")
    finally:
        driver.quit()
        first.stop()
        if second is not None:
            assert second.stop() == 0
