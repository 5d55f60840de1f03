"""asr.serverprocess: the one way the benchmark and the tests start `asr serve` (a real subprocess)."""

import os

import pytest

from asr.serverprocess import ServerProcess


def test_a_server_starts_reports_health_and_stops_cleanly(any_model):
    s = ServerProcess(any_model, None, "--no-lm", "--max-clients", 3)
    try:
        assert s.url == f"ws://127.0.0.1:{s.port}" and s.start_s > 0
        h = s.wait_idle()
        assert h["clients"] == 0 and h["streams"] == 0
        assert s.rss_mb() > 10 and s.status("VmHWM") >= s.rss_mb() and s.cpu_seconds() > 0
        assert "serving on" in s.log()
    finally:
        code = s.stop()
    assert code == 0 and not os.path.exists(s.log_path)  # its own temporary log is gone with it


def test_a_server_that_cannot_start_is_one_error_naming_why(tmp_path):
    log = tmp_path / "server.log"
    with pytest.raises(RuntimeError, match="asr serve did not start: .*nope.onnx") as e:
        ServerProcess(str(tmp_path / "nope.onnx"), log)
    assert "\n" not in str(e.value)
    assert "nope.onnx" in log.read_text()  # a log the caller named is kept
