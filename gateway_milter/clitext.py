"""Text for a command's output: what Python decoded with ``surrogateescape`` (a file name that
is not UTF-8, a script or message's raw 8-bit bytes) written as ``\\xNN``, since a stdout that
encodes strictly (any UTF-8 locale but C) raises on the surrogates and ends the command with a
traceback."""

from __future__ import annotations

import re


# control characters but tab and line end (C0, DEL, C1): a file name or a message's text could
# otherwise move the cursor, clear the screen or retitle the terminal the output is read on
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # (a surrogate surrogateescape did not make)
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
