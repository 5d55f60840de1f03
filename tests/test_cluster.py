"""`asr transcribe --ray` on a real Ray cluster: a head node started here (`ray start --head`, 2 CPUs, its own
temporary folder, a small object store), stopped at the end; a private `ray.init()` one where `ray start`
cannot run. The outputs must equal the local batch's byte for byte; resume, per-file failures, a killed worker,
the Python API and the errors a user meets first are checked through the real `asr` command."""

import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import asr_command, run_asr, sample_pairs

# Not imported here: Ray reads its authentication settings once, at import, and the cluster fixture sets them.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs Ray (the cluster extra)")]

FAST = ("--no-lm",)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session(pid: int) -> list[int]:
    """Live processes of the session that `ray start` (started with start_new_session) leads."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


@pytest.fixture(scope="module")
def cluster():
    """The address of a Ray head node on this machine, or "local" when one cannot be started. It listens on every
    interface (Ray turns a loopback --node-ip-address into the machine's own), so it takes a token of its own,
    which the test's clients are given through the environment, as a user's would be."""
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    saved = {k: os.environ.get(k) for k in auth}
    os.environ.update(auth)  # run_asr's children and this process's own ray.init() inherit it
    exe = shutil.which("ray", path=os.path.dirname(sys.executable)) or shutil.which("ray")
    temp = tempfile.mkdtemp(prefix="asr-ray-", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    port = _free_port()
    log = open(os.path.join(temp, "start.log"), "w+")
    proc = None
    if exe:
        proc = subprocess.Popen([exe, "start", "--head", "--block", "--num-cpus", "2", "--port", str(port),
                                 "--temp-dir", temp, "--object-store-memory", str(100 << 20),
                                 "--include-dashboard", "false", "--disable-usage-stats"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = "local"
    deadline = time.monotonic() + 90
    while proc is not None and proc.poll() is None and time.monotonic() < deadline:
        log.seek(0)
        if "Ray runtime started" in log.read():
            address = f"127.0.0.1:{port}"
            break
        time.sleep(0.3)
    try:
        yield address
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)  # --block: it stops every process it started, then exits
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
            for pid in _session(proc.pid):  # anything of this head's that outlived it
                os.kill(pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _speech(seconds: float) -> np.ndarray:
    audio = np.concatenate([sf.read(str(w), dtype="float32")[0] for w, _ in sample_pairs()])
    return np.resize(audio, int(seconds * 16000))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A small archive: the samples, a nested folder, a FLAC, a name with a space, and one broken file."""
    src = tmp_path_factory.mktemp("corpus")
    (w1, _), (w2, _), (w3, _) = sample_pairs()[:3]
    shutil.copy(w1, src / "one.wav")
    shutil.copy(w2, src / "two words.wav")
    (src / "deep" / "er").mkdir(parents=True)
    shutil.copy(w3, src / "deep" / "er" / "three.wav")
    sf.write(str(src / "deep" / "long.flac"), _speech(25), 16000, format="FLAC")
    (src / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt not really")
    return src


@pytest.fixture(scope="module")
def local_outputs(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    r = run_asr("transcribe", corpus, "--output-dir", out, "--format", "all", "--jobs", "1", *FAST)
    assert r.returncode == 1 and "broken.wav" in r.stderr, r.stderr
    return out


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_folder_on_the_cluster_equals_the_local_batch_byte_for_byte(cluster, corpus, local_outputs, tmp_path):
    out = tmp_path / "out"
    r = run_asr("transcribe", corpus, "--output-dir", out, "--format", "all", "--ray", cluster, *FAST)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr  # the broken file, as locally
    errors = [line for line in r.stderr.splitlines() if "broken.wav" in line]
    assert len(errors) == 1 and errors[0].startswith("asr: "), r.stderr
    summary = r.stderr.strip().splitlines()[-1]
    assert "4 transcribed, 1 failed" in summary and "Ray, 2 actors on 2 CPUs" in summary, summary
    ray_tree, local_tree = _tree(out), _tree(local_outputs)
    assert len(ray_tree) == 4 * 5 and "deep/er/three.srt" in ray_tree and "two words.json" in ray_tree
    assert ray_tree == local_tree
    assert all(ray_tree[f"{stem}.txt"].strip() for stem in ("one", "two words", "deep/er/three", "deep/long"))


def test_skip_existing_resumes_only_what_is_missing(cluster, corpus, local_outputs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(local_outputs, out)
    for fmt in ("txt", "vtt"):
        (out / "deep" / "er" / f"three.{fmt}").unlink()
    (out / "one.json").unlink()
    kept = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and "two words" in p.name}
    r = run_asr("transcribe", corpus, "--output-dir", out, "--format", "all", "--skip-existing", "--ray", cluster,
                *FAST)
    assert r.returncode == 1, r.stderr  # the broken file has no outputs, so it is tried again, and fails again
    assert "skipping 2 already transcribed" in r.stderr and "2 transcribed, 1 failed" in r.stderr, r.stderr
    assert _tree(out) == _tree(local_outputs)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # untouched: not rewritten


def test_a_worker_killed_mid_file_is_retried_once_then_that_file_fails_alone(cluster, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    killer = src / "k.wav"
    sf.write(str(killer), _speech(120), 16000)
    for name in ("a", "b", "c"):
        sf.write(str(src / f"{name}.wav"), _speech(2), 16000)
    out = tmp_path / "out"
    proc = subprocess.Popen([*asr_command(), "transcribe", str(src), "--output-dir", str(out), "--ray", cluster,
                             *FAST], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kills = 0
    try:
        # Whichever actor has the file open dies, every time: a file that crashes its decoder, or a lost node.
        while proc.poll() is None:
            for pid in _holding(killer):
                os.kill(pid, signal.SIGKILL)
                kills += 1
            time.sleep(0.05)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert kills >= 2 and proc.returncode == 1 and "Traceback" not in stderr, stderr
    assert f"asr: the Ray worker transcribing {killer} died" in stderr and "trying it again" in stderr, stderr
    failures = [line for line in stderr.splitlines() if "died twice" in line]
    assert len(failures) == 1 and str(killer) in failures[0], stderr
    assert "3 transcribed, 1 failed" in stderr.strip().splitlines()[-1]
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt", "c.txt"]  # no k.txt, no leftovers
    assert all(p.read_text().strip() for p in out.iterdir())


def test_sigterm_stops_the_batch_and_its_actors_without_leftovers(cluster, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    files = [src / f"{name}.wav" for name in ("a", "b", "c")]
    for f in files:
        sf.write(str(f), _speech(90), 16000)
    out = tmp_path / "out"
    proc = subprocess.Popen([*asr_command(), "transcribe", str(src), "--output-dir", str(out), "--format", "all",
                             "--ray", cluster, *FAST], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(_holding(f) for f in files[:2]):
            time.sleep(0.05)
        actors = [pid for f in files for pid in _holding(f)]
        assert actors, "no actor started transcribing"
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in stderr, stderr
    assert "stopped by SIGTERM" in stderr and "--skip-existing to resume" in stderr, stderr
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{pid}") and _holding_any(pid, files)
                                              for pid in actors):
        time.sleep(0.1)
    assert not any(os.path.exists(f"/proc/{pid}") and _holding_any(pid, files) for pid in actors)
    assert not out.exists() or not [p for p in out.rglob("*") if p.name.endswith(".part")]


def _holding_any(pid: int, files) -> bool:
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") in map(str, files) for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def _holding(path: Path) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if any(os.readlink(f"/proc/{entry}/fd/{fd}") == str(path) for fd in os.listdir(f"/proc/{entry}/fd")):
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def test_the_python_api_writes_the_same_outputs(cluster, corpus, local_outputs, tmp_path):
    out = tmp_path / "out"
    program = f"""
import sys
from functools import partial
import ray
from asr import cluster
from asr.recognizer import Recognizer

status = cluster.transcribe([{str(corpus / "deep")!r}, {str(corpus / "one.wav")!r}], {str(out)!r},
                            formats=["json", "srt"], address={cluster!r},
                            loader=partial(Recognizer.load, lm=None, threads=1))
assert not ray.is_initialized(), "it connected, so it disconnects"
try:  # a model no actor can load: the reason, not a batch of identical failures
    cluster.transcribe([{str(corpus / "one.wav")!r}], {str(out / "bad")!r}, address={cluster!r},
                       loader=partial(Recognizer.load, "/nonexistent/model.onnx"))
except cluster.ClusterError as e:
    print("ClusterError:", e)
assert not ray.is_initialized()
sys.exit(status)
"""
    r = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=180,
                       cwd=Path(__file__).resolve().parent.parent)
    assert r.returncode == 0, r.stderr
    error = [line for line in r.stdout.splitlines() if line.startswith("ClusterError:")]
    assert len(error) == 1 and "no Ray actor could load the model" in error[0], r.stdout
    assert "/nonexistent/model.onnx" in error[0], error
    assert not (out / "bad").exists() or not any((out / "bad").iterdir())
    expected = {"one.json", "one.srt", "er/three.json", "er/three.srt", "long.json", "long.srt"}
    got = _tree(out)
    assert set(got) == expected
    for name in expected:
        local = name if name.startswith("one") else f"deep/{name}"
        assert got[name] == (local_outputs / local).read_bytes(), name


def test_ray_local_starts_a_private_ray_for_the_run(corpus, local_outputs, tmp_path):
    temp = tempfile.mkdtemp(prefix="asr-ray-", dir="/tmp")  # Ray's folder for it, instead of /tmp/ray
    out = tmp_path / "out"
    try:
        r = run_asr("transcribe", corpus / "deep", "--output-dir", out, "--format", "all", "--ray", "local",
                    "--jobs", "1", *FAST, env={"RAY_TMPDIR": temp, "RAY_AUTH_MODE": "token",
                                               "RAY_AUTH_TOKEN": secrets.token_hex(32)})  # not ~/.ray's
        assert r.returncode == 0 and "Ray, 1 actor on" in r.stderr, r.stderr
        assert _tree(out) == {k[len("deep/"):]: v for k, v in _tree(local_outputs).items() if k.startswith("deep/")}
        assert not [pid for pid in _session_of_dir(temp)], "the private Ray outlived its run"
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _session_of_dir(temp: str) -> list[int]:
    """Live processes whose command line names Ray's folder for the run."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if temp.encode() in open(f"/proc/{entry}/cmdline", "rb").read():
                    found.append(int(entry))
            except OSError:
                pass
    return found


def test_cluster_errors_are_one_line(cluster, corpus):
    port = _free_port()  # nothing listens there: Ray alone would wait for ever
    t0 = time.monotonic()
    r = run_asr("transcribe", corpus / "one.wav", "--ray", f"127.0.0.1:{port}", *FAST, timeout=60)
    assert r.returncode == 1 and time.monotonic() - t0 < 30, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("asr: no Ray cluster at ") and str(port) in lines[0], r.stderr
    r = run_asr("transcribe", "-", "--ray", "auto", *FAST, input="")
    assert r.returncode == 2 and "standard input" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = run_asr("transcribe", corpus / "one.wav", "--ray", "not-an-address", *FAST, timeout=60)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    if cluster != "local":  # actors bigger than any node: Ray would keep them pending, and the batch waiting
        r = run_asr("transcribe", corpus / "one.wav", "--ray", cluster, "--threads", "3", *FAST, timeout=120)
        assert r.returncode == 1 and "--threads 3: no node" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    # Without Ray installed: how to get it, in one line.
    hide_ray = ("import sys; sys.modules['ray'] = None; from asr.cli import main; "
                f"sys.exit(main(['transcribe', {str(corpus / 'one.wav')!r}, '--ray', 'auto', '--no-lm']))")
    r = subprocess.run([sys.executable, "-c", hide_ray], capture_output=True, text=True, timeout=120,
                       cwd=Path(__file__).resolve().parent.parent)
    assert r.returncode == 1 and "pip install 'asr[cluster]'" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
