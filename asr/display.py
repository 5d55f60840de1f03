"""The terminal display of live results (`asr live`, `asr client`): partials redrawn in place, finals as lines."""

from __future__ import annotations

import shutil
import sys

import numpy as np

from .writers import json_line, text_line


class Display:
    """Terminal: the partial is updated in place (only its changed tail is redrawn) and each final becomes a
    line. Not a terminal: one JSON object per result and line."""

    def __init__(self, out=None, timestamps: bool = False, meter: bool = False):
        # sys.stdout looked up now, not at import: it may have been replaced since (tests, embedding apps)
        self.out, self.timestamps, self.meter = out or sys.stdout, timestamps, meter
        self.tty = self.out.isatty()
        self._shown = ""  # what the partial line shows now
        self._level = ""

    def show(self, result) -> None:
        if not self.tty:
            self.out.write(json_line(result) + "\n")
        elif result.final:
            self.out.write(f"\r\033[K{text_line(result, self.timestamps)}\n")
            self._shown = ""
        else:
            self._redraw(self._level + result.text)
        self.out.flush()

    def level(self, samples: np.ndarray) -> None:
        if not (self.tty and self.meter):
            return
        db = 20 * np.log10(np.sqrt(np.mean(samples**2)) + 1e-9)
        bars = int(np.clip((db + 60) / 6, 0, 10))
        level = "[" + "#" * bars + " " * (10 - bars) + "] "
        if level != self._level:
            self._redraw(level + self._shown[len(self._level):])
            self._level = level
            self.out.flush()

    def _redraw(self, text: str) -> None:
        width = shutil.get_terminal_size((100, 20)).columns - 1
        text = text if len(text) <= width else "…" + text[-(width - 1):]
        common = 0
        while common < min(len(text), len(self._shown)) and text[common] == self._shown[common]:
            common += 1
        back = len(self._shown) - common
        # Stable words stay on screen untouched: move back over the changed tail only.
        self.out.write("\b" * back + text[common:] + ("\033[K" if back else ""))
        self._shown = text
