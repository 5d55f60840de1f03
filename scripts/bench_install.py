"""Install footprint and start-up of the runtime, each in a fresh venv installed from the package registry.

    python scripts/bench_install.py [--wheel asr-0.1.0-py3-none-any.whl] [--variants gpu,cpu,gpu+librosa] [--runs 5]

Variants (what a user gets from the README's commands):
  gpu          `pip install asr.whl`: the default, onnxruntime-gpu on x86-64 Linux and Windows
  cpu          the runtime requirements with onnxruntime in place of onnxruntime-gpu (requirements-cpu.txt),
               then `pip install --no-deps asr.whl` (what `setup.sh --cpu` runs)
  gpu+librosa  the default plus librosa, which every runtime install pulled before it moved to the train extra

For each: the installed size (site-packages, less what a bare venv holds), the largest distributions, and the
best of --runs wall times for `import asr.cli`, `asr --help` and `asr transcribe --no-lm` of a bundled sample
(the venvs take turns, run by run, so that other load on the machine weighs on them alike).
Without --wheel the wheel is built from this tree (offline, with the running venv's setuptools).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIMES = ("onnxruntime-gpu", "onnxruntime")


def runtime_requirements(wheel: Path, cpu: bool) -> list[str]:
    """The wheel's own Requires-Dist without extras; with cpu, onnxruntime-gpu's marker lines become one
    unconditional onnxruntime requirement."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        reqs = Parser().parsestr(z.read(meta).decode()).get_all("Requires-Dist") or []
    core = [r for r in reqs if "extra ==" not in r]
    if not cpu:
        return core
    pin = next(r.split(";")[0].strip() for r in core if r.startswith("onnxruntime>") or r.startswith("onnxruntime "))
    return [r for r in core if not r.split(";")[0].strip().startswith(RUNTIMES)] + [pin]


def _run(cmd, **kw):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "ASR_MODEL", "VIRTUAL_ENV")}
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env={**env, "PYTHONNOUSERSITE": "1"},
                          check=True, **kw)


def _site(python: Path) -> Path:
    return Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())


def _megabytes(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def _distributions(python: Path) -> dict[str, float]:
    """Installed size of each distribution (from its RECORD), in MB."""
    code = ("import importlib.metadata as m, json, os\n"
            "out = {}\n"
            "for d in m.distributions():\n"
            "    n = 0\n"
            "    for f in d.files or []:\n"
            "        p = d.locate_file(f)\n"
            "        n += os.path.getsize(p) if os.path.isfile(p) else 0\n"
            "    out[d.metadata['Name']] = round(n / 1e6, 1)\n"
            "print(json.dumps(out))")
    return json.loads(_run([python, "-c", code]).stdout)


def _wall(cmd) -> float:
    t = time.perf_counter()
    _run(cmd, cwd=tempfile.gettempdir())
    return time.perf_counter() - t


def install(variant: str, wheel: Path, work: Path) -> dict:
    venv = work / variant
    _run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    bare = _megabytes(_site(python))
    t = time.perf_counter()
    if variant == "cpu":
        _run([*pip, *runtime_requirements(wheel, cpu=True)])
        _run([*pip, "--no-deps", wheel])
    else:
        _run([*pip, wheel])
        if variant == "gpu+librosa":
            _run([*pip, "librosa>=0.10"])
    install_s = time.perf_counter() - t
    dists = _distributions(python)
    sample = _run([python, "-c", "import asr.recognizer as r, os; print(os.path.join(r.SAMPLES, 'harvard-awb.wav'))"]
                  ).stdout.strip()
    exe = venv / "bin" / "asr"
    text = _run([exe, "transcribe", "--no-lm", sample]).stdout.strip()
    timed = {"import_asr_cli_s": [python, "-c", "import asr.cli"], "help_s": [exe, "--help"],
             "transcribe_sample_s": [exe, "transcribe", "--no-lm", sample]}
    return {"variant": variant, "installed_mb": round(_megabytes(_site(python)) - bare, 1),
            "install_s": round(install_s, 1),
            "largest": dict(sorted(dists.items(), key=lambda kv: -kv[1])[:6]),
            "onnxruntime": [d for d in dists if d.startswith(RUNTIMES)],
            "librosa_importable": _run([python, "-c", "import importlib.util as u; print(bool(u.find_spec('librosa')))"]
                                       ).stdout.strip() == "True",
            "transcript": text, "timed": timed}


def build_wheel(out: Path) -> Path:
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index", "--no-build-isolation", "-w", out,
          ROOT])
    (wheel,) = out.glob("asr-*.whl")
    return wheel


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheel", type=Path)
    ap.add_argument("--variants", default="gpu,cpu,gpu+librosa")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", type=Path, help="build the venvs here and keep them (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        wheel = args.wheel or build_wheel(work)
        reports = [install(v, wheel.resolve(), work) for v in args.variants.split(",")]
        best = [{k: float("inf") for k in r["timed"]} for r in reports]
        for _ in range(args.runs):
            for report, b in zip(reports, best):
                for key, cmd in report["timed"].items():
                    b[key] = min(b[key], _wall(cmd))
        for report, b in zip(reports, best):
            del report["timed"]
            print(json.dumps({**report, **{k: round(v, 3) for k, v in b.items()}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
