"""JSONL manifests: one utterance per line, `audio` relative to the manifest's folder or absolute."""

from __future__ import annotations

import json
import math
import os


def read_manifest(path: str) -> list[dict]:
    """Every line as a dict with `audio` made absolute and `text` a string; bad lines raise ValueError."""
    base = os.path.dirname(os.path.abspath(path))
    items = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{path}:{n}: not UTF-8 text") from None
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                d["audio"] = d["audio"] if os.path.isabs(d["audio"]) else os.path.join(base, d["audio"])
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise ValueError(f"{path}:{n}: bad manifest line ({e})") from None
            if not isinstance(d.get("text"), str):
                raise ValueError(f"{path}:{n}: bad manifest line (\"text\" must be a string, got {d.get('text')!r:.40})")
            seconds = d.get("duration", 0.0)
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
                raise ValueError(f"{path}:{n}: bad manifest line (\"duration\" must be a number of seconds, "
                                 f"got {seconds!r:.40})")
            items.append(d)
    return items
