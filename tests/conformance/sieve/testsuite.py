"""The ``vnd.dovecot.testsuite`` extension, enough of it to run Pigeonhole's .svtest files.

It lives in the test tree only: the product never offers it. ``run_svtest(path)`` compiles one
file with the testsuite extension and returns the result of each ``test "name" {...}`` block.
Spam/virus test values follow Pigeonhole's header-based configuration (sieve_spamtest_*),
which is how its suite configures them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway_milter.sieve import REGISTRY, compile_script
from gateway_milter.sieve.compiler import (
    CompileContext,
    Exec,
    Extension,
    Pred,
    TagSpec,
    read_args,
    strlist_of,
)
from gateway_milter.sieve.grammar import Command, SieveError, Test
from gateway_milter.sieve.language import _keys, _simple, compile_block
from gateway_milter.sieve.matching import compile_matcher, match_tags
from gateway_milter.sieve.runtime import (
    BasicEnvironment,
    Limits,
    MessageData,
    ReturnScript,
    Runtime,
    SieveRuntimeError,
    StopScript,
)

DEFAULT_MESSAGE = b"From: sender@example.com\r\nTo: recipient@example.org\r\nSubject: Frop!\r\n\r\nFrop!\r\n"


class TestFail(Exception):
    pass


@dataclass
class BlockResult:
    name: str
    passed: bool
    reason: str = ""


@dataclass
class Suite:
    """Per-file state shared by the testsuite commands."""

    path: Path
    results: list[BlockResult] = field(default_factory=list)
    config: dict[str, str] = field(default_factory=dict)
    compiled: Any = None
    compile_errors: list[str] = field(default_factory=list)
    folders: dict[str, list[MessageData]] = field(default_factory=dict)
    smtp: list[MessageData] = field(default_factory=list)
    binaries: dict[str, Any] = field(default_factory=dict)
    mail_from: str = "sender@example.com"
    rcpt: str = "recipient@example.org"
    auth: str = ""

    def message(self, raw: bytes) -> MessageData:
        return MessageData.from_bytes(raw, mail_from=self.mail_from, recipients=[self.rcpt], auth=self.auth,
                                      size_as_given=False)


class SuiteEnvironment(BasicEnvironment):
    def __init__(self, suite: Suite) -> None:
        super().__init__({"domain": "example.org", "host": "test.example.org", "location": "MS",
                          "phase": "during", "name": "Pigeonhole Sieve", "version": "0.5"})
        self.suite = suite

    def editheader_forbidden(self, name: str, op: str) -> bool:
        ln = name.lower()
        if ln in ("received", "auto-submitted"):
            return op == "delete"
        cfg = {k.lower(): v for k, v in self.suite.config.items()}
        if ln == "subject":
            return False  # Pigeonhole: Subject cannot be protected
        listed = cfg.get("sieve_editheader_header", "").lower().split()
        if ln not in listed:
            return ln in cfg.get("sieve_editheader_protected", "").lower().split()
        flag = cfg.get(f"sieve_editheader_header/{ln}/forbid_{op}", "no")
        return flag in ("yes", "true", "1")

    @property
    def subaddress_delimiters(self) -> str:
        return self.suite.config.get("recipient_delimiter", "+")

    def mailbox_exists(self, name: str) -> bool:
        return name in self.suite.folders or name.upper() == "INBOX"

    def _header_value(self, rt: Runtime, prefix: str, key: str) -> str | None:
        spec = self.suite.config.get(f"sieve_{prefix}_{key}")
        if not spec:
            return None
        name, _, rx = spec.partition(":")
        vals = rt.header_values(name.strip())
        if not vals:
            return None
        v = vals[0]
        if rx:
            m = re.search(rx.strip(), v) if rx.strip() else None
            if m is None:
                return None
            return m.group(1) if m.groups() else m.group(0)
        return v

    def _status(self, rt: Runtime, prefix: str, percent: bool) -> str:
        cfg = self.suite.config
        typ = cfg.get(f"sieve_{prefix}_status_type", "")
        if not typ or not cfg.get(f"sieve_{prefix}_status_header"):
            return "0"
        raw = self._header_value(rt, prefix, "status_header")
        if raw is None:
            return "0"
        if typ == "text":
            for i in range(11):
                tv = cfg.get(f"sieve_{prefix}_text_value/{i}")
                if tv is not None and tv == raw.strip():
                    return _scale(i, 10 if prefix == "spamtest" else 5, percent, prefix, rt=None)
            return "0"
        if typ == "strlen":
            score = float(len(raw.strip()))
        else:
            try:
                score = float(raw)
            except ValueError:
                return "0"
        maxv = cfg.get(f"sieve_{prefix}_score_max_value")
        if maxv is None:
            mh = self._header_value(rt, prefix, "score_max_header")
            if mh is None:
                return "0"
            maxv = mh
        try:
            mx = float(maxv)
        except ValueError:
            return "0"
        if mx <= 0:
            return "0"
        if score <= 0:
            return "0" if percent else "1"
        if score >= mx:
            return "100" if percent else "10"
        if percent:
            return str(round(score / mx * 100))
        return str(int(1 + score / mx * 9))

    def spamtest(self, rt: Runtime, percent: bool) -> str:
        return self._status(rt, "spamtest", percent)

    def virustest(self, rt: Runtime) -> str:
        return self._status(rt, "virustest", False)


def _scale(i: int, top: int, percent: bool, prefix: str, rt: Any) -> str:
    if prefix == "virustest":
        return str(i)
    if percent:
        return str(round((i - 1) / 9 * 100)) if i > 0 else "0"
    return str(i)


# -- commands ----------------------------------------------------------------------------------
def _suite(rt: Runtime) -> Suite:
    return rt.env.suite  # type: ignore[attr-defined,no-any-return]


def c_test(cc: CompileContext, cmd: Command) -> Exec:
    args = read_args(cc, cmd, "test", {}, ["string"])
    if cmd.block is None:
        raise SieveError(cmd.line, cmd.col, "test needs a block")
    name = args.pos[0].value
    body = compile_block(cc, cmd.block)

    def run(rt: Runtime) -> None:
        suite = _suite(rt)
        rt.actions, rt.implicit_keep, rt.redirects, rt.edits = [], True, 0, 0
        rt.flags = []
        rt.headers = rt.msg.headers
        rt.invalidate()
        try:
            body(rt)
        except TestFail as e:
            suite.results.append(BlockResult(name, False, str(e)))
            return
        except (StopScript, ReturnScript):
            pass
        except SieveRuntimeError as e:
            suite.results.append(BlockResult(name, False, f"runtime error: {e}"))
            return
        suite.results.append(BlockResult(name, True))

    return run


def c_test_fail(cc: CompileContext, cmd: Command) -> Exec:
    args = read_args(cc, cmd, "test_fail", {}, ["string"])
    _simple(cmd, "test_fail")
    reason = cc.string(args.pos[0].value)
    line = cmd.line

    def run(rt: Runtime) -> None:
        raise TestFail(f"line {line}: {reason(rt)}")

    return run


def _set_message(rt: Runtime, md: MessageData) -> None:
    rt.msg = md
    rt.headers = md.headers
    rt.invalidate()
    rt.part_stack = []


def c_test_set(cc: CompileContext, cmd: Command) -> Exec:
    args = read_args(cc, cmd, "test_set", {}, ["string", "string"])
    _simple(cmd, "test_set")
    what = args.pos[0].value
    value = cc.string(args.pos[1].value)

    def run(rt: Runtime) -> None:
        suite = _suite(rt)
        v = value(rt)
        if what == "message":
            _set_message(rt, suite.message(v.encode("utf-8", "surrogateescape")))
        elif what == "envelope.from":
            suite.mail_from = v
            rt.msg.mail_from = v
        elif what == "envelope.to":
            suite.rcpt = v
            rt.msg.recipients = [v]
        elif what == "envelope.auth":
            suite.auth = v
            rt.msg.auth = v
        elif what == "envelope.orig_to":
            pass
        else:
            raise SieveRuntimeError(f"test_set: unknown item {what}", rt.line, rt.script)

    return run


def c_test_config_set(cc: CompileContext, cmd: Command) -> Exec:
    args = read_args(cc, cmd, "test_config_set", {}, ["string", "string"])
    _simple(cmd, "test_config_set")
    key, value = cc.string(args.pos[0].value), cc.string(args.pos[1].value)

    def run(rt: Runtime) -> None:
        _suite(rt).config[key(rt)] = value(rt)
        _apply_config(rt)

    return run


def _apply_config(rt: Runtime) -> None:
    cfg = _suite(rt).config
    from dataclasses import replace

    lim = Limits(cpu_seconds=60.0)
    if "sieve_max_redirects" in cfg:
        lim = replace(lim, max_redirects=int(cfg["sieve_max_redirects"]))
    if "sieve_variables_max_variable_size" in cfg:
        lim = replace(lim, max_variable_size=int(cfg["sieve_variables_max_variable_size"]))
    if "sieve_editheader_max_header_size" in cfg:
        lim = replace(lim, max_header_value=int(cfg["sieve_editheader_max_header_size"]))
    if "sieve_max_actions" in cfg:
        lim = replace(lim, max_actions=int(cfg["sieve_max_actions"]))
    rt.limits = lim


def c_test_config_unset(cc: CompileContext, cmd: Command) -> Exec:
    args = read_args(cc, cmd, "test_config_unset", {}, ["string"])
    key = cc.string(args.pos[0].value)

    def run(rt: Runtime) -> None:
        _suite(rt).config.pop(key(rt), None)
        _apply_config(rt)

    return run


def _noop_command(what: str, tags: dict[str, TagSpec] | None = None, npos: int = 0,
                  optional: int = 0) -> Callable[[CompileContext, Command], Exec]:
    def comp(cc: CompileContext, cmd: Command) -> Exec:
        read_args(cc, cmd, what, tags or {}, ["strlist"] * npos, optional_positional=optional)
        return lambda rt: None

    return comp


def c_test_result_reset(cc: CompileContext, cmd: Command) -> Exec:
    _simple(cmd, "test_result_reset")

    def run(rt: Runtime) -> None:
        rt.actions, rt.implicit_keep, rt.redirects, rt.edits = [], True, 0, 0
        _suite(rt).smtp.clear()

    return run


def c_test_mailbox_create(cc: CompileContext, cmd: Command) -> Exec:
    args = read_args(cc, cmd, "test_mailbox_create", {}, ["string"])
    name = cc.string(args.pos[0].value)

    def run(rt: Runtime) -> None:
        _suite(rt).folders.setdefault(name(rt), [])

    return run


# -- tests -------------------------------------------------------------------------------------
def t_test_script_compile(cc: CompileContext, t: Test) -> Pred:
    args = read_args(cc, t, "test_script_compile", {}, ["string"])
    name = cc.string(args.pos[0].value)

    def run(rt: Runtime) -> bool:
        suite = _suite(rt)
        path = suite.path.parent / name(rt)
        suite.compiled = None
        suite.compile_errors = []
        try:
            src = path.read_text("utf-8", "surrogateescape")
        except OSError:
            suite.compile_errors = [f"cannot read {path.name}"]
            return False
        try:
            suite.compiled = compile_script(src, path.stem, loader=_loader(path.parent), registry=SUITE_REGISTRY,
                                            setup=_setup(path, suite.config))
        except Exception as e:  # noqa: BLE001
            errors = getattr(e, "errors", None)
            if errors:
                # Pigeonhole's error handler also lists warnings, in script order.
                errors = sorted([*errors, *getattr(e, "warnings", [])], key=lambda x: (x.line, x.column))
            suite.compile_errors = [f"{x.line}:{x.column}: {x.message}" for x in errors] if errors else [str(e)]
            # Pigeonhole's error handler ends a failed compile with one summary error
            # ("validation failed." / "parse failed."), which its suite counts.
            suite.compile_errors.append("validation failed.")
            return False
        return True

    return run


def t_test_script_run(cc: CompileContext, t: Test) -> Pred:
    read_args(cc, t, "test_script_run", {"append_result": TagSpec("append")}, [])
    append = any(a.value == "append_result" for a in t.args)

    def run(rt: Runtime) -> bool:
        suite = _suite(rt)
        if suite.compiled is None:
            return False
        sub = Runtime(rt.msg, rt.env, rt.limits)
        sub.script = suite.compiled.name
        if append:
            sub.actions, sub.implicit_keep = list(rt.actions), rt.implicit_keep
        try:
            suite.compiled.body(sub)
        except (StopScript, ReturnScript):
            pass
        except SieveRuntimeError as e:
            suite.compile_errors = [str(e)]
            return False
        suite.compile_errors = list(sub.warnings)
        rt.actions, rt.implicit_keep = sub.actions, sub.implicit_keep
        rt.headers = sub.headers
        rt.invalidate()
        rt.flags = sub.flags
        return True

    return run


def t_test_multiscript(cc: CompileContext, t: Test) -> Pred:
    args = read_args(cc, t, "test_multiscript", {}, ["strlist"])
    names = strlist_of(args.pos[0])

    def run(rt: Runtime) -> bool:
        suite = _suite(rt)
        sub = Runtime(rt.msg, rt.env, rt.limits)
        # Pigeonhole's multiscript: each script keeps unless it decides; the last one's
        # implicit keep stands. The combined result is executed (stored) at the end.
        for n in names:
            path = suite.path.parent / n
            try:
                prog = compile_script(path.read_text(), path.stem, loader=_loader(path.parent), registry=SUITE_REGISTRY)
            except Exception:  # noqa: BLE001
                return False
            keep_before = sub.implicit_keep
            sub.implicit_keep = True
            try:
                prog.body(sub)
            except (StopScript, ReturnScript):
                pass
            except SieveRuntimeError:
                return False
            if not sub.implicit_keep:
                break
            sub.implicit_keep = keep_before and sub.implicit_keep
        rt.actions, rt.implicit_keep = sub.actions, sub.implicit_keep
        rt.headers, rt.flags = sub.headers, sub.flags
        rt.invalidate()
        return execute_result(rt)

    return run


def t_test_result_execute(cc: CompileContext, t: Test) -> Pred:
    read_args(cc, t, "test_result_execute", {}, [])
    return execute_result


def execute_result(rt: Runtime) -> bool:
    suite = _suite(rt)
    raw0 = rt.msg.raw_bytes(rt.headers)
    stored0 = MessageData.from_bytes(raw0, mail_from=rt.msg.mail_from, recipients=rt.msg.recipients)
    for a in rt.actions:
        raw = rt.msg.raw_bytes(a.headers) if a.headers is not None else raw0
        stored = MessageData.from_bytes(raw, mail_from=rt.msg.mail_from, recipients=rt.msg.recipients)
        if a.kind == "keep":
            suite.folders.setdefault("INBOX", []).append(_with_flags(stored, a.args.get("flags")))
        elif a.kind == "fileinto":
            suite.folders.setdefault(_folder(a.args["mailbox"]), []).append(_with_flags(stored, a.args.get("flags")))
        elif a.kind == "redirect":
            suite.smtp.append(MessageData.from_bytes(raw, mail_from=rt.msg.mail_from, recipients=[a.args["address"]]))
        elif a.kind in ("reject", "ereject") and rt.msg.mail_from.strip("<>"):  # never to the null sender
            body = f"Your message was rejected: {a.args['reason']}".encode()
            suite.smtp.append(MessageData.from_bytes(
                b"From: Postmaster <postmaster@example.org>\r\nTo: <" + rt.msg.mail_from.encode() + b">\r\n"
                b"Subject: Automatically rejected mail\r\nAuto-Submitted: auto-replied (rejected)\r\n\r\n" + body,
                mail_from="", recipients=[rt.msg.mail_from]))
    if rt.implicit_keep:
        flags = rt.flags or None
        suite.folders.setdefault("INBOX", []).append(_with_flags(stored0, flags))
    rt.actions, rt.implicit_keep = [], True
    return True


def _folder(name: str) -> str:
    """Dovecot's INBOX namespace: "Inbox", "inbox.x" and "INBOX.x" name the same folders."""
    head, dot, rest = name.partition(".")
    return ("INBOX" + dot + rest) if head.upper() == "INBOX" else name


def _with_flags(md: MessageData, flags: list[str] | None) -> MessageData:
    """A stored copy with its IMAP flags. Like the Dovecot store Pigeonhole's suite runs
    against (mail_attachment_detection_options = add-flags), saving adds the keyword
    $HasAttachment or $HasNoAttachment: a property of the mail store, not of Sieve."""
    md2 = MessageData(list(md.headers), md.body, mail_from=md.mail_from, recipients=md.recipients)
    has_att = any(p.get_filename() or (p.get_content_disposition() == "attachment") for p in md.parsed().walk())
    md2.flags = [*list(flags or []), "$HasAttachment" if has_att else "$HasNoAttachment"]  # type: ignore[attr-defined]
    return md2


def t_test_message(cc: CompileContext, t: Test) -> Pred:
    args = read_args(cc, t, "test_message", {"smtp": TagSpec("src"), "folder": TagSpec("src", "string")}, ["number"])
    src = args.tag("src") or "smtp"
    folder = args.value("src") if src == "folder" else None
    index = args.pos[0].value

    def run(rt: Runtime) -> bool:
        suite = _suite(rt)
        msgs = suite.smtp if src == "smtp" else suite.folders.get(_folder(folder or ""), [])
        if index >= len(msgs):
            return False
        md = msgs[index]
        _set_message(rt, md)
        rt.flags = list(getattr(md, "flags", []))
        return True

    return run


def t_test_result_action(cc: CompileContext, t: Test) -> Pred:
    tags = {**match_tags(cc), "index": TagSpec("index", "number")}
    args = read_args(cc, t, "test_result_action", tags, ["strlist"])
    keys, kconst = _keys(cc, args.pos[0])
    match = compile_matcher(cc, args, keys, kconst, t.line, t.col)
    index = args.value("index")

    def run(rt: Runtime) -> bool:
        names = [_action_name(a.kind) for a in rt.actions if a.kind not in ("addheader", "deleteheader")]
        if rt.implicit_keep and args.tag("match") == "count":
            names.append("keep")
        if index is not None:
            names = [names[index - 1]] if 0 < index <= len(names) else []
        return match(rt, names)

    return run


def _action_name(kind: str) -> str:
    return {"fileinto": "store"}.get(kind, kind)


def t_test_error(cc: CompileContext, t: Test) -> Pred:
    tags = {**match_tags(cc), "index": TagSpec("index", "number")}
    args = read_args(cc, t, "test_error", tags, ["strlist"])
    keys, kconst = _keys(cc, args.pos[0])
    match = compile_matcher(cc, args, keys, kconst, t.line, t.col)
    index = args.value("index")

    def run(rt: Runtime) -> bool:
        errs = list(_suite(rt).compile_errors)
        if index is not None:
            errs = [errs[index - 1]] if 0 < index <= len(errs) else []
        return match(rt, errs)

    return run


def t_test_binary(cc: CompileContext, t: Test) -> Pred:
    read_args(cc, t, t.name, {}, ["string"])
    save = t.name == "test_binary_save"
    name = cc.string(t.args[0].value)

    def run(rt: Runtime) -> bool:
        suite = _suite(rt)
        if save:
            suite.binaries[name(rt)] = suite.compiled
            return suite.compiled is not None
        suite.compiled = suite.binaries.get(name(rt))
        return suite.compiled is not None

    return run


def _as_command(pred: Pred) -> Exec:
    def run(rt: Runtime) -> None:
        if not pred(rt):
            raise SieveRuntimeError("testsuite command failed", rt.line, rt.script)

    return run


TESTSUITE = Extension(
    "vnd.dovecot.testsuite",
    commands={
        "test": c_test, "test_fail": c_test_fail, "test_set": c_test_set,
        "test_config_set": c_test_config_set, "test_config_unset": c_test_config_unset,
        "test_config_reload": _noop_command("test_config_reload", {"extension": TagSpec("ext", "string")}),
        "test_result_reset": c_test_result_reset, "test_result_print": _noop_command("test_result_print"),
        "test_mailbox_create": c_test_mailbox_create,
        "test_message": lambda cc, cmd: _as_command(t_test_message(cc, cmd)),  # type: ignore[arg-type]
        "test_binary_save": lambda cc, cmd: _as_command(t_test_binary(cc, cmd)),  # type: ignore[arg-type]
        "test_binary_load": lambda cc, cmd: _as_command(t_test_binary(cc, cmd)),  # type: ignore[arg-type]
        "test_imap_metadata_set": _noop_command("test_imap_metadata_set", {"mailbox": TagSpec("mb", "string")}, 2),
    },
    tests={
        "test_script_compile": t_test_script_compile, "test_script_run": t_test_script_run,
        "test_multiscript": t_test_multiscript, "test_result_execute": t_test_result_execute,
        "test_message": t_test_message, "test_result_action": t_test_result_action,
        "test_error": t_test_error, "test_binary_save": t_test_binary, "test_binary_load": t_test_binary,
    },
)
SUITE_REGISTRY = REGISTRY.copy()
SUITE_REGISTRY.add(TESTSUITE)
# vnd.dovecot.debug: debug_log only writes to Pigeonhole's log.
SUITE_REGISTRY.add(Extension("vnd.dovecot.debug", commands={"debug_log": _noop_command("debug_log", npos=1)}))


def _loader(base: Path) -> Callable[[str, str], str | None]:
    def load(name: str, location: str) -> str | None:
        sub = "included-global" if location == "global" else "included"
        for d in (base / sub, base.parent / sub):
            for p in (d / f"{name}.sieve", d / name):
                if p.is_file():
                    return p.read_text("utf-8", "surrogateescape")
        for p in (base / f"{name}.sieve",):
            if p.is_file():
                return p.read_text("utf-8", "surrogateescape")
        return None

    return load


def _setup(path: Path, config: dict[str, str] | None = None) -> Callable[[CompileContext], None]:
    def setup(cc: CompileContext) -> None:
        for k, v in (config or {}).items():
            if k.startswith("sieve_include_"):
                cc.data["include." + k[len("sieve_include_"):]] = v
            if k == "sieve_editheader_max_header_size":
                cc.data["editheader.max_header_size"] = v
        def tst(rest: str) -> Callable[[Runtime], str]:
            value = str(path.parent) if rest == "path" else ""
            return lambda rt: value

        cc.data["namespace:tst"] = tst

    return setup


def count_blocks(source: str) -> list[str]:
    return re.findall(r'^\s*test\s+"((?:[^"\\]|\\.)*)"', source, re.MULTILINE)


def run_svtest(path: Path) -> tuple[list[BlockResult], str | None]:
    """Run one .svtest file; returns block results and the compile error (if any)."""
    source = path.read_text("utf-8", "surrogateescape")
    suite = Suite(path)
    try:
        prog = compile_script(source, path.stem, loader=_loader(path.parent), registry=SUITE_REGISTRY,
                              setup=_setup(path))
    except Exception as e:  # noqa: BLE001
        reason = f"compile error: {e}"
        return [BlockResult(n, False, reason) for n in count_blocks(source)], reason
    env = SuiteEnvironment(suite)
    rt = Runtime(suite.message(DEFAULT_MESSAGE), env, Limits(cpu_seconds=60.0))
    rt.script = path.stem
    try:
        prog.body(rt)
    except (StopScript, ReturnScript):
        pass
    except SieveRuntimeError as e:
        return suite.results + [BlockResult("(top level)", False, f"runtime error: {e}")], None
    return suite.results, None
