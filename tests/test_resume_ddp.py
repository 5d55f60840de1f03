"""Training robustness: a run killed at any moment resumes exactly; DDP ranks agree."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

OVERRIDES = ["epochs=4", "model.hidden=160", "model.layers=2", "model.dropout=0.1", "batch_seconds=10",
             "average_last=1", "augment.speeds=[1.0, 1.1]", "threads=1", "checkpoint_minutes=0", "warmup_steps=3"]

SCRIPT = textwrap.dedent("""
    import sys, torch
    from training.config import load_config
    from training.train import train
    manifest, out, resume = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    cfg = load_config(None, sys.argv[4:])
    result = train([manifest], [manifest], out, cfg, resume=resume, cache_dir=out + "/cache", device="cpu")
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    torch.save(result["state_dict"], f"{out}/final-rank{rank}.pt")
""")


def _script(tmp_path):
    path = tmp_path / "train_script.py"
    path.write_text(SCRIPT)
    return str(path)


def _env():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _position(path):
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:
        return None
    return ck["epoch"], ck["batch"]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tmp_path, sample_manifest):
    script = _script(tmp_path)
    straight = tmp_path / "straight"
    subprocess.run([sys.executable, script, sample_manifest, str(straight), "0", *OVERRIDES], check=True,
                   env=_env(), capture_output=True, timeout=600)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, script, sample_manifest, str(killed), "0", *OVERRIDES], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        pos = _position(killed / "last.pt") if (killed / "last.pt").exists() else None
        if pos and (pos[0], pos[1]) >= (1, 1):  # mid-way through the second epoch
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "final-rank0.pt").exists(), "the run finished before it could be killed"
    subprocess.run([sys.executable, script, sample_manifest, str(killed), "1", *OVERRIDES], check=True,
                   env=_env(), capture_output=True, timeout=600)
    a = torch.load(straight / "final-rank0.pt")
    b = torch.load(killed / "final-rank0.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_ddp_two_cpu_processes_agree(tmp_path, sample_manifest):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun not installed")
    out = tmp_path / "ddp"
    r = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", _script(tmp_path), sample_manifest, str(out),
                        "0", *OVERRIDES[:-1]], env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-8000:]
    w0 = torch.load(out / "final-rank0.pt")
    w1 = torch.load(out / "final-rank1.pt")
    for k in w0:
        torch.testing.assert_close(w0[k], w1[k], rtol=0, atol=0)
    assert (out / "best.pt").exists() and (out / "metrics.csv").exists()
