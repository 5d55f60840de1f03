"""Batch transcription under faults: colliding names, unwritable outputs, dead workers, a killed parent, planted
symlinks, and evaluation with nothing to score. Real files, real `asr` subprocesses, real signals."""

import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf

from conftest import asr_command, run_asr, sample_pairs

FAST = ("--no-lm",)


def _speech(seconds: float) -> np.ndarray:
    """The bundled samples, repeated to the given length (real speech, so there is text to write)."""
    audio = np.concatenate([sf.read(str(w), dtype="float32")[0] for w, _ in sample_pairs()])
    return np.resize(audio, int(seconds * 16000))


def _write(path, seconds=2.0, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), _speech(seconds), 16000, format=fmt)
    return path


def _leftovers(folder):
    return [p for p in folder.rglob("*") if p.name.endswith(".part")]


def _errors(stderr):
    return [line for line in stderr.splitlines() if line.startswith("asr: ")]


def _children(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                kids.append(int(entry))
    return kids


def _alive(pid):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited; only its reaper is missing


def _start(*args):
    return subprocess.Popen([*asr_command(), "transcribe", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_same_stem_in_two_folders_gets_two_outputs(tmp_path, bundled_model):
    (w1, _), (w2, _), (w3, _) = sample_pairs()[:3]
    src = tmp_path / "in"
    for folder, wav in (("a", w1), ("b", w2), ("b/deep", w3)):
        (src / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(wav, src / folder / "x.wav")
    out = tmp_path / "out"
    r = run_asr("transcribe", src, "--output-dir", out, "--jobs", "2", *FAST)
    assert r.returncode == 0, r.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.txt")) == ["a/x.txt", "b/deep/x.txt", "b/x.txt"]
    for folder, wav in (("a", w1), ("b", w2), ("b/deep", w3)):
        assert (out / folder / "x.txt").read_text() == run_asr("transcribe", wav, *FAST).stdout
    assert "3 transcribed, 0 failed" in r.stderr
    # A glob mirrors the folders below its literal part too; a resumed batch sees all three as done.
    r = run_asr("transcribe", f"{src}/**/*.wav", "--output-dir", out, "--skip-existing", *FAST)
    assert r.returncode == 0 and "skipping 3" in r.stderr, r.stderr


def test_outputs_that_would_collide_refuse_the_batch_up_front(tmp_path, bundled_model):
    src = tmp_path / "in"
    _write(src / "y.wav")
    _write(src / "y.flac", fmt="FLAC")
    _write(src / "z.wav")
    out = tmp_path / "out"
    r = run_asr("transcribe", src, "--output-dir", out, *FAST)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert str(src / "y.wav") in r.stderr and str(src / "y.flac") in r.stderr and "z.wav" not in r.stderr
    assert not out.exists() or not any(out.iterdir())
    _write(tmp_path / "other" / "z.wav")  # two arguments with one name
    r = run_asr("transcribe", src / "z.wav", tmp_path / "other" / "z.wav", "--output-dir", out, *FAST)
    assert r.returncode == 2 and "other/z.wav" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_an_output_name_too_long_fails_that_file_only(tmp_path, bundled_model):
    src = tmp_path / "in"
    long_stem = "a" * 251  # the input (.wav) and its .txt fit the 255-byte limit; its .json does not
    for name in (long_stem, "b", "c"):
        _write(src / f"{name}.wav")
    out = tmp_path / "out"
    r = run_asr("transcribe", src, "--output-dir", out, "--format", "all", "--jobs", "2", *FAST)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    errors = [e for e in _errors(r.stderr) if "transcribed" not in e]
    assert len(errors) == 1 and long_stem in errors[0] and "File name too long" in errors[0]
    assert "2 transcribed, 1 failed" in r.stderr.strip().splitlines()[-1]
    for name in ("b", "c"):
        assert all((out / f"{name}.{fmt}").stat().st_size > 0 for fmt in ("txt", "json", "srt", "vtt", "tsv"))
    assert (out / f"{long_stem}.txt").exists()  # the temporary name stays within the limit too
    assert _leftovers(out) == []


def test_a_full_disk_fails_each_file_and_the_batch_goes_on(tmp_path, bundled_model):
    src = tmp_path / "in"
    for name in ("a", "b", "c"):
        _write(src / f"{name}.wav")
    out = tmp_path / "out"
    out.mkdir()
    # A one-page tmpfs in a private mount namespace: the first transcript fills it.
    script = ('mount -t tmpfs -o size=4k tmpfs "$0" || exit 99; "$@"; rc=$?; '
              'find "$0" -name "*.part" | sed "s/^/LEFTOVER /"; ls "$0" | sed "s/^/OUT /"; exit $rc')
    cmd = ["unshare", "-rm", "sh", "-c", script, str(out), *asr_command(), "transcribe", str(src),
           "--output-dir", str(out), "--jobs", "1", *FAST]
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode == 99 or "unshare:" in r.stderr:
        pytest.skip("cannot mount a private tmpfs here: " + r.stderr.strip())
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    errors = [e for e in _errors(r.stderr) if "transcribed" not in e]
    assert len(errors) == 2 and all("No space left on device" in e for e in errors), r.stderr
    assert "1 transcribed, 2 failed" in r.stderr.strip().splitlines()[-1]
    assert "LEFTOVER" not in r.stdout and r.stdout.count("OUT ") == 1, r.stdout


def test_a_file_that_kills_its_worker_fails_alone_and_the_rest_are_transcribed(tmp_path, bundled_model):
    src = tmp_path / "in"
    killer = _write(src / "k.wav", seconds=90)
    for name in ("a", "b", "m", "z"):
        _write(src / f"{name}.wav")
    out = tmp_path / "out"
    proc = _start(src, "--output-dir", out, "--jobs", "2", *FAST)
    kills = 0
    try:
        # Whichever worker has the file open dies, every time: a file that crashes its decoder.
        while proc.poll() is None:
            for pid in _children(proc.pid):
                try:
                    if any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(killer) for fd in os.listdir(f"/proc/{pid}/fd")):
                        os.kill(pid, signal.SIGKILL)
                        kills += 1
                except OSError:
                    pass
            time.sleep(0.02)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    # One kill when the killer was alone in flight (failed at once), more when another file died with it (both
    # retried one at a time, the killer killed again): which one happens depends on the two workers' timing.
    assert kills >= 1 and proc.returncode == 1 and "Traceback" not in stderr, stderr
    failures = [e for e in _errors(stderr) if "died" in e and "retrying" not in e]
    assert len(failures) == 1 and str(killer) in failures[0], stderr
    assert "4 transcribed, 1 failed" in stderr.strip().splitlines()[-1]
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt", "m.txt", "z.txt"]
    assert all(p.read_text().strip() for p in out.iterdir())


def _batch_in_flight(tmp_path, files=8, seconds=40):
    src = tmp_path / "in"
    for n in range(files):
        _write(src / f"f{n}.wav", seconds=seconds)
    out = tmp_path / "out"
    proc = _start(src, "--output-dir", out, "--jobs", "2", *FAST)
    assert _wait_for(lambda: len(_children(proc.pid)) >= 2, 60), proc.stderr.read() if proc.poll() is not None else ""
    workers = _children(proc.pid)
    return proc, workers, out


def test_workers_die_with_a_killed_parent(tmp_path, bundled_model):
    proc, workers, out = _batch_in_flight(tmp_path)
    try:
        time.sleep(1.0)  # loaded and transcribing
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert _wait_for(lambda: not any(map(_alive, workers)), 5), [w for w in workers if _alive(w)]
    finally:
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert _leftovers(out) == [] if out.exists() else True


def test_sigterm_stops_the_batch_cleanly(tmp_path, bundled_model):
    proc, workers, out = _batch_in_flight(tmp_path)
    try:
        assert _wait_for(lambda: out.exists() and any(out.glob("*.txt")), 60)
        time.sleep(1.0)  # the file is written before its outcome reaches the parent
        os.kill(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=15)
        assert _wait_for(lambda: not any(map(_alive, workers)), 5)
    finally:
        proc.kill()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 143 and "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("asr: stopped by SIGTERM: ") and "of 8 files transcribed" in last, stderr
    done = int(last.split(": ")[2].split()[0])
    assert 1 <= done < 8 and len(list(out.glob("*.txt"))) >= done
    assert _leftovers(out) == [] and all(p.read_text().endswith("\n") for p in out.glob("*.txt"))


def test_a_symlink_planted_at_an_output_is_replaced_not_followed(tmp_path, bundled_model):
    wav = _write(tmp_path / "in" / "x.wav")
    victim = tmp_path / "elsewhere.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.txt").symlink_to(victim)
    r = run_asr("transcribe", wav, "--output-dir", out, *FAST)
    assert r.returncode == 0, r.stderr
    assert victim.read_text() == "precious\n"
    assert not (out / "x.txt").is_symlink() and (out / "x.txt").read_text() == run_asr("transcribe", wav, *FAST).stdout


@pytest.mark.parametrize("lines", [[], [{"audio": "gone-1.wav", "text": "a"}, {"audio": "gone-2.wav", "text": "b"}]],
                         ids=["empty", "all-failed"])
def test_eval_with_nothing_to_score_reports_no_figure(tmp_path, bundled_model, lines):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(d) + "\n" for d in lines))
    for extra in ((), ("--json",)):
        r = run_asr("eval", manifest, *extra, *FAST)
        assert r.returncode != 0 and "WER" not in r.stdout and "wer" not in r.stdout and r.stdout.strip() == ""
        last = r.stderr.strip().splitlines()
        assert "nothing to score" in last[-1] and str(manifest) in last[-1] and "Traceback" not in r.stderr
        assert len(last) == 1 + len(lines)  # one line per unreadable file, one saying why there is no figure
