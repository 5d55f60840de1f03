"""Silence C libraries that print to the process's stderr (libmpg123 resync notes, KenLM's loading bar)."""

from __future__ import annotations

import os
import sys


class quiet_stderr:
    def __enter__(self):
        try:
            sys.stderr.flush()
            self.saved = os.dup(2)
        except (OSError, ValueError):  # no real file descriptor 2 (embedded interpreters): nothing to hide
            self.saved = None
            return self
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            os.dup2(self.saved, 2)
            os.close(self.saved)
