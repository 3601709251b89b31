"""Lexer and parser for the Sieve language (RFC 5228 section 8, grammar).

Produces a small syntax tree (:class:`Command`, :class:`Test`, :class:`Arg`) with the line and
column of every node, so that every later error can name its position. Semantic checks
(which commands exist, argument types, ``require``) belong to the compiler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_NESTING = 64  # deeper blocks/tests are refused: a hostile script must not blow the stack


class SieveError(Exception):
    """A compile-time error at ``line``:``column`` (1-based)."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(f"{line}:{column}: {message}")
        self.line = line
        self.column = column
        self.message = message

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "message": self.message}


@dataclass(slots=True)
class Token:
    kind: str  # ident, tag, number, string, '[' ']' '(' ')' '{' '}' ',' ';', eof
    value: Any
    line: int
    col: int
    multiline: bool = False


@dataclass(slots=True)
class Arg:
    """A positional or tagged argument. ``kind``: tag, number, string, strlist."""

    kind: str
    value: Any
    line: int
    col: int


@dataclass(slots=True)
class Test:
    name: str
    args: list[Arg]
    tests: list[Test]
    line: int
    col: int
    test_list: bool = False  # the sub-tests were written as "( ... )"


@dataclass(slots=True)
class Command:
    name: str
    args: list[Arg]
    tests: list[Test]
    block: list[Command] | None
    line: int
    col: int
    extra: dict[str, Any] = field(default_factory=dict)
    test_list: bool = False


_PUNCT = set("[](){},;")
_IDENT_START = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT_CHARS = _IDENT_START | set("0123456789")
_QUANT = {"k": 1024, "m": 1024**2, "g": 1024**3}


def tokenize(src: str) -> list[Token]:
    toks: list[Token] = []
    i, n, line, lstart = 0, len(src), 1, 0
    while i < n:
        c = src[i]
        col = i - lstart + 1
        if c == "\n":
            line += 1
            i += 1
            lstart = i
        elif c in " \t\r":
            i += 1
        elif c == "#":
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif c == "/" and src.startswith("/*", i):
            j = src.find("*/", i + 2)
            if j < 0:
                raise SieveError(line, col, "unterminated comment")
            seg = src[i : j + 2]
            nl = seg.count("\n")
            if nl:
                line += nl
                lstart = i + seg.rfind("\n") + 1
            i = j + 2
        elif c in _PUNCT:
            toks.append(Token(c, c, line, col))
            i += 1
        elif c == ":":
            j = i + 1
            if j >= n or src[j] not in _IDENT_START:
                raise SieveError(line, col, "expected a tag name after ':'")
            while j < n and src[j] in _IDENT_CHARS:
                j += 1
            toks.append(Token("tag", src[i + 1 : j].lower(), line, col))
            i = j
        elif c.isdigit() and c.isascii():
            j = i
            while j < n and src[j].isdigit() and src[j].isascii():
                j += 1
            num = int(src[i:j])
            if j < n and src[j].lower() in _QUANT:
                num *= _QUANT[src[j].lower()]
                j += 1
            if j < n and src[j] in _IDENT_CHARS:
                raise SieveError(line, col, f"invalid number {src[i:j+1]!r}")
            toks.append(Token("number", num, line, col))
            i = j
        elif c in _IDENT_START:
            j = i
            while j < n and src[j] in _IDENT_CHARS:
                j += 1
            word = src[i:j]
            if word.lower() == "text" and j < n and src[j] == ":":
                i, line, lstart, value = _multiline(src, j + 1, line, lstart, col)
                toks.append(Token("string", value, line, col, multiline=True))
                continue
            toks.append(Token("ident", word.lower(), line, col))
            i = j
        elif c == '"':
            j = i + 1
            buf: list[str] = []
            sline, scol = line, col
            while True:
                if j >= n:
                    raise SieveError(sline, scol, "unterminated string")
                ch = src[j]
                if ch == "\\":
                    if j + 1 >= n:
                        raise SieveError(sline, scol, "unterminated string")
                    # RFC 5228 2.4.2: "\" followed by any character is that character.
                    buf.append(src[j + 1])
                    if src[j + 1] == "\n":
                        line += 1
                        lstart = j + 2
                    j += 2
                    continue
                if ch == '"':
                    break
                if ch == "\n":
                    line += 1
                    lstart = j + 1
                    if not buf or buf[-1] != "\r":
                        buf.append("\r")  # bare LF in a quoted string is a CRLF line break
                buf.append(ch)
                j += 1
            toks.append(Token("string", "".join(buf), sline, scol))
            i = j + 1
        else:
            raise SieveError(line, col, f"unexpected character {c!r}")
    toks.append(Token("eof", None, line, i - lstart + 1))
    return toks


def _multiline(src: str, i: int, line: int, lstart: int, col: int) -> tuple[int, int, int, str]:
    """``text:`` then optional whitespace/comment to end of line, lines up to a lone ``.``."""
    n = len(src)
    sline = line
    while i < n and src[i] in " \t":
        i += 1
    if src.startswith("#", i):
        j = src.find("\n", i)
        i = n if j < 0 else j
    if src.startswith("\r\n", i):
        i += 2
    elif i < n and src[i] == "\n":
        i += 1
    else:
        raise SieveError(line, col, "text: must be followed by a line break")
    line += 1
    lstart = i
    out: list[str] = []
    while True:
        if i >= n:
            raise SieveError(sline, col, "unterminated multi-line string (missing '.' line)")
        j = src.find("\n", i)
        raw = src[i:] if j < 0 else src[i:j]
        nxt = n if j < 0 else j + 1
        text = raw.removesuffix("\r")
        line += 1 if j >= 0 else 0
        if text == ".":
            i = nxt
            lstart = nxt
            break
        if raw.startswith(".."):
            raw = raw[1:]  # dot-stuffing
        raw = raw.removesuffix("\r")
        out.append(raw + ("\r\n" if j >= 0 else ""))  # RFC 5228 2.4.2: lines end with CRLF
        i = nxt
        lstart = nxt
    return i, line, lstart, "".join(out)


class Parser:
    def __init__(self, src: str) -> None:
        self.toks = tokenize(src)
        self.pos = 0

    def peek(self) -> Token:
        return self.toks[self.pos]

    def next(self) -> Token:
        t = self.toks[self.pos]
        self.pos += 1
        return t

    def expect(self, kind: str, what: str) -> Token:
        t = self.next()
        if t.kind != kind:
            raise SieveError(t.line, t.col, f"expected {what}, found {_describe(t)}")
        return t

    def parse(self) -> list[Command]:
        cmds = self.commands(0)
        t = self.peek()
        if t.kind != "eof":
            raise SieveError(t.line, t.col, f"unexpected {_describe(t)}")
        return cmds

    def commands(self, depth: int) -> list[Command]:
        out: list[Command] = []
        while self.peek().kind == "ident":
            out.append(self.command(depth))
        return out

    def command(self, depth: int) -> Command:
        if depth > MAX_NESTING:
            t = self.peek()
            raise SieveError(t.line, t.col, "blocks are nested too deeply")
        t = self.expect("ident", "a command")
        args, tests, is_list = self.arguments(depth)
        nt = self.next()
        if nt.kind == ";":
            return Command(t.value, args, tests, None, t.line, t.col, test_list=is_list)
        if nt.kind == "{":
            block = self.commands(depth + 1)
            end = self.next()
            if end.kind != "}":
                raise SieveError(end.line, end.col, f"expected a command or '}}', found {_describe(end)}")
            return Command(t.value, args, tests, block, t.line, t.col, test_list=is_list)
        raise SieveError(nt.line, nt.col,
                         f"expected end of command ';' or the beginning of a block '{{', found {_describe(nt)}")

    def arguments(self, depth: int) -> tuple[list[Arg], list[Test], bool]:
        args: list[Arg] = []
        while True:
            t = self.peek()
            if t.kind == "tag":
                self.next()
                args.append(Arg("tag", t.value, t.line, t.col))
            elif t.kind == "number":
                self.next()
                args.append(Arg("number", t.value, t.line, t.col))
            elif t.kind == "string":
                self.next()
                args.append(Arg("string", t.value, t.line, t.col))
            elif t.kind == "[":
                args.append(self.string_list())
            else:
                break
        tests: list[Test] = []
        t = self.peek()
        is_list = False
        if t.kind == "ident":
            tests.append(self.test(depth + 1))
        elif t.kind == "(":
            tests = self.test_list(depth + 1)
            is_list = True
        return args, tests, is_list

    def string_list(self) -> Arg:
        start = self.next()
        items: list[str] = []
        while True:
            t = self.next()
            if t.kind != "string":
                raise SieveError(t.line, t.col, f"expected a string in the string list, found {_describe(t)}")
            items.append(t.value)
            t = self.next()
            if t.kind == "]":
                break
            if t.kind != ",":
                raise SieveError(t.line, t.col, f"expected ',' or ']' in the string list, found {_describe(t)}")
        return Arg("strlist", items, start.line, start.col)

    def test(self, depth: int) -> Test:
        if depth > MAX_NESTING:
            t = self.peek()
            raise SieveError(t.line, t.col, "tests are nested too deeply")
        t = self.expect("ident", "a test")
        args, tests, is_list = self.arguments(depth)
        return Test(t.value, args, tests, t.line, t.col, is_list)

    def test_list(self, depth: int) -> list[Test]:
        self.next()  # (
        tests = [self.test(depth)]
        while True:
            t = self.next()
            if t.kind == ")":
                return tests
            if t.kind != ",":
                raise SieveError(t.line, t.col, f"expected ',' or ')' in the test list, found {_describe(t)}")
            tests.append(self.test(depth))


def _describe(t: Token) -> str:
    if t.kind == "eof":
        return "end of script"
    if t.kind == "ident":
        return f"identifier '{t.value}'"
    if t.kind == "tag":
        return f"tag ':{t.value}'"
    if t.kind == "string":
        return "a string"
    if t.kind == "number":
        return f"number {t.value}"
    return f"'{t.kind}'"


def parse(src: str) -> list[Command]:
    """Parse a script; raises :class:`SieveError` at the first syntax error."""
    return Parser(src).parse()
