"""Hostile and damaged audio: truncated files, lying headers, NaN samples, odd paths, stdin, levels across containers."""

import json
import logging
import os
import shutil
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from asr.audio import AudioError, duration, read_audio, read_blocks
from conftest import asr_command, run_asr, sample_pairs

needs_ffmpeg = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg not installed")


@pytest.fixture(scope="module")
def speech():
    return read_audio(str(sample_pairs()[0][0]))


def _ffmpeg(src, dst, *args):
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), *args, str(dst)], check=True)


def _cut(path, fraction):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def _audio_warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "asr.audio" and r.levelno == logging.WARNING]


# Item 4: a file damaged part way gives the audio before the damage, and says so once.

def test_truncated_flac_yields_the_audio_before_the_cut_and_one_warning(tmp_path, speech, caplog):
    audio = np.tile(speech, 3)
    path = tmp_path / "cut.flac"
    sf.write(path, audio, 16000)
    _cut(path, 0.9)
    with caplog.at_level(logging.WARNING, logger="asr.audio"):
        got = np.concatenate(list(read_blocks(str(path))))
    assert 0.8 * len(audio) < len(got) < 0.95 * len(audio)
    np.testing.assert_allclose(got[:16000], audio[:16000], atol=1e-4)
    notes = _audio_warnings(caplog)
    assert len(notes) == 1 and str(path) in notes[0] and "truncated" in notes[0], notes


@needs_ffmpeg
@pytest.mark.parametrize("name,args", [
    ("cut.wav", []), ("cut.flac", []), ("cut.ogg", ["-c:a", "libvorbis"]), ("cut.opus", ["-c:a", "libopus"]),
    ("cut.mp3", ["-c:a", "libmp3lame"]), ("cut.m4a", ["-c:a", "aac", "-movflags", "+faststart"]),
    ("cut.webm", ["-c:a", "libopus"]), ("cut.mkv", ["-c:a", "pcm_s16le"]),
])
def test_every_format_cut_at_90_percent_gives_most_of_its_audio(tmp_path, speech, name, args):
    src = tmp_path / "src.wav"
    sf.write(src, np.tile(speech, 2), 16000)
    path = tmp_path / name
    _ffmpeg(src, path, *args)
    _cut(path, 0.9)
    assert len(read_audio(str(path))) > 0.75 * 2 * len(speech)


def test_cli_transcribes_a_truncated_flac_and_prints_one_warning_line(tmp_path, speech, bundled_model):
    path = tmp_path / "cut.flac"
    sf.write(path, np.tile(speech, 2), 16000)
    _cut(path, 0.9)
    r = run_asr("transcribe", path, "--model", bundled_model)
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("asr: warning: ") and str(path) in lines[0] and "truncated" in lines[0], r.stderr


# Item 7: a rate floor, and blocks bounded in output samples whatever the input rate.

def _wav_declaring(path, rate, samples):
    data = samples.astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
                     + b"data" + struct.pack("<I", len(data)) + data)


@pytest.mark.parametrize("rate", [1, 100, 3999])
def test_input_rates_below_the_floor_are_refused_at_once(tmp_path, rate):
    path = tmp_path / f"{rate}hz.wav"
    _wav_declaring(path, rate, np.random.default_rng(0).integers(-3000, 3000, 2000))  # a 4 KB file
    started = time.monotonic()
    with pytest.raises(AudioError) as e:
        read_audio(str(path))
    assert time.monotonic() - started < 2
    message = str(e.value)
    assert str(path) in message and f"{rate} Hz" in message and "\n" not in message


@pytest.mark.parametrize("rate,channels", [(4000, 1), (8000, 2), (44100, 1), (192000, 6)])
def test_blocks_are_bounded_in_output_samples_at_every_rate(tmp_path, rate, channels):
    seconds = 7.3
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / f"{rate}.wav"
    sf.write(path, np.repeat(x[:, None], channels, axis=1), rate, subtype="PCM_16")
    sizes = [len(b) for b in read_blocks(str(path), 16000, block_seconds=0.5)]
    assert max(sizes) <= 8000, sizes
    assert abs(sum(sizes) - seconds * 16000) < 0.01 * 16000


def test_the_floor_rate_itself_is_read(tmp_path):
    path = tmp_path / "4k.wav"
    sf.write(path, np.zeros(4000, np.float32), 4000)
    assert len(read_audio(str(path))) == 16000


# Item 12: non-finite samples are an error naming the file.

@pytest.mark.parametrize("where", ["all-nan", "one-inf", "some-nan"])
def test_non_finite_samples_are_an_error_naming_the_file(tmp_path, where):
    x = 0.3 * np.sin(np.arange(32000, dtype=np.float32) / 5)
    if where == "all-nan":
        x[:] = np.nan
    elif where == "one-inf":
        x[20000] = np.inf
    else:
        x[30000:30100] = np.nan
    path = tmp_path / f"{where}.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    assert sf.info(str(path)).subtype == "FLOAT"
    with pytest.raises(AudioError, match="non-finite") as e:
        read_audio(str(path))
    assert str(path) in str(e.value)


def test_cli_reports_nan_audio_in_one_line_without_numpy_warnings(tmp_path, bundled_model):
    x = 0.3 * np.sin(np.arange(48000, dtype=np.float32) / 5)
    x[40000] = -np.inf
    path = tmp_path / "inf.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    r = run_asr("transcribe", path, "--model", bundled_model)
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "non-finite" in lines[0], r.stderr


# Item 15: plain reasons for odd paths and undecodable data.

def _one_line_error(path):
    """The message read_audio and duration both give for path."""
    messages = set()
    for fn in (read_audio, duration):
        with pytest.raises(AudioError) as e:
            fn(str(path))
        messages.add(str(e.value))
    assert len(messages) == 1
    message = messages.pop()
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


def test_undecodable_data_has_a_plain_reason_without_errno_numbers(tmp_path):
    path = tmp_path / "junk.m4a"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    message = _one_line_error(path)
    assert "Errno" not in message and "1094995529" not in message and "not a readable audio file" in message
    assert message.count(str(path)) == 1


def test_fifo_and_devices_are_not_regular_files_and_nothing_waits_on_them(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)  # nobody writes to it: opening it would block forever
    assert "not a regular file" in _one_line_error(fifo)
    assert "not a regular file" in _one_line_error("/dev/zero")


def test_symlink_loop_and_broken_symlink_are_named_as_such(tmp_path):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    a.symlink_to(b)
    b.symlink_to(a)
    assert "symlink loop" in _one_line_error(a)
    dangling = tmp_path / "gone.wav"
    dangling.symlink_to(tmp_path / "never-there.wav")
    assert "broken symlink" in _one_line_error(dangling)
    assert "no such file" in _one_line_error(tmp_path / "missing.wav")


# Item 17: standard input reads every format a path reads.

@needs_ffmpeg
@pytest.mark.parametrize("name,args", [("talk.m4a", ["-c:a", "aac"]), ("talk.mp3", ["-c:a", "libmp3lame"])])
def test_stdin_accepts_every_format_a_path_accepts(tmp_path, bundled_model, name, args):
    path = tmp_path / name
    _ffmpeg(sample_pairs()[0][0], path, *args)
    expected = run_asr("transcribe", path, "--model", bundled_model)
    assert expected.returncode == 0 and expected.stdout.strip(), expected.stderr
    piped = subprocess.run(["sh", "-c", 'cat "$0" | exec "$@"', str(path), *asr_command(), "transcribe", "-",
                            "--model", bundled_model], capture_output=True, text=True, timeout=300)  # a real pipe
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == expected.stdout


def test_closed_stdin_is_one_line_and_exit_1(bundled_model):
    r = subprocess.run(["sh", "-c", 'exec "$@" 0<&-', "sh", *asr_command(), "transcribe", "-", "--model", bundled_model],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "standard input" in lines[0] and "Traceback" not in r.stderr, r.stderr


# Item 18: one downmix for every decoder.

def _db(x):
    return 10 * np.log10(np.sum(np.asarray(x, np.float64) ** 2))


@needs_ffmpeg
def test_stereo_has_the_same_level_through_every_decoder(tmp_path, speech, monkeypatch):
    import soxr

    left = soxr.resample(speech, 16000, 44100).astype(np.float32)
    right = 0.5 * np.roll(left, 441)  # different channels, so the mix is not a channel's copy
    wav = tmp_path / "stereo.wav"
    sf.write(wav, np.stack([left, right], axis=1), 44100, subtype="FLOAT")
    reference = _db(read_audio(str(wav)))
    assert abs(reference - _db(soxr.resample((left + right) / 2, 44100, 16000))) < 0.01  # the mean of the channels
    encodings = {"stereo.mp3": ["-c:a", "libmp3lame", "-b:a", "192k"], "stereo.m4a": ["-c:a", "aac", "-b:a", "192k"],
                 "stereo.opus": ["-c:a", "libopus", "-b:a", "128k"], "stereo.mkv": ["-c:a", "pcm_f32le"]}
    for name, args in encodings.items():
        _ffmpeg(wav, tmp_path / name, "-ac", "2", *args)
    levels = {name: _db(read_audio(str(tmp_path / name))) for name in encodings}
    monkeypatch.setitem(sys.modules, "av", None)  # as without PyAV: the ffmpeg program decodes
    levels["stereo.m4a via ffmpeg"] = _db(read_audio(str(tmp_path / "stereo.m4a")))
    levels["stereo.mkv via ffmpeg"] = _db(read_audio(str(tmp_path / "stereo.mkv")))
    for name, level in levels.items():
        assert abs(level - reference) < (0.05 if "mkv" in name else 0.5), (name, level - reference)


# Found by scripts/probe_bad_inputs.py.

def test_bytes_that_only_look_like_a_container_are_not_audio(tmp_path):
    """PyAV guesses FLAC for JSON bytes named .flac and yields a 0 Hz stream: that is an error, not silence."""
    fake = tmp_path / "x.flac"
    fake.write_text('{"a": 1}')
    with pytest.raises(AudioError, match="x.flac: not a readable audio file"):
        read_audio(str(fake))
    r = run_asr("transcribe", "--no-lm", fake)
    assert r.returncode == 1 and r.stdout == "" and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_name_with_a_nul_byte_fails_alone(tmp_path, bundled_model):
    good = tmp_path / "good.wav"
    sf.write(good, np.zeros(16000, np.float32), 16000)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"audio": "bad\\u0000.wav", "text": "x"}\n' + f'{{"audio": "{good}", "text": ""}}\n')
    with pytest.raises(AudioError, match="not a valid file name"):
        read_audio("bad\0.wav")
    r = run_asr("eval", manifest, "--no-lm", "--json")
    assert r.returncode == 1 and "Traceback" not in r.stderr  # one of two failed: a figure for the other
    assert json.loads(r.stdout)["utterances"] == 1


def test_an_unreadable_folder_is_named_not_called_empty():
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv to drop root")
    import pathlib
    import tempfile

    outer = pathlib.Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's own folders are closed to other users
    outer.chmod(0o755)
    (outer / "locked").mkdir()
    sf.write(outer / "a.wav", np.zeros(1600, np.float32), 16000)
    (outer / "locked").chmod(0)
    try:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *asr_command(), "transcribe",
               "--no-lm", str(outer)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": "/tmp"})
    finally:
        (outer / "locked").chmod(0o755)
        shutil.rmtree(outer)
    assert r.returncode == 1 and f"{outer / 'locked'}: cannot list folder: Permission denied" in r.stderr, r.stderr
