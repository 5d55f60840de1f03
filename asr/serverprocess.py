"""`asr serve` as a child process on 127.0.0.1 (an OS-chosen port): started, watched and stopped, for the
benchmark and the tests alike. Its stderr goes to a log file, which is where the port is read from."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request


def proc_status_mb(key: str, pid: int | str = "self") -> float:
    """A memory line of /proc/PID/status (VmRSS, VmHWM, ...) in MB (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith(key + ":"))


class ServerProcess:
    def __init__(self, model: str, log_path: str | None = None, *args, device: str = "cpu", threads: int = 1,
                 start_timeout: float = 90.0):
        """Runs `asr serve --model MODEL ... ARGS` and returns once it serves; RuntimeError (with the end of its
        log) when it exits or stays silent for start_timeout seconds instead."""
        self._own_log = log_path is None
        if self._own_log:
            fd, log_path = tempfile.mkstemp(prefix="asr-serve-", suffix=".log")
            os.close(fd)
        self.log_path = str(log_path)
        t0 = time.monotonic()
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "asr.cli", "serve", "--host", "127.0.0.1", "--port", "0", "--model", model,
                 "--device", device, "--threads", str(threads), *map(str, args)],
                stdout=subprocess.DEVNULL, stderr=log)
        while not (m := re.search(r"serving on ws://127\.0\.0\.1:(\d+)", self.log())):
            if self.proc.poll() is not None or time.monotonic() > t0 + start_timeout:
                tail = " | ".join(self.log().strip().splitlines()[-3:])
                self.stop()
                raise RuntimeError(f"asr serve did not start: {tail or 'no output'}")
            time.sleep(0.05)
        self.start_s = time.monotonic() - t0
        self.port = int(m.group(1))
        self.url = f"ws://127.0.0.1:{self.port}"

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def health(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=10) as r:
            if r.status != 200 or r.headers["Content-Type"] != "application/json":
                raise RuntimeError(f"/health answered {r.status} {r.headers['Content-Type']}")
            return json.loads(r.read())

    def wait_idle(self, timeout: float = 30.0) -> dict:
        """The health report once no client and no stream is left; RuntimeError after timeout seconds."""
        deadline = time.monotonic() + timeout
        while (h := self.health())["clients"] or h["streams"]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"server still busy after {timeout:g} s: {h}")
            time.sleep(0.05)
        return h

    def status(self, key: str) -> float:
        return proc_status_mb(key, self.proc.pid)

    def rss_mb(self) -> float:
        return self.status("VmRSS")

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (the server's clean shutdown), then SIGKILL after timeout seconds; its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if self._own_log and os.path.exists(self.log_path):
            os.remove(self.log_path)
        return code
