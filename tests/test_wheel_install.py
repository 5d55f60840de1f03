"""A regular wheel install and an editable install find the bundled model, LM and samples the same way.

Both are installed from a clean copy of the source tree into fresh venvs that see the project's dependencies
(through a .pth line to this venv's site-packages, which runs none of its .pth files, so this checkout's editable
install stays out) and run from a directory outside the repository.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow

PROBE = """
import json, os, asr, asr.recognizer as r
print(json.dumps({"asr": asr.__file__, "assets": r.ASSETS, "model": r.BUNDLED_MODEL,
                  "lm": r.default_lm_for(r.BUNDLED_MODEL), "samples": sorted(os.listdir(r.SAMPLES))}))
"""


def _run(cmd, cwd, timeout=120):
    # Nothing from the caller's environment may point the child at this checkout or at another model.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "ASR_MODEL")}
    env["PYTHONNOUSERSITE"] = "1"
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=path).stdout
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib.strip()) / "zz_project_deps.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python


def _install(python: Path, *target, cwd):
    # --ignore-installed: pip sees this venv's asr metadata through the .pth line and must leave it alone.
    r = _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation",
              "--ignore-installed", *target], cwd=cwd, timeout=300)
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A clean copy of the tree (what a fresh clone holds), plus a training run's output that must not ship."""
    pytest.importorskip("setuptools", minversion="77")  # the build backend, used without network
    if not (ROOT / "assets" / "en-lstm-ctc.onnx").exists():
        pytest.skip("bundled model not built")
    src = tmp_path_factory.mktemp("src") / "asr-src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "runs", "*.egg-info",
                                                             "__pycache__", ".pytest_cache", "*.tmp*"))
    (src / "runs" / "exp").mkdir(parents=True)
    (src / "runs" / "exp" / "best.pt").write_bytes(b"not for the wheel")
    return src


@pytest.fixture(scope="module")
def wheel(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    r = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index", "--no-build-isolation",
              "-w", out, source], cwd=out, timeout=300)
    assert r.returncode == 0, r.stderr
    (path,) = out.glob("asr-*.whl")
    return path


def test_wheel_ships_the_assets_and_not_tests_or_runs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assets = ROOT / "assets"
    wanted = {f"asr/assets/{p.relative_to(assets)}" for p in [*assets.glob("*.onnx"), *assets.glob("samples/*.wav"),
                                                                 *assets.glob("samples/*.txt")]}
    wanted |= {f"asr/web/{p.name}" for p in (ROOT / "asr" / "web").iterdir() if p.suffix in (".html", ".js", ".css")}
    assert "asr/assets/en-lstm-ctc.onnx" in wanted and "asr/web/index.html" in wanted
    assert wanted <= names, wanted - names
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"asr", "training", "export"}, tops


def _check_install(python: Path, site_root: Path, cwd: Path) -> str:
    """asr imported from the install, the bundled files found there, and a transcript of a bundled sample."""
    r = _run([python, "-c", PROBE], cwd=cwd)
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout)
    assert Path(found["asr"]).is_relative_to(site_root), found["asr"]
    assert not Path(found["asr"]).is_relative_to(ROOT), found["asr"]
    for key in ("assets", "model"):
        assert found[key] and Path(found[key]).is_relative_to(site_root) and os.path.exists(found[key]), found
    from asr.recognizer import BUNDLED_MODEL, default_lm_for

    assert found["lm"] == default_lm_for(BUNDLED_MODEL), found  # the built LM (or none) is found the same way
    assert "harvard-awb.wav" in found["samples"] and "harvard-awb.txt" in found["samples"]

    exe = python.parent / "asr"
    info = _run([exe, "info"], cwd=cwd)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["path"] == found["model"]

    sample = Path(found["assets"]) / "samples" / "harvard-awb.wav"
    t = _run([exe, "transcribe", sample], cwd=cwd)
    assert t.returncode == 0, t.stderr
    assert any(w.isalpha() for w in t.stdout.split()), t.stdout
    return t.stdout


def test_wheel_and_editable_installs_find_the_bundled_files(wheel, source, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()

    wheel_python = _venv(tmp_path / "wheel-venv")
    _install(wheel_python, wheel, cwd=outside)
    from_wheel = _check_install(wheel_python, tmp_path / "wheel-venv", outside)

    editable_python = _venv(tmp_path / "editable-venv")
    _install(editable_python, "-e", source, cwd=outside)
    from_editable = _check_install(editable_python, source, outside)

    assert from_wheel == from_editable  # same model, same LM: the same words


# ---- the lean install: no librosa at run time, and the CPU build of onnxruntime for machines without a GPU ------

HEAVY = ("librosa", "numba", "llvmlite", "scipy", "scikit-learn", "torch")  # training's, never the runtime's
ALL_MODULES = """
import importlib, pkgutil, asr
names = [m.name for m in pkgutil.walk_packages(asr.__path__, "asr.")]
for n in names:
    importlib.import_module(n)
print(len(names))
"""


def _requirement_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_cpu_requirements_are_the_runtime_dependencies_with_the_cpu_build():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = project["dependencies"]
    assert not any(d.startswith(HEAVY) for d in core), core
    assert any(d.startswith("librosa") for d in project["optional-dependencies"]["train"])
    cpu = _requirement_lines((ROOT / "requirements-cpu.txt").read_text())
    gpu, plain = [d for d in core if d.startswith("onnxruntime-gpu")], [d for d in core if d.startswith("onnxruntime>")]
    assert len(gpu) == len(plain) == 1 and "x86_64" in gpu[0]
    want = [d for d in core if not d.startswith("onnxruntime")] + [plain[0].split(";")[0].strip()]
    assert [d.replace("'", '"') for d in cpu] == [d.replace("'", '"') for d in want]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """Skips unless pip (with its own index settings) can fetch from the package registry."""
    probe = _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp_path_factory.mktemp("probe"),
                  "tqdm>=4.60"], cwd=tmp_path_factory.getbasetemp(), timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"the package registry is unreachable: {(probe.stderr.strip().splitlines() or ['?'])[-1]}")


def test_the_cpu_install_from_the_registry_runs_without_librosa_or_the_gpu_build(source, registry, tmp_path):
    """The README's CPU-only install, for real: a fresh venv with its own pip, requirements-cpu.txt from the
    registry, then `pip install --no-deps .` from a clean tree (built in pip's isolated build environment,
    setuptools from the registry); the tree is deleted before anything runs. Nothing of this venv is visible
    to it."""
    tree = tmp_path / "asr-src"
    shutil.copytree(source, tree)
    venv = tmp_path / "cpu-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python, outside = venv / "bin" / "python", tmp_path / "elsewhere"
    outside.mkdir()
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    for args in (["-r", "requirements-cpu.txt"], ["--no-deps", "."]):
        r = _run([*pip, *args], cwd=tree, timeout=600)
        assert r.returncode == 0, r.stderr
        assert "ERROR" not in r.stderr, r.stderr  # in this order pip has no missing onnxruntime-gpu to report
    shutil.rmtree(tree)

    listed = _run([python, "-m", "pip", "list", "--format", "json"], cwd=outside)
    names = {d["name"].lower() for d in json.loads(listed.stdout)}
    assert "onnxruntime" in names and "onnxruntime-gpu" not in names, names
    assert not names & set(HEAVY), names & set(HEAVY)

    modules = _run([python, "-c", ALL_MODULES], cwd=outside)
    assert modules.returncode == 0, modules.stderr  # every runtime module imports without librosa or torch
    assert int(modules.stdout) > 20

    found = json.loads(_run([python, "-c", PROBE], cwd=outside).stdout)
    sample = Path(found["assets"]) / "samples" / "harvard-awb.wav"
    assert Path(found["assets"]).is_relative_to(venv)
    exe = venv / "bin" / "asr"
    t = _run([exe, "transcribe", "--no-lm", sample], cwd=outside)
    assert t.returncode == 0, t.stderr
    here = _run([sys.executable, "-m", "asr.cli", "transcribe", "--no-lm", sample], cwd=ROOT)
    assert t.stdout == here.stdout and any(w.isalpha() for w in t.stdout.split())

    manifest = outside / "samples.jsonl"
    manifest.write_text("".join(json.dumps({"audio": str(p), "text": p.with_suffix(".txt").read_text().strip()})
                                + "\n" for p in sorted((Path(found["assets"]) / "samples").glob("*.wav"))))
    e = _run([exe, "eval", manifest], cwd=outside)
    assert e.returncode == 0 and "WER" in e.stdout + e.stderr, e.stderr

    serve = subprocess.Popen([str(exe), "serve", "--port", "0"], cwd=outside, stderr=subprocess.PIPE, text=True,
                             env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ASR_MODEL")})
    try:
        lines = []
        while (line := serve.stderr.readline()) and "serving on" not in line and len(lines) < 50:
            lines.append(line)
        assert "serving on ws://127.0.0.1:" in line and "CPUExecutionProvider" in line, lines
    finally:
        serve.send_signal(2)
        assert serve.wait(timeout=60) == 0
