"""Compiler: Sieve syntax tree -> Python closures (RFC 5228 and the extensions we claim).

Each command compiles to ``fn(rt) -> None`` and each test to ``fn(rt) -> bool``. Everything
that can be decided once (argument checks, regex compilation, comparator choice, constant
strings) is decided here, so a run only calls closures. Errors are collected with their
line:column; compilation goes on after a semantic error so that one pass reports them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway_milter.sieve.grammar import Arg, Command, SieveError, Test, parse
from gateway_milter.sieve.runtime import (
    BreakLoop,
    ReturnScript,
    Runtime,
    SieveRuntimeError,
    StopScript,
)

Exec = Callable[[Runtime], None]
Pred = Callable[[Runtime], bool]
StrFn = Callable[[Runtime], str]
ListFn = Callable[[Runtime], list[str]]

# Command/test compilers receive the compile context and the node.
CommandCompiler = Callable[["CompileContext", Command], Exec]
TestCompiler = Callable[["CompileContext", Test], Pred]


@dataclass
class Extension:
    """A named capability (``require`` string) with the commands and tests it adds."""

    name: str
    commands: dict[str, CommandCompiler] = field(default_factory=dict)
    tests: dict[str, TestCompiler] = field(default_factory=dict)
    implies: tuple[str, ...] = ()


class ReportedError(SieveError):
    """A failure whose causes are already in the error list (not counted again)."""


class ExtensionRegistry:
    def __init__(self) -> None:
        self.extensions: dict[str, Extension] = {}
        self.core_commands: dict[str, CommandCompiler] = {}
        self.core_tests: dict[str, TestCompiler] = {}

    def add(self, ext: Extension) -> None:
        self.extensions[ext.name] = ext

    def copy(self) -> ExtensionRegistry:
        r = ExtensionRegistry()
        r.extensions = dict(self.extensions)
        r.core_commands = dict(self.core_commands)
        r.core_tests = dict(self.core_tests)
        return r

    def command(self, name: str, required: set[str]) -> tuple[CommandCompiler | None, str | None]:
        """(compiler, None) when usable; (None, extension) when it needs a missing require."""
        if name in self.core_commands:
            return self.core_commands[name], None
        missing = None
        for ext in self.extensions.values():
            if name in ext.commands:
                if ext.name in required:
                    return ext.commands[name], None
                missing = missing or ext.name
        return None, missing

    def test(self, name: str, required: set[str]) -> tuple[TestCompiler | None, str | None]:
        if name in self.core_tests:
            return self.core_tests[name], None
        missing = None
        for ext in self.extensions.values():
            if name in ext.tests:
                if ext.name in required:
                    return ext.tests[name], None
                missing = missing or ext.name
        return None, missing


TESTS_WITH_SUBTESTS = frozenset({"not", "anyof", "allof"})
ScriptLoader = Callable[[str, str], "str | None"]  # (name, location :personal/:global) -> source


class CompileContext:
    def __init__(self, registry: ExtensionRegistry, loader: ScriptLoader | None = None,
                 name: str = "script", include_stack: tuple[str, ...] = ()) -> None:
        self.registry = registry
        self.required: set[str] = set()
        self.errors: list[SieveError] = []
        self.warnings: list[SieveError] = []
        self.loader = loader
        self.name = name
        self.include_stack = include_stack
        self.loop_names: list[str | None] = []
        self.global_names: set[str] = set()
        self.data: dict[str, Any] = {}
        self.unknown_seen: set[tuple[str, str]] = set()
        self.current: Command | Test | None = None

    def error(self, node: Command | Test | Arg, message: str) -> SieveError:
        e = SieveError(node.line, node.col, message)
        self.errors.append(e)
        return e

    def error_here(self, message: str) -> None:
        """An error at the command or test being compiled (strings carry no position)."""
        node = self.current
        self.report(SieveError(node.line if node else 1, node.col if node else 1, message))

    def report(self, e: SieveError) -> None:
        if not isinstance(e, ReportedError) and e not in self.errors:
            self.errors.append(e)

    def has(self, ext: str) -> bool:
        return ext in self.required

    # -- blocks and tests ------------------------------------------------------------------------
    def block(self, cmds: list[Command]) -> Exec:
        fns = [f for f in (self.command(c) for c in cmds) if f is not None]
        return _seq(fns)

    def command(self, cmd: Command) -> Exec | None:
        comp, missing = self.registry.command(cmd.name, self.required)
        if comp is None:
            if self.registry.test(cmd.name, self.required)[0] is not None:
                self.error(cmd, f"'{cmd.name}' is a test, not a command")
                return None
            if ("command", cmd.name) in self.unknown_seen:
                return None  # an unknown name is reported once, at its first occurrence
            self.unknown_seen.add(("command", cmd.name))
            if missing:
                self.error(cmd, f"the '{cmd.name}' command requires the \"{missing}\" extension (require \"{missing}\";)")
            else:
                self.error(cmd, f"unknown command '{cmd.name}'")
            return None
        self.current = cmd
        try:
            fn = comp(self, cmd)
        except SieveError as e:
            self.report(e)
            return None
        # No per-command wrapper: actions and errors carry their own line (compiled in), and
        # if/elsif set rt.line for errors raised inside tests. One call less per command.
        return fn

    def test(self, t: Test) -> Pred:
        comp, missing = self.registry.test(t.name, self.required)
        if comp is None:
            if self.registry.command(t.name, self.required)[0] is not None:
                raise SieveError(t.line, t.col, f"'{t.name}' is a command, not a test")
            if ("test", t.name) in self.unknown_seen:
                raise ReportedError(t.line, t.col, f"unknown test '{t.name}'")
            self.unknown_seen.add(("test", t.name))
            if missing:
                raise SieveError(t.line, t.col,
                                 f"the '{t.name}' test requires the \"{missing}\" extension (require \"{missing}\";)")
            raise SieveError(t.line, t.col, f"unknown test '{t.name}'")
        if t.tests and t.name not in TESTS_WITH_SUBTESTS:
            raise SieveError(t.tests[0].line, t.tests[0].col, f"the {t.name} test takes no sub-test")
        saved, self.current = self.current, t
        try:
            return comp(self, t)
        finally:
            self.current = saved

    # -- strings -------------------------------------------------------------------------------
    def string(self, value: str) -> StrFn:
        if self.has("encoded-character"):
            value = decode_encoded_characters(value)
        if self.has("variables") and "${" in value:
            return compile_variable_string(self, value)
        return lambda rt, v=value: v  # type: ignore[misc]

    def const_string(self, value: str) -> str | None:
        """The string's value when it holds no variable reference, else None."""
        if self.has("encoded-character"):
            value = decode_encoded_characters(value)
        if self.has("variables") and _VAR_RE.search(value):
            return None
        return value

    def strlist(self, values: list[str]) -> ListFn:
        fns = [self.string(v) for v in values]
        consts = [self.const_string(v) for v in values]
        if all(c is not None for c in consts):
            lst = [c for c in consts if c is not None]
            return lambda rt: lst
        return lambda rt: [f(rt) for f in fns]

    def const_list(self, values: list[str]) -> list[str] | None:
        out = []
        for v in values:
            c = self.const_string(v)
            if c is None:
                return None
            out.append(c)
        return out


def _seq(fns: list[Exec]) -> Exec:
    if not fns:
        return lambda rt: None
    if len(fns) == 1:
        return fns[0]
    t = tuple(fns)

    def run(rt: Runtime) -> None:
        for f in t:
            f(rt)

    return run


# -- arguments --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TagSpec:
    group: str
    value: str | None = None  # None, "string", "strlist", "number"


@dataclass
class Args:
    tags: dict[str, tuple[str, Any, Arg]]  # group -> (tag, value, node)
    pos: list[Arg]

    def tag(self, group: str) -> str | None:
        t = self.tags.get(group)
        return t[0] if t else None

    def value(self, group: str, default: Any = None) -> Any:
        t = self.tags.get(group)
        return t[1] if t else default


def read_args(cc: CompileContext, node: Command | Test, what: str, tags: dict[str, TagSpec],
              positional: list[str], optional_positional: int = 0) -> Args:
    """Check tagged and positional arguments; positional kinds: string, strlist, number."""
    kind_name = "command" if isinstance(node, Command) else "test"
    out: dict[str, tuple[str, Any, Arg]] = {}
    pos: list[Arg] = []
    args = node.args
    i = 0
    while i < len(args):
        a = args[i]
        if a.kind == "tag":
            if pos:
                raise SieveError(a.line, a.col, f"the {what} {kind_name} has tag ':{a.value}' after its positional arguments")
            spec = tags.get(a.value)
            if spec is None:
                raise SieveError(a.line, a.col, f"unknown tagged argument ':{a.value}' for the {what} {kind_name}")
            if spec.group in out:
                prev = out[spec.group][0]
                if prev == a.value:
                    raise SieveError(a.line, a.col, f"tag ':{a.value}' given twice for the {what} {kind_name}")
                raise SieveError(a.line, a.col, f"tags ':{prev}' and ':{a.value}' cannot be combined in the {what} {kind_name}")
            val: Any = True
            if spec.value is not None:
                i += 1
                if i >= len(args) or not _kind_ok(args[i], spec.value):
                    raise SieveError(a.line, a.col,
                                     f"tag ':{a.value}' of the {what} {kind_name} needs a {_kind_label(spec.value)} argument")
                val = _arg_value(args[i], spec.value)
            out[spec.group] = (a.value, val, a)
        else:
            pos.append(a)
        i += 1
    need = len(positional)
    if not (need - optional_positional <= len(pos) <= need):
        where = node
        if len(pos) > need:
            where = pos[need]  # type: ignore[assignment]
        raise SieveError(where.line, where.col,
                         f"the {what} {kind_name} expects {need} positional argument(s), found {len(pos)}")
    # optional positional arguments are the leading ones (e.g. imap4flags' variable name)
    offset = need - len(pos)
    for j, a in enumerate(pos):
        k = positional[j + offset]
        if not _kind_ok(a, k):
            raise SieveError(a.line, a.col, f"argument {j + 1 + offset} of the {what} {kind_name} must be a {_kind_label(k)}")
    return Args(out, pos)


def _kind_ok(a: Arg, kind: str) -> bool:
    if kind == "strlist":
        return a.kind in ("string", "strlist")
    return a.kind == kind


def _arg_value(a: Arg, kind: str) -> Any:
    if kind == "strlist":
        return a.value if a.kind == "strlist" else [a.value]
    return a.value


def _kind_label(kind: str) -> str:
    return {"strlist": "string list", "string": "string", "number": "number"}[kind]


def strlist_of(a: Arg) -> list[str]:
    return a.value if a.kind == "strlist" else [a.value]


# -- variables (RFC 5229) and encoded characters (RFC 5228 2.4.2.4) ----------------------------
_VAR_RE = re.compile(r"\$\{((?:[A-Za-z_][A-Za-z0-9_]*\.)*[A-Za-z_][A-Za-z0-9_]*|[0-9]+)\}")
_ENC_RE = re.compile(r"\$\{(hex|unicode):(\s*[0-9A-Fa-f]+(?:\s+[0-9A-Fa-f]+)*\s*)\}", re.IGNORECASE)


def decode_encoded_characters(s: str) -> str:
    if "${" not in s:
        return s

    def rep(m: re.Match[str]) -> str:
        kind, body = m.group(1).lower(), m.group(2).split()
        try:
            if kind == "hex":
                # Invalid UTF-8 is kept as surrogates, so that e.g. mailbox checks can refuse it.
                return bytes(int(h, 16) for h in body).decode("utf-8", "surrogateescape")
            return "".join(chr(int(h, 16)) for h in body)
        except (ValueError, UnicodeDecodeError, OverflowError):
            return m.group(0)

    return _ENC_RE.sub(rep, s)


MAX_SCRIPT_SIZE = 1 << 20  # a policy script is text an admin wrote, not a data file
MAX_MATCH_INDEX = 32  # RFC 5229 3.2: at least ${0}..${9}; Pigeonhole offers up to ${32}
MAX_VARIABLE_NAME = 64
MAX_VARIABLES = 255


def var_getter(cc: CompileContext, name: str) -> StrFn | None:
    """Resolve a variable reference at compile time; None when the reference is not valid."""
    lname = name.lower()
    if lname.isdigit():
        idx = int(lname)
        if idx > MAX_MATCH_INDEX:
            cc.error_here(f"match variable ${{{idx}}} is beyond the last one (${{{MAX_MATCH_INDEX}}})")
        return lambda rt: rt.match[idx] if idx < len(rt.match) else ""
    if "." in lname:
        ns, _, rest = lname.partition(".")
        if ns == "global" and cc.has("include"):
            return lambda rt: rt.globals.get(rest, "")
        hook = cc.data.get("namespace:" + ns)
        if hook is not None:
            return hook(rest)  # type: ignore[no-any-return]
        cc.error_here(f"unknown variable namespace \"{ns}\" in \"${{{name}}}\"")
        return None
    if lname in cc.global_names:
        return lambda rt: rt.globals.get(lname, "")
    return lambda rt: rt.vars.get(lname, "")


def compile_variable_string(cc: CompileContext, s: str) -> StrFn:
    pieces: list[str | StrFn] = []
    last = 0
    for m in _VAR_RE.finditer(s):
        g = var_getter(cc, m.group(1))
        if g is None:
            continue  # unknown namespace: left verbatim
        if m.start() > last:
            pieces.append(s[last : m.start()])
        pieces.append(g)
        last = m.end()
    if last < len(s):
        pieces.append(s[last:])
    if len(pieces) == 1 and not isinstance(pieces[0], str):
        return pieces[0]
    tup = tuple(pieces)
    limit = 1 << 20

    def expand(rt: Runtime) -> str:
        out = "".join(p if isinstance(p, str) else p(rt) for p in tup)
        return out[:limit]

    return expand


def compile_source(source: str, registry: ExtensionRegistry, *, loader: ScriptLoader | None = None,
                   name: str = "script", include_stack: tuple[str, ...] = (),
                   setup: Callable[[CompileContext], None] | None = None) -> tuple[Exec | None, CompileContext]:
    cc = CompileContext(registry, loader, name, include_stack)
    if setup is not None:
        setup(cc)
    if len(source) > MAX_SCRIPT_SIZE:
        cc.errors.append(SieveError(1, 1, f"the script is larger than {MAX_SCRIPT_SIZE // 1024} KiB"))
        return None, cc
    try:
        tree = parse(source)
    except SieveError as e:
        cc.errors.append(e)
        return None, cc
    body = compile_toplevel(cc, tree)
    if cc.errors:
        return None, cc
    return body, cc


def compile_toplevel(cc: CompileContext, tree: list[Command]) -> Exec:
    i = 0
    while i < len(tree) and tree[i].name == "require":
        do_require(cc, tree[i])
        i += 1
    for ext, needs in EXTENSION_NEEDS.items():
        if ext in cc.required:
            for need in needs:
                if need not in cc.required:
                    node = tree[max(0, i - 1)]
                    cc.error(node, f"the \"{ext}\" extension cannot be used without \"{need}\"")
    return cc.block(tree[i:])


# RFC 5703 section 7: extracttext is only usable together with variables and foreverypart.
EXTENSION_NEEDS = {"extracttext": ("variables", "foreverypart")}


def do_require(cc: CompileContext, cmd: Command) -> None:
    try:
        args = read_args(cc, cmd, "require", {}, ["strlist"])
    except SieveError as e:
        cc.errors.append(e)
        return
    if cmd.block is not None or cmd.tests:
        cc.error(cmd, "require takes no test and no block")
    for cap in strlist_of(args.pos[0]):
        if not capability_known(cc.registry, cap):
            cc.error(args.pos[0], f"unknown extension \"{cap}\"")
            continue
        add_capability(cc, cap)


def capability_known(registry: ExtensionRegistry, cap: str) -> bool:
    return cap in registry.extensions


def add_capability(cc: CompileContext, cap: str) -> None:
    if cap in cc.required:
        return
    cc.required.add(cap)
    for imp in cc.registry.extensions[cap].implies:
        add_capability(cc, imp)


# The rest of the language lives in gateway_milter.sieve.language (core + extensions).
def iter_tests(tests: Iterable[Test]) -> Iterable[Test]:
    for t in tests:
        yield t
        yield from iter_tests(t.tests)


__all__ = [
    "Args", "BreakLoop", "CompileContext", "Extension", "ExtensionRegistry", "ReturnScript",
    "SieveError", "SieveRuntimeError", "StopScript", "TagSpec", "compile_source", "read_args",
]
