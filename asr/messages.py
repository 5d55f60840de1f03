"""Messages for a terminal: file names and client input may hold newlines or escape sequences."""

from __future__ import annotations


def printable(text: str) -> str:
    """text on one line with control characters escaped (a file name with a newline or an ANSI escape in it
    must not split an error line or drive the terminal)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
