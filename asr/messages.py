"""Messages for a terminal: file names and client input may hold newlines or escape sequences."""

from __future__ import annotations


def printable(text: str) -> str:
    """text on one line with control characters escaped (a file name with a newline or an ANSI escape in it
    must not split an error line or drive the terminal)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def first_line(e: BaseException) -> str:
    """An exception as one line for a user: its message's first line, or its type when it has none."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def clip(text: str, n: int = 40) -> str:
    """text cut to n characters (an ellipsis marks the cut): error messages that quote input stay short."""
    return text if len(text) <= n else text[:n] + "..."
