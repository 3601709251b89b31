"""The Sieve language: RFC 5228 core plus the extensions Bulwark claims.

envelope, fileinto, encoded-character (RFC 5228); reject/ereject (RFC 5429); body (RFC 5173);
variables (RFC 5229); relational (RFC 5231); comparator-i;ascii-numeric (RFC 4790);
imap4flags (RFC 5232); copy (RFC 3894); date/index (RFC 5260); editheader (RFC 5293);
mime/foreverypart/extracttext (RFC 5703); subaddress (RFC 5233); regex (draft-ietf-sieve-regex);
spamtest/spamtestplus/virustest (RFC 5235); include (RFC 6609); environment (RFC 5183);
ihave (RFC 5463); mailbox (RFC 5490).
"""

from __future__ import annotations

import email.utils
import re
import time
import urllib.parse
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.message import Message

from gateway_milter.mime.headers import (
    address,
    addresses,
    bytes_as_text,
    content_charset,
    rfc2231_params,
    split_params,
)
from gateway_milter.sieve.compiler import (
    MAX_VARIABLE_NAME,
    MAX_VARIABLES,
    Args,
    CompileContext,
    Exec,
    Extension,
    ExtensionRegistry,
    ListFn,
    Pred,
    ReportedError,
    SieveError,
    TagSpec,
    _seq,
    compile_source,
    read_args,
    strlist_of,
)
from gateway_milter.sieve.grammar import Arg, Command, Test
from gateway_milter.sieve.matching import (
    address_part,
    address_part_tags,
    compile_matcher,
    match_tags,
)
from gateway_milter.sieve.runtime import (
    BreakLoop,
    ReturnScript,
    Runtime,
    SieveAction,
    SieveRuntimeError,
    StopScript,
    decode_header_value,
    truncate_utf8,
)

REGISTRY = ExtensionRegistry()
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")
PROTECTED_HEADERS = frozenset({"received", "auto-submitted"})


def _keys(cc: CompileContext, a: Arg) -> tuple[ListFn, list[str] | None]:
    vals = strlist_of(a)
    return cc.strlist(vals), cc.const_list(vals)


# == control ===================================================================================
def compile_block(cc: CompileContext, cmds: list[Command]) -> Exec:
    """A command list, with if/elsif/else chains joined."""
    fns: list[Exec] = []
    i = 0
    while i < len(cmds):
        cmd = cmds[i]
        if cmd.name == "if":
            chain = [cmd]
            i += 1
            while i < len(cmds) and cmds[i].name in ("elsif", "else"):
                chain.append(cmds[i])
                i += 1
                if chain[-1].name == "else":
                    break
            f = _compile_if_chain(cc, chain)
            if f is not None:
                fns.append(f)
            continue
        if cmd.name in ("elsif", "else"):
            cc.error(cmd, f"'{cmd.name}' without a preceding 'if'")
            i += 1
            continue
        if cmd.name == "require":
            cc.error(cmd, "require commands must come before any other command, at the top level")
            i += 1
            continue
        f = cc.command(cmd)
        if f is not None:
            fns.append(f)
        i += 1
    return _seq(fns)


def _compile_if_chain(cc: CompileContext, chain: list[Command]) -> Exec | None:
    branches: list[tuple[Pred | None, Exec, int]] = []
    for cmd in chain:
        no_block = cmd.block is None
        n_errors = len(cc.errors)
        if cmd.args:
            cc.error(cmd.args[0], f"'{cmd.name}' takes no arguments besides its test")
        pred: Pred | None = None
        skip_block = False
        if cmd.name == "else":
            if cmd.tests:
                cc.error(cmd, "'else' takes no test")
        else:
            if len(cmd.tests) != 1 or cmd.test_list:
                cc.error(cmd, f"'{cmd.name}' needs exactly one test (not a test list)")
                continue
            t = cmd.tests[0]
            if t.name == "ihave" and cc.registry.test("ihave", cc.required)[0] is not None:
                caps = _ihave_caps(cc, t)
                if caps is not None and not all(c in cc.registry.extensions and c not in IHAVE_RESTRICTED
                                                for c in caps):
                    skip_block = True  # RFC 5463: the block is not compiled
            try:
                pred = cc.test(t)
            except SieveError as e:
                cc.report(e)
                pred = None
        if no_block or cmd.block is None:
            # Reported after the test's own errors; an unknown tag makes the whole command
            # unreadable, so the missing block is not reported on top of it.
            if not any("unknown tagged argument" in e.message for e in cc.errors[n_errors:]):
                cc.error(cmd, f"'{cmd.name}' needs a block")
            continue
        if skip_block:
            body: Exec = _nothing
        else:
            saved = set(cc.required)
            body = compile_block(cc, cmd.block)
            cc.required = saved | cc.required
        branches.append((pred, body, cmd.line))
    if not branches:
        return None
    tb = tuple(branches)

    def run(rt: Runtime) -> None:
        if time.perf_counter() > rt.deadline:
            rt.check_time()
        for pred, body, line in tb:
            rt.line = line
            if pred is None or pred(rt):
                body(rt)
                return

    return run


def _nothing(rt: Runtime) -> None:
    return None


def _ihave_caps(cc: CompileContext, t: Test) -> list[str] | None:
    if len(t.args) == 1 and t.args[0].kind in ("string", "strlist"):
        return strlist_of(t.args[0])
    return None


CompileContext.block = compile_block  # type: ignore[method-assign,assignment]


def c_stop(cc: CompileContext, cmd: Command) -> Exec:
    _no_args(cc, cmd, "stop")

    def run(rt: Runtime) -> None:
        raise StopScript

    return run


def _no_args(cc: CompileContext, cmd: Command, what: str) -> None:
    read_args(cc, cmd, what, {}, [])
    _simple(cmd, what)


def _simple(cmd: Command, what: str) -> None:
    if cmd.tests:
        raise SieveError(cmd.tests[0].line, cmd.tests[0].col, f"the {what} command takes no test")
    if cmd.block is not None:
        raise SieveError(cmd.line, cmd.col, f"the {what} command takes no block")


# == actions ===================================================================================
def _flags_tag(cc: CompileContext) -> dict[str, TagSpec]:
    return {"flags": TagSpec("flags", "strlist")} if cc.has("imap4flags") else {}


def _flag_value(cc: CompileContext, args: Args) -> Callable[[Runtime], list[str] | None]:
    raw = args.value("flags")
    if raw is None:
        # The internal flag variable applies even in a script of a multi-script policy that
        # does not itself require imap4flags (as Pigeonhole does).
        return lambda rt: list(rt.flags) if rt.flags else None
    lf = cc.strlist(raw)
    return lambda rt: normalize_flags(lf(rt))


def c_keep(cc: CompileContext, cmd: Command) -> Exec:
    args = read_args(cc, cmd, "keep", _flags_tag(cc), [])
    _simple(cmd, "keep")
    flags = _flag_value(cc, args)
    line = cmd.line

    def run(rt: Runtime) -> None:
        fl = flags(rt)
        rt.add_action(SieveAction("keep", {"flags": fl} if fl else {}, line))

    return run


def c_discard(cc: CompileContext, cmd: Command) -> Exec:
    _no_args(cc, cmd, "discard")
    line = cmd.line

    def run(rt: Runtime) -> None:
        rt.add_action(SieveAction("discard", {}, line))

    return run


def c_redirect(cc: CompileContext, cmd: Command) -> Exec:
    tags = {"copy": TagSpec("copy")} if cc.has("copy") else {}
    args = read_args(cc, cmd, "redirect", tags, ["string"])
    _simple(cmd, "redirect")
    addr = cc.string(args.pos[0].value)
    const = cc.const_string(args.pos[0].value)
    if const is not None and not _valid_address(const):
        raise SieveError(args.pos[0].line, args.pos[0].col, f"invalid redirect address \"{const}\"")
    copy = bool(args.tag("copy"))
    line = cmd.line

    def run(rt: Runtime) -> None:
        a = addr(rt).strip()
        if not _valid_address(a):
            raise SieveRuntimeError(f"invalid redirect address \"{a}\"", line, rt.script)
        a = address(a) or a
        rt.add_action(SieveAction("redirect", {"address": a, "copy": copy}, line), cancels_keep=not copy)

    return run


_ADDR_RE = re.compile(r"^[^\s@<>()\[\]\\,;:\"]+(\.[^\s@<>()\[\]\\,;:\"]+)*@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")


def _valid_address(a: str) -> bool:
    a = a.strip()
    if not a.isascii() and not _utf8(a):
        return False
    if "<" in a:
        a = address(a)
    if a.startswith('"'):
        q = a.rfind('"@')
        return q > 0 and bool(_ADDR_RE.match("x" + a[q + 1:]))
    return bool(_ADDR_RE.match(a))


def c_fileinto(cc: CompileContext, cmd: Command) -> Exec:
    tags = dict(_flags_tag(cc))
    if cc.has("copy"):
        tags["copy"] = TagSpec("copy")
    if cc.has("mailbox"):
        tags["create"] = TagSpec("create")
    if cc.has("special-use"):
        tags["specialuse"] = TagSpec("specialuse", "string")
    args = read_args(cc, cmd, "fileinto", tags, ["string"])
    _simple(cmd, "fileinto")
    box = cc.string(args.pos[0].value)
    const = cc.const_string(args.pos[0].value)
    if const is not None and not _valid_mailbox(const):
        shown = const.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        raise SieveError(args.pos[0].line, args.pos[0].col, f"invalid mailbox name \"{shown}\"")
    flags = _flag_value(cc, args)
    copy = bool(args.tag("copy"))
    create = bool(args.tag("create"))
    line = cmd.line

    def run(rt: Runtime) -> None:
        mb = box(rt)
        if not _valid_mailbox(mb):
            raise SieveRuntimeError(f"invalid mailbox name \"{mb}\"", line, rt.script)
        a: dict[str, object] = {"mailbox": mb, "copy": copy}
        fl = flags(rt)
        if fl:
            a["flags"] = fl
        if create:
            a["create"] = True
        rt.add_action(SieveAction("fileinto", a, line), cancels_keep=not copy)

    return run


def _valid_mailbox(mb: str) -> bool:
    """Non-empty, no control characters, valid UTF-8 (RFC 5228 2.7.2, RFC 3501 5.1)."""
    if not mb or len(mb) >= 1000 or any(ord(c) < 32 for c in mb):
        return False
    return _utf8(mb)


def _utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: bytes that were not UTF-8
        return False
    return True


def _c_reject(kind: str) -> Callable[[CompileContext, Command], Exec]:
    def comp(cc: CompileContext, cmd: Command) -> Exec:
        args = read_args(cc, cmd, kind, {}, ["string"])
        _simple(cmd, kind)
        reason = cc.string(args.pos[0].value)
        line = cmd.line

        def run(rt: Runtime) -> None:
            rt.add_action(SieveAction(kind, {"reason": reason(rt)}, line))

        return run

    return comp


# == tests: core ===============================================================================
def t_true(cc: CompileContext, t: Test) -> Pred:
    _test_no_args(cc, t, "true")
    return lambda rt: True


def t_false(cc: CompileContext, t: Test) -> Pred:
    _test_no_args(cc, t, "false")
    return lambda rt: False


def _test_no_args(cc: CompileContext, t: Test, what: str) -> None:
    read_args(cc, t, what, {}, [])
    if t.tests:
        raise SieveError(t.line, t.col, f"the {what} test takes no sub-test")


def t_not(cc: CompileContext, t: Test) -> Pred:
    if t.args or len(t.tests) != 1 or t.test_list:
        raise SieveError(t.line, t.col, "the not test takes exactly one test")
    p = cc.test(t.tests[0])
    return lambda rt: not p(rt)


def _t_multi(kind: str) -> Callable[[CompileContext, Test], Pred]:
    def comp(cc: CompileContext, t: Test) -> Pred:
        if t.args or not t.tests or not t.test_list:
            raise SieveError(t.line, t.col, f"the {kind} test takes a test list")
        preds_l: list[Pred] = []
        for x in t.tests:
            try:
                preds_l.append(cc.test(x))
            except SieveError as e:
                cc.report(e)  # go on: report the errors of every sub-test
        if len(preds_l) != len(t.tests):
            raise ReportedError(t.line, t.col, f"invalid test in the {kind} test list")
        preds = tuple(preds_l)
        if len(preds) == 1:
            return preds[0]
        if kind == "allof":
            def allof(rt: Runtime) -> bool:
                for p in preds:  # noqa: SIM110 - hot path: a loop is cheaper than any()/all() on a generator
                    if not p(rt):
                        return False
                return True

            return allof

        def anyof(rt: Runtime) -> bool:
            for p in preds:  # noqa: SIM110 - hot path: a loop is cheaper than any()/all() on a generator
                if p(rt):
                    return True
            return False

        return anyof

    return comp


def t_size(cc: CompileContext, t: Test) -> Pred:
    args = read_args(cc, t, "size", {"over": TagSpec("rel"), "under": TagSpec("rel")}, ["number"])
    rel = args.tag("rel")
    if rel is None:
        raise SieveError(t.line, t.col, "the size test needs :over or :under")
    n = args.pos[0].value
    if rel == "over":
        return lambda rt: rt.message_size() > n
    return lambda rt: rt.message_size() < n


def _mime_tags(cc: CompileContext, header: bool) -> dict[str, TagSpec]:
    if not cc.has("mime"):
        return {}
    tags = {"mime": TagSpec("mime"), "anychild": TagSpec("anychild")}
    if header:
        tags.update({"type": TagSpec("mimeopt"), "subtype": TagSpec("mimeopt"),
                     "contenttype": TagSpec("mimeopt"), "param": TagSpec("mimeopt", "strlist")})
    return tags


def _index_tags(cc: CompileContext) -> dict[str, TagSpec]:
    if not cc.has("index"):
        return {}
    return {"index": TagSpec("index", "number"), "last": TagSpec("last")}


def _check_mime_args(cc: CompileContext, args: Args, t: Test) -> None:
    if (args.tag("anychild") or args.tag("mimeopt")) and not args.tag("mime"):
        node = (args.tags.get("anychild") or args.tags["mimeopt"])[2]
        raise SieveError(node.line, node.col, "the :anychild and content options need :mime")
    if args.tag("last") and not args.tag("index"):
        node = args.tags["last"][2]
        raise SieveError(node.line, node.col, "the :last tag cannot be specified without the :index tag")
    idx = args.value("index")
    if idx is not None and idx < 1:
        node = args.tags["index"][2]
        raise SieveError(node.line, node.col, ":index must be 1 or greater")


def _indexed(vals: list[str], index: int | None, last: bool) -> list[str]:
    if index is None:
        return vals
    i = len(vals) - index if last else index - 1
    return [vals[i]] if 0 <= i < len(vals) else []


def _parts_for(rt: Runtime, anychild: bool) -> list[Message]:
    """The MIME part(s) the :mime header tests look at (RFC 5703 section 4.1)."""
    cur = rt.part_stack[-1] if rt.part_stack else rt.msg.parsed()
    if not anychild:
        return [cur]
    return list(cur.walk())


def _mime_header_values(rt: Runtime, part: Message, name: str) -> list[str]:
    if not rt.part_stack and part is rt.msg.parsed():
        return rt.header_values(name)
    return [decode_header_value(str(v)) for v in (part.get_all(name) or [])]


def _content_option(opt: str | None, param: list[str] | None, name: str) -> Callable[[str], list[str]]:
    if opt is None or name.lower() not in ("content-type", "content-disposition"):
        return lambda v: [v]
    ctype = name.lower() == "content-type"

    def split(v: str) -> list[str]:
        main, _, rest = v.partition(";")
        main = main.strip()
        if opt == "param":
            out = []
            from email.message import Message as _M

            m = _M()
            m["X"] = "x; " + rest if rest else "x"
            wanted = {p.lower() for p in (param or [])}
            try:
                params = m.get_params(header="X") or []
                for k, val in params[1:]:
                    if k.lower() in wanted:
                        out.append(email.utils.collapse_rfc2231_value(val))
            except Exception:  # noqa: BLE001 - the standard library's RFC 2231 reading raises on
                # mixed forms (name*=a; name*0=b), a section number of 4,300+ digits, a charset
                # that takes no "replace" (idna): read as the MIME view reads parameters
                plain = split_params("x; " + rest)
                joined = rfc2231_params(plain)
                out = [v for k, v in plain if k in wanted]
                out += [v for k, v in joined.items() if k in wanted]
            return out
        if not ctype:  # Content-Disposition: the disposition is the "type", no subtype
            return [main] if opt in ("contenttype", "type") else ([""] if opt == "subtype" else [])
        typ, _, sub = main.partition("/")
        if opt == "type":
            return [typ]
        if opt == "subtype":
            return [sub]
        return [main]

    return split


def t_header(cc: CompileContext, t: Test) -> Pred:
    tags = {**match_tags(cc), **_mime_tags(cc, True), **_index_tags(cc)}
    args = read_args(cc, t, "header", tags, ["strlist", "strlist"])
    _check_mime_args(cc, args, t)
    names_arg, keys_arg = args.pos
    names = cc.strlist(strlist_of(names_arg))
    const_names = cc.const_list(strlist_of(names_arg))
    keys, kconst = _keys(cc, keys_arg)
    match = compile_matcher(cc, args, keys, kconst, t.line, t.col)
    index, last = args.value("index"), bool(args.tag("last"))
    use_mime, anychild = bool(args.tag("mime")), bool(args.tag("anychild"))
    opt = args.tag("mimeopt")
    params: list[str] | None = args.value("mimeopt") if opt == "param" else None
    if params is not None:
        params = cc.const_list(params) or params

    if not use_mime and index is None and const_names is not None:
        lnames = [n.lower() for n in const_names]
        prefold = (kconst is not None and (args.tag("match") or "is") in ("is", "contains")
                   and args.value("comparator", "i;ascii-casemap") == "i;ascii-casemap")
        if prefold and len(lnames) == 1:
            n1 = lnames[0]
            pmatch = compile_matcher(cc, args, keys, kconst, t.line, t.col, prefolded=True)

            def one_folded(rt: Runtime) -> bool:
                vals = rt._fcache.get(n1)
                return pmatch(rt, vals if vals is not None else rt.header_folded(n1))

            return one_folded
        if len(lnames) == 1:
            n0 = lnames[0]

            def one(rt: Runtime) -> bool:
                vals = rt._hcache.get(n0)
                return match(rt, vals if vals is not None else rt.header_values(n0))

            return one

        def fast(rt: Runtime) -> bool:
            vals: list[str] = []
            for n in lnames:
                vals.extend(rt.header_values(n))
            return match(rt, vals)

        return fast

    def run(rt: Runtime) -> bool:
        vals: list[str] = []
        if use_mime:
            for part in _parts_for(rt, anychild):
                for n in names(rt):
                    split = _content_option(opt, params, n)
                    for v in _indexed(_mime_header_values(rt, part, n), index, last):
                        vals.extend(split(v))
        else:
            for n in names(rt):
                vals.extend(_indexed(rt.header_values(n), index, last))
        return match(rt, vals)

    return run


_ATOMS = r'[^<>"\s,;:()\\@]+@[^<>"\s,;:()\\@]+'
_SIMPLE_ADDR = re.compile(r'^\s*(?:[^"<>,;:()\\@]*<(' + _ATOMS + r')>|(' + _ATOMS + r'))\s*$')


def parse_addresses(value: str) -> list[str]:
    """Addresses of an address-list header (RFC 5322 3.4); the common one-address forms take a
    fast path, everything else (groups, quotes, comments, lists) the stdlib parser."""
    m = _SIMPLE_ADDR.match(value)
    if m is not None:
        return [m.group(1) or m.group(2)]
    out = []
    for _name, addr in addresses([value]):
        if addr:
            out.append(addr)
    return out


def t_address(cc: CompileContext, t: Test) -> Pred:
    tags = {**match_tags(cc), **address_part_tags(cc), **_mime_tags(cc, False), **_index_tags(cc)}
    args = read_args(cc, t, "address", tags, ["strlist", "strlist"])
    _check_mime_args(cc, args, t)
    names = cc.strlist(strlist_of(args.pos[0]))
    keys, kconst = _keys(cc, args.pos[1])
    match = compile_matcher(cc, args, keys, kconst, t.line, t.col)
    part = address_part(args.tag("addrpart") or "all")
    index, last = args.value("index"), bool(args.tag("last"))
    use_mime, anychild = bool(args.tag("mime")), bool(args.tag("anychild"))

    const_names = cc.const_list(strlist_of(args.pos[0]))
    if not use_mime and index is None and const_names is not None:
        names_t = tuple(n.lower() for n in const_names)
        is_all = (args.tag("addrpart") or "all") == "all"

        def fast(rt: Runtime) -> bool:
            vals: list[str] = []
            for n in names_t:
                addrs = rt._acache.get(n)
                if addrs is None:
                    addrs = rt.addresses(n)
                if is_all:
                    vals.extend(addrs)
                else:
                    for a in addrs:
                        x = part(a, rt.env.subaddress_delimiters)
                        if x is not None:
                            vals.append(x)
            return match(rt, vals)

        return fast

    def run(rt: Runtime) -> bool:
        raw: list[str] = []
        for n in names(rt):
            if use_mime:
                for p in _parts_for(rt, anychild):
                    raw.extend(_indexed(_mime_header_values(rt, p, n), index, last))
            else:
                raw.extend(_indexed(rt.header_values(n), index, last))
        vals: list[str] = []
        for v in raw:
            for a in parse_addresses(v):
                x = part(a, rt.env.subaddress_delimiters)
                if x is not None:
                    vals.append(x)
        return match(rt, vals)

    return run


ENVELOPE_PARTS = ("from", "to", "auth")
_DOMAIN_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$|^\[[^\[\]]+\]$")
_DOTATOM_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_QUOTED_RE = re.compile(r'^"([^"\\]|\\.)*"$')


def parse_path(value: str) -> str | None:
    """RFC 5321 path -> "local@domain", "" for the null path, None when malformed."""
    v = value.strip()
    if v.startswith("<") or v.endswith(">"):
        if not (v.startswith("<") and v.endswith(">")):
            return None
        v = v[1:-1]
    if v == "":
        return ""
    if v.startswith("@"):
        route, sep, v = v.partition(":")
        if not sep:
            return None
        for hop in route.split(","):
            if not hop.startswith("@") or not _DOMAIN_RE.match(hop[1:]):
                return None
    local, at, domain = v.rpartition("@")
    if not at:
        # A bare local part (<MAILER-DAEMON>) is accepted, as Pigeonhole does for postmaster-style paths.
        return v if _DOTATOM_RE.match(v) and "." not in v else None
    if not local or not _DOMAIN_RE.match(domain):
        return None
    if not (_DOTATOM_RE.match(local) or _QUOTED_RE.match(local)):
        return None
    return v


def t_envelope(cc: CompileContext, t: Test) -> Pred:
    tags = {**match_tags(cc), **address_part_tags(cc)}
    args = read_args(cc, t, "envelope", tags, ["strlist", "strlist"])
    parts_c = cc.const_list(strlist_of(args.pos[0]))
    for p in parts_c or []:
        if p.lower() not in ENVELOPE_PARTS:
            raise SieveError(args.pos[0].line, args.pos[0].col, f"unknown envelope part \"{p}\"")
    parts = cc.strlist(strlist_of(args.pos[0]))
    keys, kconst = _keys(cc, args.pos[1])
    match = compile_matcher(cc, args, keys, kconst, t.line, t.col)
    part = address_part(args.tag("addrpart") or "all")

    def run(rt: Runtime) -> bool:
        vals: list[str] = []
        for p in parts(rt):
            p = p.lower()
            if p == "from":
                src = [rt.msg.mail_from]
            elif p == "to":
                src = list(rt.msg.recipients)
            elif p == "auth":
                src = [rt.msg.auth] if rt.msg.auth else []
            else:
                src = []
            for raw in src:
                a = parse_path(raw) if p != "auth" else raw
                if a is None:
                    continue
                if a == "":
                    vals.append("")  # RFC 5228 5.4: the null path is "" whatever the address part
                    continue
                x = part(a, rt.env.subaddress_delimiters)
                if x is not None:
                    vals.append(x)
        return match(rt, vals)

    return run


def t_exists(cc: CompileContext, t: Test) -> Pred:
    args = read_args(cc, t, "exists", _mime_tags(cc, False), ["strlist"])
    _check_mime_args(cc, args, t)
    names = cc.strlist(strlist_of(args.pos[0]))
    use_mime, anychild = bool(args.tag("mime")), bool(args.tag("anychild"))

    def run(rt: Runtime) -> bool:
        ns = names(rt)
        if use_mime:
            parts = _parts_for(rt, anychild)
            if anychild:
                return all(any(_mime_header_values(rt, p, n) for p in parts) for n in ns)
            return all(_mime_header_values(rt, parts[0], n) for n in ns)
        return all(rt.header_values(n) for n in ns)

    return run


# == body (RFC 5173) ===========================================================================
def t_body(cc: CompileContext, t: Test) -> Pred:
    tags = {**match_tags(cc), "raw": TagSpec("transform"), "text": TagSpec("transform"),
            "content": TagSpec("transform", "strlist")}
    args = read_args(cc, t, "body", tags, ["strlist"])
    keys, kconst = _keys(cc, args.pos[0])
    mtype = args.tag("match") or "is"
    match = compile_matcher(cc, args, keys, kconst, t.line, t.col, capture=False)
    transform = args.tag("transform") or "text"
    ctypes = cc.strlist(args.value("transform")) if transform == "content" else None
    del mtype

    def run(rt: Runtime) -> bool:
        if transform == "raw":
            if not getattr(rt.msg, "has_body", True):
                return False  # no body at all: nothing to match, not even ""
            body = rt.msg.body_bytes().decode("utf-8", "surrogateescape")
            return match(rt, [body])
        wanted = [c.lower() for c in ctypes(rt)] if ctypes else ["text"]
        key = ("body", tuple(wanted), transform)
        vals = rt.msg.cache.get(key)
        if vals is None:
            vals = rt.msg.cache[key] = body_texts(rt.msg.parsed(), wanted, extract=transform == "text")
        return match(rt, vals)  # type: ignore[arg-type]

    return run


def _ctype_matches(ct: str, wanted: list[str]) -> bool:
    if ct == "application/xhtml+xml" and "text" in wanted:
        return True  # Pigeonhole extracts the text of XHTML parts for :text
    typ = ct.split("/", 1)[0]
    return any(w in ("", ct) or ("/" not in w and w == typ) for w in wanted)


def part_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        payload = None
    if not isinstance(payload, bytes):
        p = part.get_payload()
        return p if isinstance(p, str) else ""
    return bytes_as_text(payload, content_charset(part, "us-ascii"))


_TAG_RE = re.compile(r"<[^>]*>")


_CTYPE_RE = re.compile(r"^\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+\s*(;|$)")
_KNOWN_CTE = {"", "7bit", "8bit", "binary", "base64", "quoted-printable"}


def body_texts(root: Message, wanted: list[str], extract: bool) -> list[str]:
    out: list[str] = []
    for part in root.walk():
        ct = part.get_content_type()
        raw_ct = part.get("Content-Type")
        if raw_ct is not None and not _CTYPE_RE.match(str(raw_ct)):
            continue  # a malformed Content-Type ("text/plain/stupid") is no text part
        cte = str(part.get("Content-Transfer-Encoding") or "").strip().lower()
        if cte not in _KNOWN_CTE:
            continue  # unknown transfer encoding: the content cannot be decoded
        if ct == "message/rfc822":
            # RFC 5173 5.2: only the nested message's header, as one string.
            if _ctype_matches(ct, wanted) and not extract:
                inner = part.get_payload()
                if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                    out.append("".join(f"{k}: {v}\r\n" for k, v in inner[0].items()))
            continue
        if part.is_multipart():
            if _ctype_matches(ct, wanted) and any(w.startswith("multipart") or w == "" for w in wanted):
                pre = part.preamble or ""
                post = part.epilogue or ""
                out.append(pre + post)
            continue
        if not _ctype_matches(ct, wanted):
            continue
        text = part_text(part)
        if extract and ct in ("text/html", "application/xhtml+xml"):
            text = _TAG_RE.sub(" ", text)
        out.append(text)
    return out


# == variables (RFC 5229) ======================================================================
MODIFIERS = {
    "lower": 40, "upper": 40, "lowerfirst": 30, "upperfirst": 30,
    "quotewildcard": 20, "quoteregex": 20, "length": 10, "encodeurl": 15,
}


def _modifier_tags(cc: CompileContext) -> dict[str, TagSpec]:
    tags = {m: TagSpec(f"mod{p}") for m, p in MODIFIERS.items() if m not in ("quoteregex", "encodeurl")}
    if cc.has("regex"):
        tags["quoteregex"] = TagSpec("mod20")
    if cc.has("enotify"):
        tags["encodeurl"] = TagSpec("mod15")
    return tags


def _apply_modifiers(args: Args) -> Callable[[str], str]:
    mods = sorted((t[0] for g, t in args.tags.items() if g.startswith("mod")), key=lambda m: -MODIFIERS[m])
    fns: list[Callable[[str], str]] = []
    for m in mods:
        fns.append({
            "lower": str.lower, "upper": str.upper,
            "lowerfirst": lambda s: s[:1].lower() + s[1:],
            "upperfirst": lambda s: s[:1].upper() + s[1:],
            "quotewildcard": lambda s: re.sub(r"([*?\\])", r"\\\1", s),
            "quoteregex": lambda s: re.sub(r"([\\^$.\[\]|()?*+{}])", r"\\\1", s),
            "length": lambda s: str(len(s)),
            "encodeurl": lambda s: urllib.parse.quote(s, safe="-._~"),
        }[m])

    def apply(s: str) -> str:
        for f in fns:
            s = f(s)
        return s

    return apply


_VARNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def variable_setter(cc: CompileContext, node: Command | Arg, name: str) -> Callable[[Runtime, str], None]:
    lname = name.lower()
    if lname.startswith("global.") and cc.has("include"):
        g = lname[7:]
        if not _VARNAME.match(g):
            raise SieveError(node.line, node.col, f"invalid variable name \"{name}\"")

        def setg(rt: Runtime, v: str) -> None:
            rt.globals[g] = truncate_utf8(v, rt.limits.max_variable_size)

        return setg
    if "." in lname:
        raise SieveError(node.line, node.col, f"unknown variable namespace \"{lname.split('.')[0]}\" in \"{name}\"")
    if not _VARNAME.match(lname):
        raise SieveError(node.line, node.col, f"invalid variable name \"{name}\"")
    if len(lname) > MAX_VARIABLE_NAME:
        raise SieveError(node.line, node.col, f"variable name \"{name}\" is longer than {MAX_VARIABLE_NAME} characters")
    if lname in cc.global_names:
        def setgl(rt: Runtime, v: str) -> None:
            rt.globals[lname] = truncate_utf8(v, rt.limits.max_variable_size)

        return setgl

    local_names = cc.data.setdefault("locals", set())
    if lname not in local_names and len(local_names) >= MAX_VARIABLES:
        if cc.data.get("too_many_variables"):
            raise ReportedError(node.line, node.col, "too many variables")  # reported once
        cc.data["too_many_variables"] = True
        raise SieveError(node.line, node.col, f"too many variables (limit {MAX_VARIABLES})")
    local_names.add(lname)

    def setl(rt: Runtime, v: str) -> None:
        rt.vars[lname] = truncate_utf8(v, rt.limits.max_variable_size)

    return setl


def c_set(cc: CompileContext, cmd: Command) -> Exec:
    args = read_args(cc, cmd, "set", _modifier_tags(cc), ["string", "string"])
    _simple(cmd, "set")
    setter = variable_setter(cc, args.pos[0], args.pos[0].value)
    value = cc.string(args.pos[1].value)
    mod = _apply_modifiers(args)
    has_mods = any(g.startswith("mod") for g in args.tags)

    if not has_mods:
        return lambda rt: setter(rt, value(rt))
    if args.tag("mod20") == "quotewildcard":
        def set_quoted(rt: Runtime) -> None:
            v = truncate_utf8(mod(value(rt)), rt.limits.max_variable_size)
            trailing = len(v) - len(v.rstrip("\\"))
            if trailing % 2:
                v = v[:-1]  # never cut an escape pair in two
            setter(rt, v)

        return set_quoted
    return lambda rt: setter(rt, mod(value(rt)))


def t_string(cc: CompileContext, t: Test) -> Pred:
    args = read_args(cc, t, "string", match_tags(cc), ["strlist", "strlist"])
    src = cc.strlist(strlist_of(args.pos[0]))
    keys, kconst = _keys(cc, args.pos[1])
    match = compile_matcher(cc, args, keys, kconst, t.line, t.col)
    count = args.tag("match") == "count"

    def run(rt: Runtime) -> bool:
        vals = src(rt)
        if count:
            vals = [v for v in vals if v != ""]
        return match(rt, vals)

    return run


# == imap4flags (RFC 5232) =====================================================================
def normalize_flags(values: list[str]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for v in values:
        for f in v.split():
            k = f.lower()
            if k not in seen:
                seen.add(k)
                out.append(f)
    return out


def _c_flagcmd(kind: str) -> Callable[[CompileContext, Command], Exec]:
    def comp(cc: CompileContext, cmd: Command) -> Exec:
        args = read_args(cc, cmd, kind, {}, ["string", "strlist"], optional_positional=1)
        _simple(cmd, kind)
        var = None
        if len(args.pos) == 2:
            if args.pos[0].kind != "string":
                raise SieveError(args.pos[0].line, args.pos[0].col, f"the {kind} variable name must be a string")
            if not cc.has("variables"):
                raise SieveError(args.pos[0].line, args.pos[0].col, f"{kind} with a variable name needs \"variables\"")
            var = args.pos[0].value.lower()
            setter = variable_setter(cc, args.pos[0], var)
            getter = cc.string("${" + var + "}")
        flags = cc.strlist(strlist_of(args.pos[-1]))

        def run(rt: Runtime) -> None:
            cur = normalize_flags([getter(rt)]) if var is not None else rt.flags
            new = normalize_flags(flags(rt))
            if kind == "setflag":
                res = new
            elif kind == "addflag":
                res = normalize_flags(cur + new)
            else:
                drop = {f.lower() for f in new}
                res = [f for f in cur if f.lower() not in drop]
            if var is not None:
                setter(rt, " ".join(res))
            else:
                rt.flags = res

        return run

    return comp


def t_hasflag(cc: CompileContext, t: Test) -> Pred:
    args = read_args(cc, t, "hasflag", match_tags(cc), ["strlist", "strlist"], optional_positional=1)
    raw_keys, kconst = _keys(cc, args.pos[-1])
    # RFC 5232 section 5: the keys are flag lists too ("b A" is the flags b and A).
    kconst = normalize_flags(kconst) if kconst is not None else None
    keys: ListFn = (lambda rt: kconst) if kconst is not None else (lambda rt: normalize_flags(raw_keys(rt)))
    match = compile_matcher(cc, args, keys, kconst, t.line, t.col)
    vars_ = cc.strlist(strlist_of(args.pos[0])) if len(args.pos) == 2 else None
    if vars_ is not None and not cc.has("variables"):
        raise SieveError(t.line, t.col, "hasflag with variable names needs \"variables\"")
    getters = [cc.string("${" + v + "}") for v in strlist_of(args.pos[0])] if vars_ is not None else None

    def run(rt: Runtime) -> bool:
        if getters is not None:
            flags = normalize_flags([g(rt) for g in getters])
        else:
            flags = rt.flags
        return match(rt, flags)

    return run


# == date and index (RFC 5260) =================================================================
DATE_PARTS = ("year", "month", "day", "date", "julian", "hour", "minute", "second", "time",
              "iso8601", "std11", "zone", "weekday")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ZONE_RE = re.compile(r"^[+-]\d{4}$")


def _zone_str(dt: datetime) -> str:
    off = dt.utcoffset() or timedelta(0)
    mins = int(off.total_seconds() // 60)
    sign = "-" if mins < 0 else "+"
    mins = abs(mins)
    return f"{sign}{mins // 60:02d}{mins % 60:02d}"


def date_part(dt: datetime, part: str) -> str:
    if part == "year":
        return f"{dt.year:04d}"
    if part == "month":
        return f"{dt.month:02d}"
    if part == "day":
        return f"{dt.day:02d}"
    if part == "date":
        return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}"
    if part == "julian":
        epoch = datetime(1858, 11, 17, tzinfo=dt.tzinfo)
        return str((dt - epoch).days)
    if part == "hour":
        return f"{dt.hour:02d}"
    if part == "minute":
        return f"{dt.minute:02d}"
    if part == "second":
        return f"{dt.second:02d}"
    if part == "time":
        return f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    if part == "iso8601":
        z = _zone_str(dt)
        return dt.strftime("%Y-%m-%dT%H:%M:%S") + z[:3] + ":" + z[3:]
    if part == "std11":
        return (f"{_WEEKDAYS[dt.weekday()]}, {dt.day:02d} {_MONTHS[dt.month - 1]} {dt.year:04d} "
                f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} {_zone_str(dt)}")
    if part == "zone":
        return _zone_str(dt)
    if part == "weekday":
        return str((dt.weekday() + 1) % 7)
    return ""


def _parse_zone(z: str) -> timezone:
    sign = -1 if z[0] == "-" else 1
    return timezone(sign * timedelta(hours=int(z[1:3]), minutes=int(z[3:5])))


def parse_date(value: str) -> datetime | None:
    v = value.strip()
    # RFC 5260: the date is the last part of e.g. Received headers (after ';').
    if ";" in v:
        v = v.rsplit(";", 1)[1].strip()
    tup = email.utils.parsedate_tz(v)
    if tup is None:
        return None
    try:
        y, mo, d, h, mi, s = tup[:6]
        if y < 100:
            y += 2000 if y < 50 else 1900
        off = tup[9] or 0
        return datetime(y, mo, d, h, mi, min(s, 59), tzinfo=timezone(timedelta(seconds=off)))
    except (ValueError, OverflowError):
        return None


def _date_common(cc: CompileContext, t: Test, args: Args, part_arg: Arg) -> tuple[str, Callable[[datetime], datetime]]:
    part = cc.const_string(part_arg.value)
    if part is None or part.lower() not in DATE_PARTS:
        raise SieveError(part_arg.line, part_arg.col, f"unknown date part \"{part_arg.value}\"")
    zone_tag = args.tag("zone")
    if zone_tag == "zone":
        z = args.value("zone")
        if not _ZONE_RE.match(z):
            node = args.tags["zone"][2]
            raise SieveError(node.line, node.col, f"invalid time zone \"{z}\"")
        tz = _parse_zone(z)
        return part.lower(), lambda dt: dt.astimezone(tz)
    if zone_tag == "originalzone":
        return part.lower(), lambda dt: dt
    return part.lower(), lambda dt: dt.astimezone()


def t_date(cc: CompileContext, t: Test) -> Pred:
    tags = {**match_tags(cc), **_index_tags(cc), "zone": TagSpec("zone", "string"),
            "originalzone": TagSpec("zone")}
    args = read_args(cc, t, "date", tags, ["string", "string", "strlist"])
    _check_mime_args(cc, args, t)
    header = cc.string(args.pos[0].value)
    part, conv = _date_common(cc, t, args, args.pos[1])
    keys, kconst = _keys(cc, args.pos[2])
    match = compile_matcher(cc, args, keys, kconst, t.line, t.col)
    index, last = args.value("index"), bool(args.tag("last"))
    count = args.tag("match") == "count"

    def run(rt: Runtime) -> bool:
        vals = []
        for v in _indexed(rt.header_values(header(rt)), index, last):
            dt = parse_date(v)
            if dt is not None:
                vals.append(date_part(conv(dt), part))
        if not vals and not count:
            return False
        return match(rt, vals)

    return run


def t_currentdate(cc: CompileContext, t: Test) -> Pred:
    tags = {**match_tags(cc), "zone": TagSpec("zone", "string")}
    args = read_args(cc, t, "currentdate", tags, ["string", "strlist"])
    part, conv = _date_common(cc, t, args, args.pos[0])
    keys, kconst = _keys(cc, args.pos[1])
    match = compile_matcher(cc, args, keys, kconst, t.line, t.col)

    def run(rt: Runtime) -> bool:
        now = rt.now or datetime.now().astimezone()
        return match(rt, [date_part(conv(now), part)])

    return run


# == editheader (RFC 5293) =====================================================================
def _check_header_name(node: Arg, name: str) -> None:
    if not _HEADER_NAME.match(name) or len(name) > 200:
        raise SieveError(node.line, node.col, f"specified field name \"{name}\" is invalid")


def _forbidden(rt: Runtime, name: str, op: str) -> bool:
    check = getattr(rt.env, "editheader_forbidden", None)
    return bool(check(name, op)) if check is not None else (op == "delete" and name.lower() in PROTECTED_HEADERS)


_FOLD_RE = re.compile(r"[ \t]*\r?\n[ \t]*")


def c_addheader(cc: CompileContext, cmd: Command) -> Exec:
    args = read_args(cc, cmd, "addheader", {"last": TagSpec("last")}, ["string", "string"])
    _simple(cmd, "addheader")
    name_c = cc.const_string(args.pos[0].value)
    if name_c is not None:
        _check_header_name(args.pos[0], name_c)
    name = cc.string(args.pos[0].value)
    value = cc.string(args.pos[1].value)
    vconst = cc.const_string(args.pos[1].value)
    if vconst is not None and "\0" in vconst:
        shown = vconst.replace("\0", "\\0")
        raise SieveError(args.pos[1].line, args.pos[1].col,
                         f"specified value \"{shown}\" is invalid: it contains a NUL character")
    if vconst is not None and any(ord(c) < 32 and c not in "\t\r\n" for c in vconst):
        cc.warnings.append(SieveError(args.pos[1].line, args.pos[1].col,
                                      "header value contains control characters"))
    if vconst is not None and not _utf8(vconst):  # (a script file's bytes that are not UTF-8)
        raise SieveError(args.pos[1].line, args.pos[1].col, "specified value is not valid UTF-8")
    max_size = int(cc.data.get("editheader.max_header_size", 2048))
    if vconst is not None and name_c is not None and len(name_c) + 2 + len(vconst.encode()) > max_size:
        raise SieveError(args.pos[1].line, args.pos[1].col, f"header field is too large (limit {max_size} bytes)")
    last = bool(args.tag("last"))
    line = cmd.line

    def run(rt: Runtime) -> None:
        n, v = name(rt), value(rt)
        if not _HEADER_NAME.match(n):
            raise SieveRuntimeError(f"specified field name \"{n}\" is invalid", line, rt.script)
        if _forbidden(rt, n, "add"):
            return  # RFC 5293 section 6: protected fields are silently left alone
        if "\0" in v:
            if vconst is not None:
                raise SieveRuntimeError("header value contains a NUL character", line, rt.script)
            # (what the message brought: a NUL in a copied Subject; libmilter's header calls
            # take C strings, so the value would end there anyway)
            v = v.replace("\0", "")
            rt.warnings.append(f"line {line}: NUL characters left out of the addheader value")
        if not _utf8(v) or not _utf8(n):
            raise SieveRuntimeError("header field is not valid UTF-8", line, rt.script)
        v = _FOLD_RE.sub(" ", v)
        room = rt.limits.max_header_value - len(n) - 2
        if len(v.encode("utf-8")) > room:
            if vconst is not None or room <= 0:  # the script's own text: its error
                raise SieveRuntimeError(f"header field is too large (limit {rt.limits.max_header_value} bytes)",
                                        line, rt.script)
            # a value built at run time holds what the message brought (a Subject copied by
            # ${1}): cut at the limit on a character boundary, as variables are cut (RFC 5229
            # section 3), instead of a run-time error that would refuse this message on every try
            v = v.encode("utf-8")[:room].decode("utf-8", "ignore")
            rt.warnings.append(f"line {line}: addheader value cut to the {rt.limits.max_header_value}-byte field limit")
        rt.edits += 1
        if rt.edits > rt.limits.max_header_edits:
            raise SieveRuntimeError(f"too many header edits (limit {rt.limits.max_header_edits})", line, rt.script)
        hs = rt.edit_headers()
        if last:
            hs.append((n, v))
        else:
            hs.insert(0, (n, v))
        rt.actions.append(SieveAction("addheader", {"name": n, "value": v, "last": last}, line, rt.script))

    return run


def c_deleteheader(cc: CompileContext, cmd: Command) -> Exec:
    tags = {**match_tags(cc), "index": TagSpec("index", "number"), "last": TagSpec("last")}
    args = read_args(cc, cmd, "deleteheader", tags, ["string", "strlist"], optional_positional=1)
    _simple(cmd, "deleteheader")
    if args.tag("last") and not args.tag("index"):
        node = args.tags["last"][2]
        raise SieveError(node.line, node.col, "the :last tag cannot be specified without the :index tag")
    if len(args.pos) == 2 and args.pos[0].kind != "string":
        raise SieveError(args.pos[0].line, args.pos[0].col, "the header name must be a string")
    name_arg = args.pos[0]
    if name_arg.kind != "string":
        raise SieveError(name_arg.line, name_arg.col, "the header name must be a string")
    name_c = cc.const_string(name_arg.value)
    if name_c is not None:
        _check_header_name(name_arg, name_c)
    name = cc.string(name_arg.value)
    match = None
    if len(args.pos) == 2:
        keys, kconst = _keys(cc, args.pos[1])
        match = compile_matcher(cc, args, keys, kconst, cmd.line, cmd.col)
    index, last = args.value("index"), bool(args.tag("last"))
    line = cmd.line

    def run(rt: Runtime) -> None:
        n = name(rt)
        ln = n.lower()
        if _forbidden(rt, n, "delete"):
            return
        hs = rt.edit_headers()
        positions = [i for i, (hn, _) in enumerate(hs) if hn.lower() == ln]
        # each field's occurrence number among those of its name (deleting from the last one
        # on leaves the earlier numbers as they are): counted once, not again per field deleted
        # (square in the number of fields: 0.7 s for 5,000 of one name)
        occurrence_of = {pos: k + 1 for k, pos in enumerate(positions)}
        if index is not None:
            i = len(positions) - index if last else index - 1
            positions = [positions[i]] if 0 <= i < len(positions) else []
        drop = []
        for i in positions:
            if match is None or match(rt, [decode_header_value(hs[i][1])]):
                drop.append(i)
        if not drop:
            return
        rt.edits += 1
        if rt.edits > rt.limits.max_header_edits:
            raise SieveRuntimeError(f"too many header edits (limit {rt.limits.max_header_edits})", line, rt.script)
        for i in reversed(drop):
            value = decode_header_value(hs[i][1])
            del hs[i]
            rt.actions.append(SieveAction("deleteheader", {"name": n, "value": value, "index": occurrence_of[i]},
                                          line, rt.script))
        rt.invalidate()

    return run


# == mime, foreverypart, extracttext (RFC 5703) ================================================
MAX_LOOP_NESTING = 4


def c_foreverypart(cc: CompileContext, cmd: Command) -> Exec:
    args = read_args(cc, cmd, "foreverypart", {"name": TagSpec("name", "string")}, [])
    if cmd.tests:
        raise SieveError(cmd.line, cmd.col, "foreverypart takes no test")
    if cmd.block is None:
        raise SieveError(cmd.line, cmd.col, "foreverypart needs a block")
    name = args.value("name")
    if len(cc.loop_names) >= MAX_LOOP_NESTING:
        raise SieveError(cmd.line, cmd.col, f"foreverypart loops are nested too deeply (limit {MAX_LOOP_NESTING})")
    cc.loop_names.append(name)
    try:
        body = compile_block(cc, cmd.block)
    finally:
        cc.loop_names.pop()

    def run(rt: Runtime) -> None:
        root = rt.part_stack[-1] if rt.part_stack else rt.msg.parsed()
        parts = list(root.walk())
        if rt.part_stack:
            parts = parts[1:]  # nested loops iterate below the current part
        for p in parts:
            rt.check_time()
            rt.part_stack.append(p)
            try:
                body(rt)
            except BreakLoop as b:
                if b.name is None or b.name == name:
                    return
                raise
            finally:
                rt.part_stack.pop()

    return run


def c_break(cc: CompileContext, cmd: Command) -> Exec:
    args = read_args(cc, cmd, "break", {"name": TagSpec("name", "string")}, [])
    _simple(cmd, "break")
    name = args.value("name")
    if not cc.loop_names:
        raise SieveError(cmd.line, cmd.col, "break outside a foreverypart loop")
    if name is not None and name not in cc.loop_names:
        raise SieveError(cmd.line, cmd.col, f"break: no enclosing foreverypart loop named \"{name}\"")

    def run(rt: Runtime) -> None:
        raise BreakLoop(name)

    return run


def c_extracttext(cc: CompileContext, cmd: Command) -> Exec:
    tags = {**_modifier_tags(cc), "first": TagSpec("first", "number")}
    args = read_args(cc, cmd, "extracttext", tags, ["string"])
    _simple(cmd, "extracttext")
    if not cc.loop_names:
        raise SieveError(cmd.line, cmd.col, "extracttext is only allowed inside a foreverypart loop")
    setter = variable_setter(cc, args.pos[0], args.pos[0].value)
    first = args.value("first")
    mod = _apply_modifiers(args)

    def run(rt: Runtime) -> None:
        part = rt.part_stack[-1] if rt.part_stack else rt.msg.parsed()
        text = ""
        if part.get_content_maintype() == "text" and not part.is_multipart():
            text = part_text(part)
            if part.get_content_type() == "text/html":
                text = _TAG_RE.sub(" ", text)
        if first is not None:
            text = text[:first]
        setter(rt, mod(text))

    return run


# == spamtest, virustest (RFC 5235) ============================================================
def t_spamtest(cc: CompileContext, t: Test) -> Pred:
    tags = dict(match_tags(cc))
    if cc.has("spamtestplus"):
        tags["percent"] = TagSpec("percent")
    args = read_args(cc, t, "spamtest", tags, ["string"])
    keys, kconst = _keys(cc, args.pos[0])
    match = compile_matcher(cc, args, keys, kconst, t.line, t.col)
    percent = bool(args.tag("percent"))
    return lambda rt: match(rt, [rt.env.spamtest(rt, percent)])


def t_virustest(cc: CompileContext, t: Test) -> Pred:
    args = read_args(cc, t, "virustest", match_tags(cc), ["string"])
    keys, kconst = _keys(cc, args.pos[0])
    match = compile_matcher(cc, args, keys, kconst, t.line, t.col)
    return lambda rt: match(rt, [rt.env.virustest(rt)])


# == environment (RFC 5183), ihave (RFC 5463), mailbox (RFC 5490) ================================
def t_environment(cc: CompileContext, t: Test) -> Pred:
    args = read_args(cc, t, "environment", match_tags(cc), ["string", "strlist"])
    name = cc.string(args.pos[0].value)
    keys, kconst = _keys(cc, args.pos[1])
    match = compile_matcher(cc, args, keys, kconst, t.line, t.col)

    def run(rt: Runtime) -> bool:
        v = rt.env.environment_item(name(rt).lower())
        if v is None:
            return False
        return match(rt, [v])

    return run


IHAVE_RESTRICTED = frozenset({"encoded-character", "variables"})


def t_ihave(cc: CompileContext, t: Test) -> Pred:
    args = read_args(cc, t, "ihave", {}, ["strlist"])
    caps = cc.const_list(strlist_of(args.pos[0]))
    if caps is None:
        raise SieveError(t.line, t.col, "ihave needs constant capability names")
    # RFC 5463 section 4: extensions that change how the script is parsed cannot be probed.
    ok = all(c in cc.registry.extensions and c not in IHAVE_RESTRICTED for c in caps)
    if ok:
        from gateway_milter.sieve.compiler import add_capability

        for c in caps:
            add_capability(cc, c)
    return lambda rt: ok


def c_error(cc: CompileContext, cmd: Command) -> Exec:
    args = read_args(cc, cmd, "error", {}, ["string"])
    _simple(cmd, "error")
    msg = cc.string(args.pos[0].value)
    line = cmd.line

    def run(rt: Runtime) -> None:
        raise SieveRuntimeError(f"error: {msg(rt)}", line, rt.script)

    return run


def t_mailboxexists(cc: CompileContext, t: Test) -> Pred:
    args = read_args(cc, t, "mailboxexists", {}, ["strlist"])
    names = cc.strlist(strlist_of(args.pos[0]))

    def run(rt: Runtime) -> bool:
        check = getattr(rt.env, "mailbox_exists", None)
        return all((check(n) if check else True) for n in names(rt))

    return run


# == include (RFC 6609) ========================================================================
def c_include(cc: CompileContext, cmd: Command) -> Exec:
    tags = {"personal": TagSpec("location"), "global": TagSpec("location"),
            "once": TagSpec("once"), "optional": TagSpec("optional")}
    args = read_args(cc, cmd, "include", tags, ["string"])
    _simple(cmd, "include")
    name = cc.const_string(args.pos[0].value)
    if name is None:
        raise SieveError(args.pos[0].line, args.pos[0].col, "include needs a constant script name")
    if not name or "/" in name or name.startswith("."):
        raise SieveError(args.pos[0].line, args.pos[0].col, f"invalid script name \"{name}\"")
    location = args.tag("location") or "personal"
    name = name.removesuffix(".sieve")  # "x.sieve" and "x" are the same script
    key = f"{location}:{name}"
    once = bool(args.tag("once"))
    optional = bool(args.tag("optional"))
    if key in cc.include_stack and not once:
        raise SieveError(cmd.line, cmd.col, f"circular include of \"{name}\"")
    max_depth = int(cc.data.get("include.max_nesting_depth", 10))
    if len(cc.include_stack) // 2 >= max_depth:
        raise SieveError(cmd.line, cmd.col, f"includes are nested too deeply (limit {max_depth})")
    count = cc.data.get("include.count", 0) + 1
    cc.data["include.count"] = count
    max_inc = int(cc.data.get("include.max_includes", 255))
    if count > max_inc:
        raise SieveError(cmd.line, cmd.col, f"too many includes (limit {max_inc})")
    source = cc.loader(name, location) if cc.loader else None
    if source is None:
        if optional:
            return lambda rt: None
        raise SieveError(args.pos[0].line, args.pos[0].col, f"included script \"{name}\" does not exist")
    sub: Exec | None = None
    if key not in cc.include_stack:
        cache = cc.data.setdefault("include_cache", {})
        if key in cache:
            sub = cache[key]
        else:
            def inherit(sub_cc: CompileContext) -> None:
                sub_cc.data.update({k: v for k, v in cc.data.items() if k.startswith(("include.", "namespace:", "config."))})

            sub, scc = compile_source(source, cc.registry, loader=cc.loader, name=name,
                                      include_stack=(*cc.include_stack, f"{cc.name}", key), setup=inherit)
            cc.data["include.count"] = max(cc.data.get("include.count", 0), scc.data.get("include.count", 0))
            if sub is None:
                # Report the included script's own errors (naming it), then the include itself.
                for e in scc.errors:
                    if e.message.startswith("failed to include") or e.message.startswith(("included ", f"{name}:")):
                        cc.report(e)
                    else:
                        cc.report(SieveError(e.line, e.column, f"{name}: {e.message}"))
                first = scc.errors[0]
                raise SieveError(cmd.line, cmd.col,
                                 f"failed to include \"{name}\": {first.line}:{first.column}: {first.message}")
            cache[key] = sub
    line = cmd.line

    def run(rt: Runtime) -> None:
        if sub is None or (once and key in rt.included_once):
            return
        rt.included_once.add(key)
        rt.include_depth += 1
        if rt.include_depth > rt.limits.max_include_depth:
            raise SieveRuntimeError("includes are nested too deeply", line, rt.script)
        saved_vars, saved_script, saved_match = rt.vars, rt.script, rt.match
        rt.vars, rt.script, rt.match = {}, name, []
        try:
            sub(rt)
        except ReturnScript:
            pass
        finally:
            rt.vars, rt.script, rt.match = saved_vars, saved_script, saved_match
            rt.include_depth -= 1

    return run


def c_return(cc: CompileContext, cmd: Command) -> Exec:
    _no_args(cc, cmd, "return")

    def run(rt: Runtime) -> None:
        raise ReturnScript

    return run


def c_global(cc: CompileContext, cmd: Command) -> Exec:
    args = read_args(cc, cmd, "global", {}, ["strlist"])
    _simple(cmd, "global")
    if not cc.has("variables"):
        raise SieveError(cmd.line, cmd.col, "the global command requires the \"variables\" extension")
    for n in strlist_of(args.pos[0]):
        if not _VARNAME.match(n):
            raise SieveError(args.pos[0].line, args.pos[0].col, f"invalid variable name \"{n}\"")
        if n.lower() in cc.data.get("locals", set()):
            raise SieveError(args.pos[0].line, args.pos[0].col, f"variable \"{n}\" is already used as a local variable")
        cc.global_names.add(n.lower())
    return lambda rt: None


# == registration ==============================================================================
REGISTRY.core_commands.update({
    "stop": c_stop, "keep": c_keep, "discard": c_discard, "redirect": c_redirect,
})
REGISTRY.core_tests.update({
    "true": t_true, "false": t_false, "not": t_not, "allof": _t_multi("allof"),
    "anyof": _t_multi("anyof"), "size": t_size, "header": t_header, "address": t_address,
    "exists": t_exists,
})
for _ext in (
    Extension("fileinto", commands={"fileinto": c_fileinto}),
    Extension("reject", commands={"reject": _c_reject("reject")}),
    Extension("ereject", commands={"ereject": _c_reject("ereject")}),
    Extension("envelope", tests={"envelope": t_envelope}),
    Extension("encoded-character"),
    Extension("body", tests={"body": t_body}),
    Extension("variables", commands={"set": c_set}, tests={"string": t_string}),
    Extension("relational"),
    Extension("comparator-i;octet"),
    Extension("comparator-i;ascii-casemap"),
    Extension("comparator-i;ascii-numeric"),
    Extension("comparator-i;unicode-casemap"),
    Extension("imap4flags", commands={"setflag": _c_flagcmd("setflag"), "addflag": _c_flagcmd("addflag"),
                                      "removeflag": _c_flagcmd("removeflag")}, tests={"hasflag": t_hasflag}),
    Extension("copy"),
    Extension("date", tests={"date": t_date, "currentdate": t_currentdate}),
    Extension("index"),
    Extension("editheader", commands={"addheader": c_addheader, "deleteheader": c_deleteheader}),
    Extension("mime"),
    Extension("foreverypart", commands={"foreverypart": c_foreverypart, "break": c_break}),
    Extension("extracttext", commands={"extracttext": c_extracttext}),
    Extension("subaddress"),
    Extension("regex"),
    Extension("spamtest", tests={"spamtest": t_spamtest}),
    Extension("spamtestplus", tests={"spamtest": t_spamtest}, implies=("spamtest",)),
    Extension("virustest", tests={"virustest": t_virustest}),
    Extension("include", commands={"include": c_include, "return": c_return, "global": c_global}),
    Extension("environment", tests={"environment": t_environment}),
    Extension("ihave", commands={"error": c_error}, tests={"ihave": t_ihave}),
    Extension("mailbox", tests={"mailboxexists": t_mailboxexists}),
):
    REGISTRY.add(_ext)

# "fileinto" etc. are found through the registry; CompileContext.block was rebound above.
__all__ = ["REGISTRY", "compile_block", "normalize_flags", "parse_addresses"]
