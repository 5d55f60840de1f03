"""File transcription at scale: real files in real formats, batches with bad files, long files in bounded memory."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from asr.audio import read_audio
from asr.features import log_mel
from conftest import asr_command, mel_config, run_asr, sample_pairs

needs_ffmpeg = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg not installed")


@pytest.fixture(scope="module")
def speech():
    return read_audio(str(sample_pairs()[0][0]))


def _similar(a, b, min_corr):
    n = min(len(a), len(b))
    assert abs(len(a) - len(b)) < 0.05 * 16000
    corr = np.corrcoef(a[:n], b[:n])[0, 1]
    assert corr > min_corr, corr


@pytest.mark.parametrize("name,rate,channels,subtype,fmt", [
    ("pcm16.wav", 16000, 1, "PCM_16", "WAV"),
    ("8k.wav", 8000, 1, "PCM_16", "WAV"),
    ("44k-stereo.wav", 44100, 2, "PCM_16", "WAV"),
    ("24bit.wav", 48000, 1, "PCM_24", "WAV"),
    ("float.wav", 22050, 1, "FLOAT", "WAV"),
    ("lossless.flac", 44100, 2, "PCM_16", "FLAC"),
])
def test_lossless_formats_decode_to_the_same_16k_mono_signal(tmp_path, speech, name, rate, channels, subtype, fmt):
    import soxr

    x = soxr.resample(speech, 16000, rate) if rate != 16000 else speech
    data = np.stack([x, x], axis=1) if channels == 2 else x
    path = tmp_path / name
    sf.write(path, data * 0.9, rate, subtype=subtype, format=fmt)
    y = read_audio(str(path))
    if rate >= 16000:
        _similar(y, speech * 0.9, 0.999)
    else:  # 8 kHz lost everything above 4 kHz
        _similar(y, speech * 0.9, 0.9)


@pytest.mark.parametrize("name,args", [
    ("vorbis.ogg", ["-c:a", "libvorbis"]),
    ("speech.opus", ["-c:a", "libopus", "-b:a", "32k"]),
    ("speech.mp3", ["-c:a", "libmp3lame", "-b:a", "64k"]),
    ("phone.m4a", ["-c:a", "aac", "-b:a", "64k"]),
    ("clip.webm", ["-c:a", "libopus"]),
    ("video.mp4", ["-f", "lavfi", "-i", "color=c=black:s=64x64:r=10", "-shortest", "-c:v", "libx264", "-c:a", "aac"]),
])
@needs_ffmpeg
def test_compressed_formats_and_video_decode_like_the_original(tmp_path, any_model, name, args):
    wav = sample_pairs()[0][0]
    path = tmp_path / name
    extra_inputs = args[: args.index("-shortest")] if "-shortest" in args else []
    codec = args[len(extra_inputs):]
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), *extra_inputs, *codec, str(path)], check=True)
    decoded = read_audio(str(path))
    original = read_audio(str(wav))
    assert abs(len(decoded) - len(original)) / 16000 < 0.2
    # Lossy codecs change samples and add delay: compare spectrograms, aligned by frame energy.
    cfg = mel_config()
    a, b = log_mel(original, cfg, normalize=False), log_mel(decoded, cfg, normalize=False)
    ea, eb = a.mean(axis=1), b.mean(axis=1)
    n = min(len(a), len(b)) - 20
    lag = max(range(-10, 11), key=lambda k: np.corrcoef(ea[10 : 10 + n], eb[10 + k : 10 + k + n])[0, 1])
    corr = np.corrcoef(a[10 : 10 + n].ravel(), b[10 + lag : 10 + lag + n].ravel())[0, 1]
    assert corr > 0.9, corr
    got = run_asr("transcribe", path, "--model", any_model)
    assert got.returncode == 0 and got.stdout.strip(), got.stderr


def test_batch_with_bad_files_reports_each_and_finishes_the_rest(tmp_path, any_model):
    good = [w for w, _ in sample_pairs()]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "zero.wav").write_bytes(b"")
    (bad / "text.mp3").write_text("not audio at all\n" * 50)
    data = good[0].read_bytes()
    (bad / "corrupt.wav").write_bytes(data[:44] + bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)))
    flac = tmp_path / "whole.flac"
    sf.write(flac, read_audio(str(good[0])), 16000)
    (bad / "truncated.flac").write_bytes(flac.read_bytes()[: flac.stat().st_size // 2] + b"\xff" * 64)
    out = tmp_path / "out"
    r = run_asr("transcribe", *good, bad, "--model", any_model, "--output-dir", out, "--jobs", "2")
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("asr: ") and "transcribed" not in line]
    named = {name for name in ("zero.wav", "text.mp3") if any(name in e for e in errors)}
    assert named == {"zero.wav", "text.mp3"}
    assert "Traceback" not in r.stderr
    for w in good:
        assert (out / f"{w.stem}.txt").exists()
    assert not (out / "zero.txt").exists() and not (out / "text.txt").exists()
    summary = r.stderr.strip().splitlines()[-1]
    assert "failed" in summary and "jobs" in summary


def test_folders_globs_all_formats_skip_existing_and_parallel_equals_serial(tmp_path, any_model):
    src = tmp_path / "in" / "nested"
    src.mkdir(parents=True)
    for w, _ in sample_pairs():
        shutil.copy(w, src / w.name)
    out1, out2 = tmp_path / "o1", tmp_path / "o2"
    assert run_asr("transcribe", tmp_path / "in", "--model", any_model, "--output-dir", out1, "--format", "all",
                   "--jobs", "1").returncode == 0
    assert run_asr("transcribe", str(src / "*.wav"), "--model", any_model, "--output-dir", out2, "--format", "all",
                   "--jobs", "2").returncode == 0
    mirrored = out1 / "nested"  # a folder argument's subfolders are mirrored; a glob's literal folder is not
    files = sorted(p.name for p in mirrored.iterdir())
    assert files == sorted(p.name for p in out2.iterdir()) and len(files) == 5 * len(sample_pairs())
    for name in files:
        assert (mirrored / name).read_text() == (out2 / name).read_text()
    tsv = (mirrored / f"{sample_pairs()[0][0].stem}.tsv").read_text().splitlines()
    assert tsv[0] == "start\tend\ttext" and int(tsv[1].split("\t")[1]) > int(tsv[1].split("\t")[0])
    stamp = (mirrored / files[0]).stat().st_mtime_ns
    r = run_asr("transcribe", tmp_path / "in", "--model", any_model, "--output-dir", out1, "--format", "all",
                "--skip-existing")
    assert r.returncode == 0 and "skipping 3" in r.stderr and (mirrored / files[0]).stat().st_mtime_ns == stamp


def test_stdin(any_model):
    wav = sample_pairs()[0][0]
    expected = run_asr("transcribe", wav, "--model", any_model).stdout
    r = subprocess.run([*asr_command(), "transcribe", "-", "--model", any_model, "--format", "json"],
                       input=wav.read_bytes(), capture_output=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["text"] == " ".join(expected.split())


@pytest.mark.slow
def test_an_hour_long_file_transcribes_in_bounded_memory(tmp_path, tiny_onnx):
    """Peak RSS of the transcribing process does not grow with the length of the file."""
    speech = read_audio(str(sample_pairs()[0][0]))
    piece = np.concatenate([speech, np.zeros(16000 * 2, np.float32)])

    def make(path, seconds):
        with sf.SoundFile(path, "w", 16000, 1, "PCM_16", format="FLAC") as f:
            for _ in range(int(seconds / (len(piece) / 16000)) + 1):
                f.write(piece)

    def peak_rss_mb(path):
        script = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
                  "stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        out = subprocess.run([sys.executable, "-c", script, *asr_command(), "transcribe", str(path), "--model", tiny_onnx,
                              "--format", "json"], capture_output=True, text=True, check=True)
        return int(out.stdout.strip()) / 1024

    make(tmp_path / "short.flac", 5 * 60)
    make(tmp_path / "long.flac", 62 * 60)
    short, long = peak_rss_mb(tmp_path / "short.flac"), peak_rss_mb(tmp_path / "long.flac")
    assert long < short + 60, (short, long)
