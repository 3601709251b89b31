"""Translate SpamAssassin (Perl) regular expressions to the ``regex`` module and Hyperscan.

Perl and Python differ in a few places that matter for SpamAssassin's rules: ``\\z`` / ``\\Z``,
``\\h``, ``$`` at end of string, and the ``/x`` and ``/m`` flags. A pattern we cannot translate
raises :class:`PatternError` and its rule is listed as unsupported (never half-applied).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

import regex

from gateway_milter.antispam import possessive

ALLOWED_MODS = set("imsx")
# a quantifier with blanks inside its braces ("{ 2 }", "{1, 3}"): at least one blank, one number
_SPACED_QUANTIFIER = re.compile(r"\{[ \t]*(\d+)[ \t]*(,)?[ \t]*(\d*)[ \t]*\}")
POSIX = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": r"\s", "blank": r" \t", "punct": r"!-/:-@\[-`{-~", "xdigit": "0-9A-Fa-f",
    "cntrl": r"\x00-\x1f\x7f", "print": r"\x20-\x7e", "graph": r"\x21-\x7e", "word": r"\w",
}


class PatternError(ValueError):
    pass


def octets(s: str) -> str:
    """The string as Perl's byte semantics see it: its UTF-8 bytes, one character per byte
    (Latin-1), so that ``\\xc3\\xa9`` meets an "é" as it does in SpamAssassin, which gives its
    rules UTF-8 octets (the rendered body, decoded headers) and reads rule files as bytes.
    Surrogate escapes (bytes that were not UTF-8) become those bytes again. An ASCII string is
    returned as it is."""
    if s.isascii():
        return s
    try:
        return s.encode("utf-8", "surrogateescape").decode("latin-1")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte (an entity, say)
        return s.encode("utf-8", "surrogatepass").decode("latin-1")


@dataclass(frozen=True, slots=True)
class PerlPattern:
    source: str  # the translated pattern body
    flags: str  # subset of "imsx"
    compiled: Any  # re.Pattern or regex.Pattern


def split_delimited(text: str) -> tuple[str, str, str]:
    """``/abc/i rest`` or ``m{abc}i rest`` -> (body, modifiers, rest)."""
    s = text.lstrip()
    if s.startswith("m") and len(s) > 1 and not s[1].isalnum() and not s[1].isspace():
        s = s[1:]
    if not s:
        raise PatternError("empty pattern")
    open_ = s[0]
    close = {"{": "}", "(": ")", "[": "]", "<": ">"}.get(open_, open_)
    if open_.isalnum() or open_.isspace() or open_ == "\\":
        raise PatternError(f"bad pattern delimiter {open_!r}")
    i, depth = 1, 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if close != open_ and c == open_:
            depth += 1
        elif c == close:
            if depth == 0:
                break
            depth -= 1
        i += 1
    else:
        raise PatternError("unterminated pattern")
    body = s[1:i]
    j = i + 1
    while j < len(s) and s[j].isalpha():
        j += 1
    mods = s[i + 1:j]
    return body, mods, s[j:].strip()


def translate(body: str, mods: str, lines: bool = False) -> PerlPattern:
    """``lines``: the text is several lines (body paragraphs, URIs) joined by newlines and the
    rule applies to each line, so ``^``/``$`` anchor at line boundaries (multi-line mode).
    Whatever goes wrong is a :class:`PatternError` naming the rule's pattern: one rule with
    ``(?u)`` or a hex escape with no digits raised ValueError, which stopped the whole rule set from building
    (every message deferred) instead of listing that rule as unsupported."""
    try:
        return _translate(body, mods, lines)
    except PatternError:
        raise
    except (ValueError, TypeError, IndexError, OverflowError, RecursionError, re.error, regex.error) as e:
        raise PatternError(f"does not compile: {type(e).__name__}: {e}") from None


def _translate(body: str, mods: str, lines: bool) -> PerlPattern:
    bad = set(mods) - ALLOWED_MODS
    if bad:
        raise PatternError(f"unsupported modifiers {''.join(sorted(bad))}")
    if mods.count("x") > 1:  # (/xx also ignores blanks inside [...]: Python's verbose mode does not)
        raise PatternError("unsupported modifier xx")
    out: list[str] = []
    i = 0
    in_class = False
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            n = body[i + 1]
            if n == "z":
                # lines: each line is a string of its own there (with its "\n"): its end is
                # right after that newline, or the end of the text
                out.append(r"(?:(?<=\n)|\Z)" if lines and not in_class else r"\Z")
            elif n == "Z":
                out.append(r"(?:(?=\n)|(?<=\n)|\Z)" if lines and not in_class else r"(?=\n?\Z)")
            elif n == "e":
                out.append(r"\x1b")  # Perl's escape character
            elif n == "h":  # (Perl's horizontal white space has the no-break space too)
                out.append(r"[ \t\xa0]" if not in_class else r" \t\xa0")
            elif n == "v":  # Perl's vertical white space (Python's \v is the vertical tab alone)
                out.append(r"[\n\x0b\f\r\x85]" if not in_class else r"\n\x0b\f\r\x85")
            elif n in "HVN" and in_class:
                raise PatternError(f"unsupported escape \\{n} inside a character class")
            elif n == "H":
                out.append(r"[^ \t\xa0]")
            elif n == "V":
                out.append(r"[^\n\x0b\f\r\x85]")
            elif n == "N":  # any character but a line end (the regex module read \N as N)
                if body[i + 2:i + 3] == "{":
                    raise PatternError("unsupported escape \\N{...}")
                out.append(r"[^\n]")
            elif n == "K" or n == "G" or n == "R":
                raise PatternError(f"unsupported escape \\{n}")
            elif n == "g" and not in_class:
                # \g1, \g{1}: a numbered backreference; relative and named ones are not read
                # (the regex module compiled them into something that never matched)
                ref = re.match(r"g(?:(\d+)|\{(\d+)\})", body[i + 1:])
                if ref is None:
                    raise PatternError("unsupported backreference \\g (only \\gN and \\g{N})")
                out.append("\\" + (ref.group(1) or ref.group(2)))
                i += 1 + ref.end()
                continue
            elif n == "x" and body[i + 2:i + 3] == "{":
                end = body.find("}", i + 3)
                if end == -1:
                    raise PatternError("bad \\x{...} escape")
                cp = int(body[i + 3:end] or "0", 16)
                out.append(f"\\x{cp:02x}" if cp < 256 else f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}")
                i = end + 1
                continue
            elif n.isdigit() and n != "0" and not in_class:
                out.append("\\" + n)  # backreference: fine in regex, not in Hyperscan
            else:
                out.append(c + n)
            i += 2
            continue
        if (c == "{" and not in_class and (q := _SPACED_QUANTIFIER.match(body, i)) is not None
                and (" " in q.group(0) or "\t" in q.group(0))):
            # Perl (5.34 on) reads blanks inside a quantifier's braces: "{ 2 }" is "{2}"
            out.append("{" + q.group(1) + (q.group(2) or "") + q.group(3) + "}")
            i = q.end()
            continue
        if c == "[" and not in_class:
            in_class = True
            out.append(c)
            # a ']' right after '[' or '[^' is literal
            if body[i + 1:i + 2] == "^":
                out.append("^")
                i += 1
            if body[i + 1:i + 2] == "]":
                out.append("\\]")
                i += 1
            i += 1
            continue
        if c == "[" and in_class and body[i + 1:i + 2] == ":":
            end = body.find(":]", i + 2)
            if end != -1:
                cls = body[i + 2:end]
                if cls not in POSIX:
                    raise PatternError(f"unknown POSIX class [:{cls}:]")
                out.append(POSIX[cls])
                i = end + 2
                continue
            out.append("\\[")
            i += 1
            continue
        if c == "]" and in_class:
            in_class = False
        elif c == "$" and not in_class and "m" not in mods and not lines and body[i + 1:i + 2] in ("", ")", "|"):
            out.append(r"(?=\n?\Z)")
            i += 1
            continue
        elif c == "@" and not in_class:
            pass
        out.append(c)
        i += 1
    src = "".join(out)
    flags = 0
    for m in mods:
        flags |= {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}[m]
    if lines:
        flags |= re.MULTILINE
    # stdlib re first (compiles several times faster); the regex module for what re lacks
    # (variable-width look-behind, ...). Both with ASCII classes: Perl matches bytes here.
    compiled: Any
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            # re.compile, with the greedy repeats that can never give back a useful character
            # made possessive: the same matches without re's character-by-character retries
            compiled = possessive.compile(src, flags | re.ASCII)
    except (re.error, FutureWarning, DeprecationWarning, OverflowError, RecursionError):
        try:
            compiled = regex.compile(src, flags | regex.V0 | regex.ASCII)
        except (regex.error, OverflowError, RecursionError) as e:
            raise PatternError(f"does not compile: {e}") from None
    return PerlPattern(src, "".join(sorted(set(mods))), compiled)


def parse_perl_regex(text: str, lines: bool = False) -> tuple[PerlPattern, str]:
    body, mods, rest = split_delimited(text)
    return translate(body, mods, lines), rest
