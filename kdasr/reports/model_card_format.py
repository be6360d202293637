"""Numbers as the model card prints them."""

from __future__ import annotations


def decimals(x, digits=1) -> str:
    """`x` to `digits` decimals; "–" where the fact was not recorded (None)."""
    return "–" if x is None else f"{x:.{digits}f}"
