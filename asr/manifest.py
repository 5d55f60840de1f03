"""JSONL manifests: one utterance per line, `audio` relative to the manifest's folder or absolute."""

from __future__ import annotations

import json
import os


def read_manifest(path: str) -> list[dict]:
    """Every line as a dict with `audio` made absolute and `text` a string; bad lines raise ValueError."""
    base = os.path.dirname(os.path.abspath(path))
    items = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                d["audio"] = d["audio"] if os.path.isabs(d["audio"]) else os.path.join(base, d["audio"])
                d["text"] = str(d["text"])
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise ValueError(f"{path}:{n}: bad manifest line ({e})") from None
            items.append(d)
    return items
