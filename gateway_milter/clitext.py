"""Text for a command's output: what Python decoded with ``surrogateescape`` (a file name that
is not UTF-8, a script or message's raw 8-bit bytes) written as ``\\xNN``, since a stdout that
encodes strictly (any UTF-8 locale but C) raises on the surrogates and ends the command with a
traceback."""

from __future__ import annotations


def printable(text: str) -> str:
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # (a surrogate surrogateescape did not make)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
