"""Where asr keeps derived data that is not in the repository (the book LM, the Kokoro model and voices)."""

from __future__ import annotations

import os


def user_cache(*parts: str) -> str:
    """$XDG_CACHE_HOME/asr/... (~/.cache/asr/... when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "asr", *parts)
