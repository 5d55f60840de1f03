"""argparse types that refuse bad numbers at parse time with a one-line reason (usage error, exit 2).

Kept free of heavy imports so every command's parser (including train and export, which must not load
torch to show --help) can use them.
"""

from __future__ import annotations

import argparse
import math


def int_at_least(lo: int, hi: int | None = None):
    """A whole number >= lo (and <= hi when given)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum, {lo}")
        if hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"{value} is above the maximum, {hi}")
        return value
    parse.__name__ = f"whole number >= {lo}"  # argparse names the type in some messages
    return parse


def number(at_least: float | None = None, above: float | None = None):
    """A finite number (no nan, no inf), optionally >= at_least or > above."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if at_least is not None and value < at_least:
            raise argparse.ArgumentTypeError(f"{value:g} is below the minimum, {at_least:g}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"{value:g} must be above {above:g}")
        return value
    parse.__name__ = "number"
    return parse


finite_float = number()
positive_float = number(above=0)
non_negative_float = number(at_least=0)
