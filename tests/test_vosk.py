"""`asr serve`'s /vosk path, driven by a client written to the Vosk server's documented WebSocket protocol.

The client does what Vosk's own example clients (vosk-server/websocket/test.py) do: a
`{ "config" : { "sample_rate" : R } }` text, then a block of PCM16 read from a wave file and one answer read back,
block by block, then `{"eof" : 1}` and one last answer. It only knows Vosk's message shapes.
"""

import json
import os
import signal
import wave

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from asr.audio import read_audio
from asr.client import pcm16
from asr.recognizer import Recognizer
from asr.serverprocess import ServerProcess
from conftest import sample_pairs


@pytest.fixture(scope="module")
def model(request):
    return os.environ.get("ASR_TEST_SERVER_MODEL") or request.getfixturevalue("any_model")


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    s = ServerProcess(model, tmp_path_factory.mktemp("vosk") / "server.log", "--idle-timeout", 5)
    yield s
    assert s.stop() == 0, open(s.log_path).read()


@pytest.fixture(scope="module")
def expected(model):
    """asr transcribe's finals for each bundled sample, as Vosk would report them."""
    rec = Recognizer.load(model, device="cpu", threads=1)
    out = {}
    for wav, _ in sample_pairs():
        segments = list(rec.transcribe(read_audio(str(wav))))
        out[wav.name] = {"text": " ".join(r.text for r in segments if r.text),
                         "words": [(w.text, w.start, w.end) for r in segments for w in r.words]}
    return out


def write_wav(path, samples: np.ndarray, rate: int) -> str:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes(pcm16(samples))
    return str(path)


def vosk_client(url, wav_file, config='{ "config" : { "sample_rate" : %d } }', block_seconds=0.2):
    """Vosk's example client: returns the answer to each block and the answer to eof, parsed."""
    answers = []
    with connect(url) as ws, wave.open(wav_file, "rb") as wf:
        if config is not None:
            ws.send(config % wf.getframerate() if "%d" in config else config)
        block = int(wf.getframerate() * block_seconds)
        while data := wf.readframes(block):
            ws.send(data)
            answers.append(json.loads(ws.recv(timeout=60)))
        ws.send('{"eof" : 1}')
        last = json.loads(ws.recv(timeout=60))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 1000
    return answers, last


def finals(answers, last):
    return [a for a in answers if "text" in a] + [last]


def joined(results):
    return " ".join(r["text"] for r in results if r["text"])


@pytest.mark.parametrize("name", [wav.name for wav, _ in sample_pairs()])
def test_a_vosk_client_gets_one_answer_per_block_and_the_same_words_as_transcribe(server, expected, name):
    path = next(w for w, _ in sample_pairs() if w.name == name)
    answers, last = vosk_client(server.url + "/vosk", str(path))
    n_blocks = -(-len(read_audio(str(path))) // 3200)
    assert len(answers) == n_blocks  # lockstep: exactly one answer to each block
    for a in answers:
        assert set(a) in ({"partial"}, {"text", "result"}), a
    assert any(a.get("partial") for a in answers)
    results = finals(answers, last)
    assert set(last) == {"text", "result"}
    assert joined(results) == expected[name]["text"] and expected[name]["text"]
    words = [w for r in results for w in r["result"]]
    assert [(w["word"], w["start"], w["end"]) for w in words] == expected[name]["words"]
    assert all(set(w) == {"word", "start", "end", "conf"} and 0.0 <= w["conf"] <= 1.0 for w in words)


def test_segments_closed_mid_stream_are_answered_as_they_close(server, model, tmp_path):
    pause = np.zeros(32000, np.float32)  # 2 s: the endpointer closes the segment
    audio = np.concatenate([x for wav, _ in sample_pairs() for x in (read_audio(str(wav)), pause)])
    path = write_wav(tmp_path / "three.wav", audio, 16000)
    want = [r for r in Recognizer.load(model, device="cpu", threads=1).transcribe(path) if r.text]
    answers, last = vosk_client(server.url + "/vosk", path)
    mid = [a for a in answers if "text" in a]
    assert len(mid) >= 2 and all(a["text"] for a in mid)  # finals during the stream, not all at eof
    after = answers[answers.index(mid[0]) + 1]
    assert after.get("partial", "") != mid[0]["text"]  # the next partial starts a new segment
    assert joined(finals(answers, last)) == " ".join(r.text for r in want)


def test_partials_grow_with_the_audio_sent(server):
    """Each answer reflects the block it answers: partials lengthen in step, not one block late."""
    path = sample_pairs()[0][0]
    answers, _ = vosk_client(server.url + "/vosk", str(path), block_seconds=0.5)
    texts = [a.get("partial", a.get("text")) for a in answers]
    assert texts[0] == "" or len(texts[0]) < len(texts[1])
    assert len(texts[2]) > len(texts[1]) > 0


def test_a_vosk_client_at_the_default_url_is_recognised_by_its_config(server, expected):
    """Vosk's clients connect to ws://host:2700 (asr serve's default port too) and begin with their config."""
    wav, _ = sample_pairs()[2]
    answers, last = vosk_client(server.url, str(wav))
    assert all(set(a) in ({"partial"}, {"text", "result"}) for a in answers)
    assert joined(finals(answers, last)) == expected[wav.name]["text"]


def test_without_config_words_off_and_other_rates(server, expected, model, tmp_path):
    wav, _ = sample_pairs()[1]
    audio = read_audio(str(wav))
    answers, last = vosk_client(server.url + "/vosk", str(wav), config=None)  # no config: the model's 16 kHz
    assert joined(finals(answers, last)) == expected[wav.name]["text"]

    answers, last = vosk_client(server.url + "/vosk/", str(wav), config='{"config": {"sample_rate": 16000.0, '
                                                                         '"words": 0}}')
    assert all("result" not in a for a in finals(answers, last))
    assert joined(finals(answers, last)) == expected[wav.name]["text"]

    import soxr

    at8k = write_wav(tmp_path / "8k.wav", soxr.resample(audio, 16000, 8000), 8000)
    want = Recognizer.load(model, device="cpu", threads=1).transcribe(read_audio(at8k, 16000))
    answers, last = vosk_client(server.url + "/vosk", at8k)
    assert joined(finals(answers, last)) == " ".join(r.text for r in want if r.text)


def test_a_phrase_list_is_taken_as_hotwords(server):
    wav, text = sample_pairs()[0]
    config = json.dumps({"config": {"sample_rate": 16000, "phrase_list": [text.split()[1], "[unk]"],
                                    "max_alternatives": 0}})
    answers, last = vosk_client(server.url + "/vosk", str(wav), config=config)
    assert joined(finals(answers, last))


@pytest.mark.parametrize("config, error", [
    ('{"config": {"sample_rate": 16000, "model": "x"}}', "unknown field(s) in the configuration: model"),
    ('{"config": {"sample_rate": 44100.5}}', '"sample_rate" must be a whole number'),
    ('{"config": {"sample_rate": 100}}', '"sample_rate" must be a whole number from 8000'),
    ('{"config": {"max_alternatives": 3}}', '"max_alternatives" other than 0 is not supported'),
    ('{"config": {"phrase_list": "one two"}}', '"phrase_list" must be a list of strings'),
    (json.dumps({"config": {"phrase_list": [" ".join(f"w{i}x{j}" for j in range(3)) for i in range(400)]}}),
     '"phrase_list" holds 1200 words: at most 1000'),
    ('{"config": 16000}', 'the configuration must be {"config"'),
])
def test_bad_configurations_are_refused_in_one_line(server, config, error):
    with connect(server.url + "/vosk") as ws:
        ws.send(config)
        reply = json.loads(ws.recv(timeout=10))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    assert reply["type"] == "error" and reply["error"].startswith(error), reply
    assert ws.close_code == 1008


@pytest.mark.parametrize("late, error", [
    ('{"config": {"sample_rate": 16000}}', '{"config": ...} must come before the audio'),
    ('{"reset": 1}', "unexpected message"),
    (b"\x00\x01\x02", "binary messages must hold whole PCM16 samples"),
])
def test_bad_messages_after_audio_are_refused(server, late, error):
    with connect(server.url + "/vosk") as ws:
        ws.send(b"\x00\x00" * 1600)
        assert json.loads(ws.recv(timeout=30)) == {"partial": ""}
        ws.send(late)
        reply = json.loads(ws.recv(timeout=10))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    assert reply["type"] == "error" and reply["error"].startswith(error), reply


def test_the_native_protocol_is_unchanged_beside_it(server, expected):
    wav, _ = sample_pairs()[2]
    with connect(server.url) as ws:
        ws.send('{"sample_rate": 16000}')
        ws.send(pcm16(read_audio(str(wav))))
        ws.send('{"eof": 1}')
        messages = []
        while (m := json.loads(ws.recv(timeout=60)))["type"] != "eof":
            messages.append(m)
    assert " ".join(m["text"] for m in messages if m["type"] == "final" and m["text"]) == expected[wav.name]["text"]
    assert server.wait_idle()["clients"] == 0


def test_sigterm_mid_stream_answers_the_audio_received_and_closes_1001(model, expected, tmp_path):
    wav, _ = sample_pairs()[0]
    audio = read_audio(str(wav))
    s = ServerProcess(model, tmp_path / "server.log")
    try:
        with connect(s.url + "/vosk") as ws:
            ws.send('{"config": {"sample_rate": 16000}}')
            for i in range(0, len(audio), 3200):
                ws.send(pcm16(audio[i : i + 3200]))
                json.loads(ws.recv(timeout=60))
            s.proc.send_signal(signal.SIGTERM)
            last = json.loads(ws.recv(timeout=60))
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=30)
        assert ws.close_code == 1001
        assert last["text"] == expected[wav.name]["text"]  # all of it was received: all of it is answered
        assert s.proc.wait(timeout=30) == 0
    finally:
        s.stop()
