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
    assert "asr/assets/en-lstm-ctc.onnx" in wanted
    assert wanted <= names
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
