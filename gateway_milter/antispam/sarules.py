"""Parser for SpamAssassin rule files (Mail::SpamAssassin::Conf, 4.0 syntax).

Supported: ``header``, ``body``, ``rawbody``, ``uri``, ``full``, ``meta``, ``mimeheader`` rules
(regular expressions and the eval functions in :mod:`.saeval`), ``score`` (four score sets),
``describe``, ``tflags``, ``priority``, ``replace_tag/pre/inter/post/rules`` (ReplaceTags),
``freemail_domains`` and the ``if``/``ifplugin``/``else``/``endif`` conditionals.

Every rule we cannot apply faithfully goes to :attr:`RuleSet.unsupported` with the reason;
a meta rule that depends on an unsupported rule is unsupported too (never half-applied). A line
no rule owns that cannot be read (a score line, an ``if`` condition, a bad rule name, ``include``)
is listed there too (:attr:`RuleSet.line_errors` gives its file and line), and a meta reading a
rule no file defines, which runs with it read as 0, in :attr:`RuleSet.undefined_deps`.
Rules inside ``ifplugin`` blocks of plugins we do not implement (DNS, DKIM, SPF, Razor, ...)
are skipped exactly as SpamAssassin skips them when the plugin is not loaded: those checks
are our own layers (dnsbl, uribl, spf, dkim).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any
from dataclasses import dataclass, field
from pathlib import Path

from gateway_milter.antispam.perlre import PatternError, PerlPattern, octets, parse_perl_regex, split_delimited, translate
from gateway_milter.antispam.sauris import idn_to_ascii

SA_VERSION = 4.000001
PACKAGE_DIR = Path("/usr/share/spamassassin")  # Debian's spamassassin package
UPDATES_DIR = Path("/var/lib/spamassassin") / f"{SA_VERSION:.6f}" / "updates_spamassassin_org"  # sa-update's
DEFAULT_DIRS = (PACKAGE_DIR, UPDATES_DIR)


def rule_files(directory: Path) -> list[Path]:
    """The rule files of a directory as SpamAssassin reads them (its
    ``_get_cf_pre_files_in_dir``): names ending in ``.cf`` in any case, regular files only, in
    name order. A directory named ``x.cf`` or a symbolic link that leads nowhere (Emacs's lock
    ``.#local.cf`` while ``local.cf`` is edited) is no rule file: read as one, it failed the
    rule set, and every message was tempfailed until it was gone."""
    out = []
    for f in directory.iterdir():
        if f.name.lower().endswith(".cf"):
            try:
                if f.is_file():
                    out.append(f)
            except OSError:  # (a name the system will not even look at: no rule file either)
                continue
    return sorted(out)


def default_rule_dirs(sa_update: bool = False) -> list[Path]:
    """The default rule set's directory. The package's, unless ``sa_update`` and sa-update has
    written its channel (then that one instead, as SpamAssassin reads its update directory in
    place of the packaged rules: an update is the whole set); the update directory when there is
    no package."""
    if sa_update and UPDATES_DIR.is_dir() and rule_files(UPDATES_DIR):
        return [UPDATES_DIR]
    return [d for d in DEFAULT_DIRS if d.is_dir()][:1]

# Plugins whose rules we evaluate (see saeval for the eval functions each provides).
LOADED_PLUGINS = frozenset({
    "Mail::SpamAssassin::Plugin::ReplaceTags",
    "Mail::SpamAssassin::Plugin::MIMEHeader",
    "Mail::SpamAssassin::Plugin::HeaderEval",
    "Mail::SpamAssassin::Plugin::BodyEval",
    "Mail::SpamAssassin::Plugin::HTMLEval",
    "Mail::SpamAssassin::Plugin::MIMEEval",
    "Mail::SpamAssassin::Plugin::Bayes",
    "Mail::SpamAssassin::Plugin::FreeMail",
    "Mail::SpamAssassin::Plugin::RelayEval",
    "Mail::SpamAssassin::Plugin::Check",
    "Mail::SpamAssassin::Plugin::WLBLEval",
    "Mail::SpamAssassin::Plugin::ImageInfo",
    "Mail::SpamAssassin::Plugin::VBounce",
    # the DKIM and SPF plugins (Debian's v310.pre and v312.pre load them): the rule files are
    # read as SpamAssassin reads them with both, so a rule written twice, for with and without
    # a plugin, is the "with" one (__NOT_SPOOFED is SPF_PASS || DKIM_VALID || ..., not "any
    # DKIM-Signature field"). Their own rules are network tests: not run here, the dkim and spf
    # layers answer them (layers.rules.PLUGIN_RULES)
    "Mail::SpamAssassin::Plugin::DKIM",
    "Mail::SpamAssassin::Plugin::SPF",
})
FEATURES = {
    "Mail::SpamAssassin::Conf::feature_bug6558_free": True,
    "Mail::SpamAssassin::Conf::perl_min_version_5010000": True,
    "Mail::SpamAssassin::Conf::feature_welcomelist_blocklist": True,
    "Mail::SpamAssassin::Conf::compat_welcomelist_blocklist": True,
    "Mail::SpamAssassin::Conf::feature_capture_rules": True,  # (?<NAME>...) captures, %{NAME} templates
    "Mail::SpamAssassin::Conf::feature_dns_block_rule": False,
    "Mail::SpamAssassin::Plugin::BodyEval::has_check_body_length": True,
    "Mail::SpamAssassin::Plugin::SPF::has_check_for_spf_errors": True,  # (T_SPF_PERMERROR, ...: the spf layer's)
}
# WLBLEval's list directives (Conf.pm): directive -> (add or remove, the lists it changes)
ADDRLIST_DIRECTIVES: dict[str, tuple[str, tuple[str, ...]]] = {}
for _new, _old in (("welcomelist_from", "whitelist_from"), ("blocklist_from", "blacklist_from"),
                   ("welcomelist_to", "whitelist_to"), ("blocklist_to", "blacklist_to"),
                   ("welcomelist_allows_relays", "whitelist_allows_relays"),
                   ("welcomelist_bounce_relays", "whitelist_bounce_relays"),  # (VBounce's)
                   ("more_spam_to", ""), ("all_spam_to", ""),
                   # the DKIM and SPF plugins' welcome-lists, and the core's lists both read
                   ("welcomelist_auth", "whitelist_auth"), ("def_welcomelist_auth", "def_whitelist_auth"),
                   ("welcomelist_from_spf", "whitelist_from_spf"), ("def_welcomelist_from_spf", "def_whitelist_from_spf")):
    for _word in (_new, _old):
        if _word:
            ADDRLIST_DIRECTIVES[_word] = ("add", (_new,))
for _new, _old in (("welcomelist_from", "whitelist_from"), ("blocklist_from", "blacklist_from")):
    ADDRLIST_DIRECTIVES["un" + _new] = ADDRLIST_DIRECTIVES["un" + _old] = ("remove", (_new,))
# (these two take the entry off the list and off its default list: Conf.pm, SPF.pm)
for _new, _old in (("welcomelist_auth", "whitelist_auth"), ("welcomelist_from_spf", "whitelist_from_spf")):
    ADDRLIST_DIRECTIVES["un" + _new] = ADDRLIST_DIRECTIVES["un" + _old] = ("remove", (_new, "def_" + _new))
RCVDLIST_DIRECTIVES = {"welcomelist_from_rcvd": "welcomelist_from_rcvd", "whitelist_from_rcvd": "welcomelist_from_rcvd",
                       "def_welcomelist_from_rcvd": "def_welcomelist_from_rcvd",
                       "def_whitelist_from_rcvd": "def_welcomelist_from_rcvd",
                       "unwelcomelist_from_rcvd": "remove", "unwhitelist_from_rcvd": "remove"}
# the DKIM plugin's welcome-lists: an address glob and the domain whose valid signature it
# needs (none: the author's own domain); kept beside the rcvd lists (address -> domains)
DKIMLIST_DIRECTIVES = {"welcomelist_from_dkim": "welcomelist_from_dkim", "whitelist_from_dkim": "welcomelist_from_dkim",
                       "def_welcomelist_from_dkim": "def_welcomelist_from_dkim",
                       "def_whitelist_from_dkim": "def_welcomelist_from_dkim",
                       "unwelcomelist_from_dkim": "remove", "unwhitelist_from_dkim": "remove"}
URIHOST_DIRECTIVES: dict[str, tuple[str, str | None]] = {
    "enlist_uri_host": ("add", None), "delist_uri_host": ("remove", None),
    "blocklist_uri_host": ("add", "BLOCK"), "blacklist_uri_host": ("add", "BLOCK"),
    "welcomelist_uri_host": ("add", "WELCOME"), "whitelist_uri_host": ("add", "WELCOME")}
HEADER_MODIFIERS = frozenset({"raw", "addr", "name", "first", "last"})
_LISTNAME = re.compile(r"^\((.+?)\)\s+(.+)\Z", re.S)
PLUGIN_NOT_LOADED = "a plugin the gateway does not load"  # (a rule in its ifplugin block is not read)
RULE_KINDS = ("header", "body", "rawbody", "uri", "full", "meta", "mimeheader")


def known_directive(word: str) -> bool:
    """Whether the parser reads this directive (others, SpamAssassin's settings such as
    ``required_score`` or ``report``, are ignored: the gateway has its own)."""
    return (word in RULE_KINDS or word in _OTHER_DIRECTIVES or word in ADDRLIST_DIRECTIVES
            or word in RCVDLIST_DIRECTIVES or word in URIHOST_DIRECTIVES or word in DKIMLIST_DIRECTIVES)


_OTHER_DIRECTIVES = frozenset({
    "score", "describe", "tflags", "replace_tag", "replace_pre", "replace_inter", "replace_post", "replace_rules",
    "replace_start", "replace_end", "freemail_domains", "util_rb_tld", "util_rb_2tld", "util_rb_3tld",
    "redirector_pattern", "enlist_addrlist", "ifplugin", "if", "else", "endif", "include", "require_version",
    "adsp_override"})
# the DKIM plugin's adsp_override: an author domain (``*.`` for its subdomains, ``*`` for any)
# and the signing practices to assume for it, as a letter (DKIM.pm: N/U/A/D, 1/2/3 for custom_*)
_ADSP_OVERRIDE = re.compile(r"^@?([*a-z0-9._-]+)(?:\s+(nxdomain|unknown|all|discardable|custom_low|custom_med|custom_high))?\Z",
                            re.I | re.A)
RULE_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_SCORE_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
# A parsed meta expression: ("num", "3"), ("name", "RULE"), ("not", node), ("neg", node) or
# ("op", operator, left, right) with the Perl operator (``&&``, ``||``, ``+``, ``>``, ...).
MetaNode = tuple[Any, ...]


class RuleFileError(ValueError):
    pass


def config_lines(text: str) -> list[str]:
    """A configuration file's lines as SpamAssassin reads them: split at LF only (a CR before
    it dropped). ``str.splitlines`` also splits at form feeds, U+0085, U+2028 and other
    separators, which may stand inside a rule's pattern."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


@dataclass(slots=True)
class Rule:
    name: str
    kind: str
    source: str  # file:line
    text: str  # the definition after the name
    pattern: PerlPattern | None = None
    negate: bool = False
    target: str = ""  # header spec (``From:addr``, ``ALL``, ``exists:X``)
    if_unset: str | None = None
    eval_fn: str = ""
    eval_args: tuple[str | float, ...] = ()
    meta: str = ""
    meta_tree: MetaNode | None = None
    deps: tuple[str, ...] = ()
    tflags: frozenset[str] = frozenset()
    maxhits: int = 1
    score: float = 1.0
    describe: str = ""
    # SpamAssassin 4's capture rules: the tags a template rule's expression reads (``%{NAME}``,
    # in order of appearance), and its expression's body, modifiers and line mode with each
    # template marked (TEMPLATE_MARK); ``pattern`` is then the expression with each template
    # read as any text, a superset the prefilters and Hyperscan may use
    templates: tuple[str, ...] = ()
    template: tuple[str, str, bool] | None = None


@dataclass(slots=True)
class RuleSet:
    rules: dict[str, Rule] = field(default_factory=dict)
    unsupported: dict[str, str] = field(default_factory=dict)  # name -> reason
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why not run (net, score 0)
    freemail: set[str] = field(default_factory=set)
    tlds: set[str] = field(default_factory=set)  # util_rb_tld (A-labels): the URI list's known TLDs
    tld2: set[str] = field(default_factory=set)  # util_rb_2tld (co.uk): RegistryBoundaries' 2nd-level suffixes
    tld3: set[str] = field(default_factory=set)  # util_rb_3tld (demon.co.uk)
    redirectors: list[PerlPattern] = field(default_factory=list)  # redirector_pattern
    # WLBLEval's lists (wlbleval.py): address lists by name (enlist_addrlist, welcomelist_from,
    # blocklist_to, ...: address pattern -> its glob), lists with relays (welcomelist_from_rcvd,
    # def_welcomelist_from_rcvd: address pattern -> domains or [IPs]) and URI host lists
    # (enlist_uri_host: host -> listed, False for a !host exception)
    addrlists: dict[str, dict[str, str]] = field(default_factory=dict)
    # (and the DKIM welcome-lists: address glob -> signing domains, "" for the author's own)
    rcvdlists: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    uri_host_lists: dict[str, dict[str, bool]] = field(default_factory=dict)
    adsp_override: dict[str, str] = field(default_factory=dict)  # author domain -> N/U/A/D/1/2/3
    files: list[str] = field(default_factory=list)
    # the entries of ``unsupported`` that are a line no rule owns (an unreadable score line or
    # ``if`` condition, a bad rule name, ``include``): key -> where (``file:line``)
    line_errors: dict[str, str] = field(default_factory=dict)
    # metas that read rules no file defines (a typo, a plugin's rule not loaded): meta -> those
    # names. They run with each such name read as 0, as SpamAssassin reads them.
    undefined_deps: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # rules whose score a local file set last (load_rules' ``local_from``): the administrator's
    # own choice, which wins over the fitted scores (scoring layer)
    local_scores: set[str] = field(default_factory=set)
    # where each rule is defined (``file:line``): `rules check` names it beside an unsupported rule
    sources: dict[str, str] = field(default_factory=dict)
    # rules a score line sets to 0: disabled, as SpamAssassin disables them (its Conf: "a score
    # of 0 disables the test"), also for the metas that read them, which read them as 0
    zero_scored: set[str] = field(default_factory=set)
    # lines of the administrator's own rule files (not the default set's) whose directive the
    # parser does not read, file:line -> the word: a typo (``bdoy``, ``scroe``) or one of
    # SpamAssassin's settings that the gateway has elsewhere (``required_score``), which
    # `rules check` lists: else such a line was dropped without a word
    ignored: dict[str, str] = field(default_factory=dict)
    # lines of the administrator's own files that set a score, a description or tflags for a
    # name no rule file defines (a typo: ``score LOCAL_CHEAP_PILS 8`` for LOCAL_CHEAP_PILLS, whose
    # rule then runs at its default score), file:line -> "score NAME"; SpamAssassin's --lint
    # says "score set for non-existent rule"
    unknown_names: dict[str, str] = field(default_factory=dict)


class _Parser:
    def __init__(self, score_set: int) -> None:
        self.score_set = score_set
        self.defs: dict[str, tuple[str, str, str]] = {}  # name -> (kind, text, source)
        self.scores: dict[str, float] = {}
        self.describes: dict[str, str] = {}
        self.tflags: dict[str, str] = {}
        self.tags: dict[str, dict[str, str]] = {"tag": {}, "pre": {}, "inter": {}, "post": {}}
        self.replace_rules: set[str] = set()
        self.start, self.end = "<", ">"
        self.freemail: set[str] = set()
        self.tlds: set[str] = set()
        self.tld2: set[str] = set()
        self.tld3: set[str] = set()
        self.redirectors: list[PerlPattern] = []
        self.addrlists: dict[str, dict[str, str]] = {}
        self.rcvdlists: dict[str, dict[str, list[str]]] = {}
        self.uri_host_lists: dict[str, dict[str, bool]] = {}
        self.adsp_override: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.line_errors: dict[str, str] = {}  # key of errors -> file:line
        self.local = False  # the files fed now are local ones (their score lines are recorded)
        self.local_scores: set[str] = set()
        self.ignored: dict[str, str] = {}  # own files' lines of directives not read (RuleSet.ignored)
        self.own_file = False  # the file fed now is the administrator's, not the default set's
        self.named: dict[str, tuple[str, str]] = {}  # own files: file:line -> (directive, rule name)

    def feed(self, path: Path) -> None:
        stack: list[tuple[bool, int]] = []  # each open if/ifplugin: whether its block is read, its line
        unread: dict[int, str] = {}  # line of an ifplugin of a plugin not loaded -> its text
        try:
            text = path.read_text("utf-8", "surrogateescape")
        except OSError as e:
            raise RuleFileError(f"{path}: {e}") from None
        text = text.removeprefix("\ufeff")  # (a byte order mark: its first line read as no directive)
        for n, raw in enumerate(config_lines(text), 1):
            line = _strip_comment(raw).strip()
            if not line:
                continue
            word, _, rest = line.partition(" ") if " " in line.split("\t")[0] else line.partition("\t")
            word = word.strip().lower()  # (SpamAssassin's Conf::Parser: "Score" and "BODY" are read)
            rest = rest.strip()
            if word == "ifplugin":
                stack.append((rest.strip() in LOADED_PLUGINS, n))
                if rest.strip() not in LOADED_PLUGINS:
                    unread[n] = f"ifplugin {rest.strip()[:80]}"
                continue
            if word == "if":
                cond = _eval_condition(rest)
                if cond is None:  # its block is skipped, and said so
                    self.line_error(f"if {rest[:60]}", f"{path.name}:{n}",
                                    f"cannot read the condition {rest[:60]!r}; its block is skipped")
                stack.append((bool(cond), n))
                continue
            if word == "else":
                if stack:
                    stack[-1] = (not stack[-1][0], stack[-1][1])
                continue
            if word == "endif":
                if stack:
                    stack.pop()
                continue
            if not all(read for read, _ in stack):
                # the administrator's own rule in a block of a plugin the gateway does not load
                # (a DKIM or SPF plugin's block, a local.cf habit): not read, and said so, not
                # dropped without a word
                why = next((unread[at] for read, at in stack if not read and at in unread), None)
                if self.own_file and why is not None and word in RULE_KINDS:
                    name = rest.split()[0][:60] if rest.split() else ""
                    self.line_error(f"{word} {name}", f"{path.name}:{n}",
                                    f"inside '{why}' (line {stack[-1][1]}), {PLUGIN_NOT_LOADED}: "
                                    "not read (take the rule out of the block to run it)")
                continue
            if word == "require_version":
                # SpamAssassin reads the rest of the file only with the version it names (Debian's
                # files say @@VERSION@@: the version reading them); another one is skipped, and said
                try:
                    ok = rest == "@@VERSION@@" or float(rest) == SA_VERSION
                except ValueError:
                    ok = False
                if not ok:
                    self.line_error(f"require_version {rest[:20]}", f"{path.name}:{n}",
                                    f"the file requires SpamAssassin {rest[:20]} (the rules here are those of "
                                    f"{SA_VERSION:.6f}); the rest of the file is skipped")
                    break
                continue
            if self.own_file and not known_directive(word):
                self.ignored[f"{path.name}:{n}"] = word[:40]
            self.directive(word, rest, f"{path.name}:{n}")
        for _, n in stack:  # (SpamAssassin's lint says so too)
            self.line_error(f"if at line {n}", f"{path.name}:{n}",
                            "an if/ifplugin block that no endif closes"
                            + ("; the rest of the file is skipped" if not all(read for read, _ in stack) else ""))

    def line_error(self, what: str, source: str, message: str) -> None:
        key = f"{what} ({source})"  # one entry a line
        self.errors[key] = message
        self.line_errors[key] = source

    def directive(self, word: str, rest: str, source: str) -> None:
        if self.own_file and word in ("score", "describe", "tflags") and rest.split():
            self.named[source] = (word, rest.split()[0][:60])
        if word in RULE_KINDS:
            name, _, body = rest.partition(" ") if " " in rest.split("\t")[0] else rest.partition("\t")
            name = name.strip()
            if not RULE_NAME.match(name):
                self.line_error(f"{word} {name[:60]}", source,
                                f"{name[:60]!r} is not a rule name (letters, digits and _); the rule is not read")
                return
            self.defs[name] = (word, body.strip(), source)
        elif word == "score":
            parts = rest.split()
            # SpamAssassin's numbers (Conf's score): -?digits[.digits] (1e1, +2, 1_5, nan and inf
            # refused); one in parentheses makes them all relative to the score set before
            paren = [p.startswith("(") and p.endswith(")") for p in parts[1:]]
            relative = any(paren)
            values = [p[1:-1] if inside else p for p, inside in zip(parts[1:], paren, strict=True)]
            floats = [float(v) for v in values] if all(_SCORE_NUMBER.fullmatch(v) for v in values) else []
            if not all(math.isfinite(f) for f in floats):
                floats = []  # (a number of 400 digits is inf to float(): a total that meets every threshold)
            if len(parts) < 2 or len(floats) not in (1, 4):  # SpamAssassin refuses these too
                self.line_error(f"score {' '.join(parts[:1])[:60]}", source,
                                f"cannot read the score line {rest[:80]!r} (one number, or four for the score sets); "
                                "the line is not read")
            elif relative and parts[0] not in self.scores:
                self.line_error(f"score {parts[0][:60]}", source,
                                f"a relative score {rest[:80]!r} for a rule with no score set before it; "
                                "the line is not read")
            else:
                value = floats[self.score_set] if len(floats) == 4 else floats[0]
                self.scores[parts[0]] = self.scores[parts[0]] + value if relative else value
                if self.local:
                    self.local_scores.add(parts[0])
                else:
                    self.local_scores.discard(parts[0])
        elif word == "include":
            # (SpamAssassin reads the file named; the engine reads only the rule directories' files)
            self.line_error(f"include {rest[:60]}", source,
                            "include is not supported; put the file in a rule directory")
        elif word == "describe":
            parts = rest.split(None, 1)
            if parts:  # ("\#" is a "#" that starts no comment: Conf::Parser unescapes it)
                self.describes[parts[0]] = parts[1].strip().replace("\\#", "#") if len(parts) > 1 else ""
        elif word == "tflags":
            parts = rest.split(None, 1)
            if parts:
                self.tflags[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
        elif word in ("replace_tag", "replace_pre", "replace_inter", "replace_post"):
            name, _, v = rest.partition(" ") if " " in rest.split("\t")[0] else rest.partition("\t")
            self.tags[word[8:]][name.strip()] = v.strip()
        elif word == "replace_rules":
            self.replace_rules.update(rest.split())
        elif word == "replace_start":
            self.start = rest.strip()
        elif word == "replace_end":
            self.end = rest.strip()
        elif word == "freemail_domains":
            self.freemail.update(d.lower() for d in rest.split())
        elif word == "util_rb_tld":
            self.tlds.update(idn_to_ascii(t) for t in rest.split() if "." not in t)
        elif word == "util_rb_2tld":
            self.tld2.update(idn_to_ascii(t) for t in rest.split() if t.count(".") == 1)
        elif word == "util_rb_3tld":
            self.tld3.update(idn_to_ascii(t) for t in rest.split() if t.count(".") == 2)
        elif word == "redirector_pattern":
            try:
                pat, tail = parse_perl_regex(rest.strip())
            except PatternError as e:
                self.errors[f"redirector_pattern {rest.strip()[:60]}"] = str(e)
            else:
                if not tail:
                    self.redirectors.append(pat)
        elif word in ADDRLIST_DIRECTIVES:
            self.addrlist(ADDRLIST_DIRECTIVES[word], rest)
        elif word == "enlist_addrlist":
            m = _LISTNAME.match(rest)
            if m:
                self.addrlist(("add", (m.group(1),)), m.group(2))
        elif word in DKIMLIST_DIRECTIVES:
            parts = rest.split()
            if 1 <= len(parts) <= 2:  # (Conf's /^(\S+)(?:\s+(\S+))?$/; add_to_addrlist_dkim)
                addr, sdid = parts[0].lower(), parts[1].lower() if len(parts) == 2 else ""
                if DKIMLIST_DIRECTIVES[word] == "remove":  # (remove_from_addrlist_dkim, from both lists)
                    for name in ("welcomelist_from_dkim", "def_welcomelist_from_dkim"):
                        lst = self.rcvdlists.get(name, {})
                        if addr in lst:
                            lst[addr] = [d for d in lst[addr] if d != sdid]
                            if not lst[addr]:
                                del lst[addr]
                else:
                    self.rcvdlists.setdefault(DKIMLIST_DIRECTIVES[word], {}).setdefault(addr, []).append(sdid)
        elif word in RCVDLIST_DIRECTIVES:
            parts = rest.split()
            if RCVDLIST_DIRECTIVES[word] == "remove":
                for name in ("welcomelist_from_rcvd", "def_welcomelist_from_rcvd"):
                    for a in parts:
                        self.rcvdlists.get(name, {}).pop(a.lower(), None)
            elif len(parts) == 2:
                entry = self.rcvdlists.setdefault(RCVDLIST_DIRECTIVES[word], {}).setdefault(parts[0].lower(), [])
                entry.append(parts[1].lower())
        elif word in URIHOST_DIRECTIVES:
            self.uri_hosts(URIHOST_DIRECTIVES[word], rest)
        elif word == "adsp_override":
            m = _ADSP_OVERRIDE.match(rest.strip())
            if m:  # (a value DKIM.pm refuses is ignored, as its INVALID_VALUE)
                practice = (m.group(2) or "discardable").lower()
                self.adsp_override[m.group(1).lower()] = (
                    {"custom_low": "1", "custom_med": "2", "custom_high": "3"}.get(practice) or practice[0].upper())
        # every other directive (required_score, report, lang, loadplugin, ...) has no effect here

    def addrlist(self, how: tuple[str, tuple[str, ...]], rest: str) -> None:
        """Conf::Parser's add_to_addrlist / remove_addrlist_value: lower-cased globs."""
        op, names = how
        for name in names:
            lst = self.addrlists.setdefault(name, {})
            for addr in rest.split():
                if op == "add":
                    lst[addr.lower()] = addr.lower()
                else:
                    lst.pop(addr.lower(), None)

    def uri_hosts(self, how: tuple[str, str | None], rest: str) -> None:
        """enlist_uri_host (LIST) host !host ...; delist_uri_host [(LIST)] host ...; the
        blocklist_uri_host / welcomelist_uri_host shorthands (lists BLOCK and WELCOME)."""
        op, name = how
        m = _LISTNAME.match(rest)
        if m:
            name, rest = m.group(1), m.group(2)
        elif op == "add" and name is None:
            return  # enlist_uri_host needs its list name
        hosts = rest.lower().split()
        if op == "add":
            assert name is not None
            lst = self.uri_host_lists.setdefault(name, {})
            for h in hosts:
                lst[h.removeprefix("!")] = not h.startswith("!")
        else:
            for ln in [name] if name is not None else list(self.uri_host_lists):
                for h in hosts:
                    self.uri_host_lists.get(ln, {}).pop(h.removeprefix("!"), None)

    def replace_tags(self, text: str) -> str:
        s, e = re.escape(self.start), re.escape(self.end)
        pre = inter = post = ""
        for kind in ("pre", "inter", "post"):
            m = re.search(f"{s}{kind} ([A-Za-z0-9_]+){e}", text)
            if m:
                val = self.tags[kind].get(m.group(1), "")
                if kind == "pre":
                    pre = val
                elif kind == "inter":
                    inter = val
                else:
                    post = val
                text = text.replace(m.group(0), "")
        tag_re = re.compile(f"{s}([A-Za-z0-9_]+){e}")

        def expand(t: str, depth: int = 0) -> str:
            if depth > 5:
                return t
            return tag_re.sub(lambda m: m.group(0) if m.group(1) not in self.tags["tag"] else
                              expand(self.tags["tag"][m.group(1)], depth + 1), t)

        # between two adjacent tags goes the inter string; each tag gets pre/post
        parts = re.split(f"({s}[A-Za-z0-9_]+{e})", text)
        out: list[str] = []
        prev_tag = False
        for p in parts:
            m = tag_re.fullmatch(p)
            if m and m.group(1) in self.tags["tag"]:
                if prev_tag and inter:
                    out.append(inter)
                out.append(f"(?:{pre}{expand(self.tags['tag'][m.group(1)])})" + post if post else
                           pre + expand(self.tags["tag"][m.group(1)]))
                prev_tag = True
            elif p:
                out.append(p)
                prev_tag = False
        return "".join(out)


def _strip_comment(line: str) -> str:
    # '#' starts a comment unless escaped ('\#' inside patterns)
    out = []
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            out.append(line[i:i + 2])
            i += 2
            continue
        if c == "#":
            break
        out.append(c)
        i += 1
    return "".join(out)


# (white space allowed inside the call, as Perl allows it: "plugin (Mail::SpamAssassin::Plugin::X)")
_COND_TOKEN = re.compile(r"\s*(\(|\)|&&|\|\||!|>=|<=|==|>|<|[0-9.]+|version|(?:can|plugin|has)\s*\(\s*[A-Za-z0-9_:]+\s*\))")


def _eval_condition(expr: str) -> bool | None:
    """Evaluate ``if`` conditions: ``(version >= 3.004002)``, ``can(X)``, ``plugin(X)``, ``!``;
    None for one that cannot be read (``perl_version``)."""
    py: list[str] = []
    pos = 0
    expr = expr.strip()
    while pos < len(expr):
        m = _COND_TOKEN.match(expr, pos)
        if not m:
            return None
        tok = m.group(1)
        pos = m.end()
        if tok == "version":
            py.append(repr(SA_VERSION))
        elif tok.startswith(("can", "has", "plugin")):
            fn, _, arg = tok[:-1].partition("(")
            arg = arg.strip()
            py.append(repr(arg in LOADED_PLUGINS if fn.strip() == "plugin" else FEATURES.get(arg, False)))
        elif tok == "&&":
            py.append(" and ")
        elif tok == "||":
            py.append(" or ")
        elif tok == "!":
            py.append(" not ")
        else:
            py.append(tok)
    try:
        return bool(eval("".join(py), {"__builtins__": {}}, {}))
    except Exception:  # noqa: BLE001
        return None


_EVAL = re.compile(r"^eval:([A-Za-z_][A-Za-z0-9_]*)\((.*)\)\s*$", re.S)
# SpamAssassin's capture templates (Conf/Parser.pm parse_captures): %{NAME} not after a
# backslash; a tag name is upper case (and may carry arguments, which are not read here)
_TEMPLATE = re.compile(r"(?<!\\)%\{([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*(?:\([^)}]*\))?)\}")
TAG_NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$")  # names a capture may set (PerMsgStatus set_captures)
ANY_TEXT = "(?s:.*?)"  # a template read as any text: the superset expression


def _parse_eval_args(s: str) -> tuple[str | float, ...]:
    out: list[str | float] = []
    for m in re.finditer(r"""\s*(?:'([^']*)'|"([^"]*)"|([^,\s]+))\s*(?:,|$)""", s):
        if m.group(1) is not None:
            out.append(m.group(1))
        elif m.group(2) is not None:
            out.append(m.group(2))
        elif m.group(3):
            v = m.group(3)
            try:
                out.append(float(v))
            except ValueError:
                out.append(v)
    return tuple(out)


META_TOKEN = re.compile(r"\s*(&&|\|\||[!()+\-*/]|>=|<=|==|!=|>|<|\d+(?:\.\d+)?|[A-Za-z_][A-Za-z0-9_]*)")

_PY_OPS = {"&&": "and", "||": "or"}
# Bounds of a meta expression, so that the recursive readers of its tree (meta_source, the
# engine's planners) stay well within Python's recursion limit: its parentheses and ! or -
# nested at most MAX_META_NESTING deep, its tree (a chain of N operators is N deep) at most
# MAX_META_DEPTH. Debian's deepest metas (sums of 120 rules) are 121 deep.
MAX_META_NESTING = 50
MAX_META_DEPTH = 150


def parse_meta(expr: str) -> MetaNode:
    """Parse a meta expression with Perl precedence: ``!`` binds tightest, then ``* /``, ``+ -``,
    ``< > <= >=``, ``== !=``, ``&&``, ``||``."""
    toks: list[str] = []
    pos = 0
    while pos < len(expr):
        if expr[pos:].strip() == "":
            break
        m = META_TOKEN.match(expr, pos)
        if not m:
            raise RuleFileError(f"bad meta expression near {expr[pos:pos + 20]!r}")
        toks.append(m.group(1))
        pos = m.end()
    i = 0
    nesting = 0

    def peek() -> str | None:
        return toks[i] if i < len(toks) else None

    def take() -> str:
        nonlocal i
        if i >= len(toks):
            raise RuleFileError("meta expression ends early")
        i += 1
        return toks[i - 1]

    def primary() -> MetaNode:
        nonlocal nesting
        t = take()
        if t in ("(", "!", "-"):
            nesting += 1
            if nesting > MAX_META_NESTING:
                raise RuleFileError(f"meta expression too deeply nested (more than {MAX_META_NESTING} levels)")
            if t == "(":
                e = or_()
                if take() != ")":
                    raise RuleFileError("unbalanced parentheses in meta")
            else:
                e = ("not" if t == "!" else "neg", primary())
            nesting -= 1
            return e
        if re.match(r"^\d", t):
            return ("num", t)
        if re.match(r"^[A-Za-z_]", t):
            return ("name", t)
        raise RuleFileError(f"unexpected {t!r} in meta")

    def binary(sub: Callable[[], MetaNode], ops: tuple[str, ...]) -> MetaNode:
        left = sub()
        while peek() in ops:
            op = take()
            right = sub()
            if op == "/" and (right[0] != "num" or float(right[1]) == 0):
                # Perl dies on a division by zero where Python raises: only a non-zero number
                # may divide (SpamAssassin's one dividing meta, MIXED_ES, divides by 10)
                raise RuleFileError("division in meta expressions by anything but a non-zero number is not supported")
            left = ("op", op, left, right)
        return left

    def mul() -> MetaNode:
        return binary(primary, ("*", "/"))

    def add() -> MetaNode:
        return binary(mul, ("+", "-"))

    def compared(sub: Callable[[], MetaNode], ops: tuple[str, ...]) -> MetaNode:
        # Perl (5.32 on) chains comparisons: "0 < A + B < 2" is "0 < A + B && A + B < 2", where
        # reading it left to right compares a truth value with 2 (always true). Not supported:
        # listed by `rules check`, never silently otherwise than SpamAssassin
        left = sub()
        if peek() in ops:
            op = take()
            left = ("op", op, left, sub())
            if peek() in ops:
                raise RuleFileError(f"chained comparison ({op} then {peek()}) is not supported: "
                                    "write it with && (0 < X && X < 2)")
        return left

    def rel() -> MetaNode:
        return compared(add, (">", "<", ">=", "<="))

    def eq() -> MetaNode:  # (below < and >, as in Perl)
        return compared(rel, ("==", "!="))

    def and_() -> MetaNode:
        return binary(eq, ("&&",))

    def or_() -> MetaNode:
        return binary(and_, ("||",))

    tree = or_()
    if i != len(toks):
        raise RuleFileError(f"trailing tokens in meta: {' '.join(toks[i:])}")
    if _tree_depth(tree) > MAX_META_DEPTH:
        raise RuleFileError(f"meta expression too deeply nested (a tree of more than {MAX_META_DEPTH} "
                            "levels: split it into sub-metas)")
    return tree


def _tree_depth(node: MetaNode) -> int:
    """A meta tree's depth, walked without recursion (a long chain of operators is deep)."""
    deepest = 0
    stack = [(node, 1)]
    while stack:
        n, d = stack.pop()
        deepest = max(deepest, d)
        if n[0] in ("not", "neg"):
            stack.append((n[1], d + 1))
        elif n[0] == "op":
            stack += [(n[2], d + 1), (n[3], d + 1)]
    return deepest


def meta_names(node: MetaNode) -> tuple[str, ...]:
    """The rule names a meta expression reads, in order of first use."""
    out: dict[str, None] = {}

    def walk(n: MetaNode) -> None:
        if n[0] == "name":
            out[n[1]] = None
        elif n[0] in ("not", "neg"):
            walk(n[1])
        elif n[0] == "op":
            walk(n[2])
            walk(n[3])

    walk(node)
    return tuple(out)


def meta_source(node: MetaNode, ref: Callable[[str], str] = lambda n: f"h.get({n!r},0)") -> str:
    """Python source for a meta expression, evaluated in its written order; ``ref`` renders a
    rule name (default: its hit count in the dict ``h``). Python's ``not`` binds looser than
    comparisons, so ``!`` becomes ``(not x)`` on its operand."""
    kind = node[0]
    if kind == "num":
        return str(node[1])
    if kind == "name":
        return ref(node[1])
    if kind == "not":
        return f"(not {meta_source(node[1], ref)})"
    if kind == "neg":
        return f"(-{meta_source(node[1], ref)})"
    op = _PY_OPS.get(node[1], node[1])
    return f"({meta_source(node[2], ref)} {op} {meta_source(node[3], ref)})"


def compile_meta(expr: str) -> tuple[str, tuple[str, ...]]:
    """Translate a meta expression to Python source over ``h`` (hit counts); returns (source, deps)."""
    tree = parse_meta(expr)
    return meta_source(tree), meta_names(tree)


# tflags of rules whose points autolearn leaves out (SpamAssassin's PerMsgStatus::_get_autolearn_points)
NOT_AUTOLEARNED_TFLAGS = frozenset({"noautolearn", "userconf"})
# ... and of those whose points go to the learner's own check instead (the check_bayes rules)
LEARN_TFLAG = "learn"
AUTOLEARN_HEADER = (1, 0)
AUTOLEARN_BODY = (0, 1)


def _autolearn_type(rule: Rule | None) -> tuple[int, int] | None:
    """A rule's area by its type alone, as SpamAssassin 4.0's PerMsgStatus::_get_autolearn_testtype
    sees it: ``header`` rules (patterns and evals) are header, except the evals named
    ``check_rbl*``/``check_dns*``, which SpamAssassin files as RBL evals (Conf.pm) and counts
    for neither; ``body``, ``rawbody`` and ``uri`` rules are body, and so is ``mimeheader`` (the
    MIMEHeader plugin registers each one as a body eval); ``full`` rules, metas and rules this
    set does not define count for neither."""
    if rule is None:
        return None
    if rule.kind == "header":
        return None if rule.eval_fn.startswith(("check_rbl", "check_dns")) else AUTOLEARN_HEADER
    if rule.kind in ("body", "rawbody", "uri", "mimeheader"):
        return AUTOLEARN_BODY
    return None


def _name_uses(node: MetaNode, out: list[str]) -> list[str]:
    """Every rule name a meta expression reads, once per occurrence (as SpamAssassin's
    meta_dependencies lists them: ``A && B || A && C`` reads A twice)."""
    if node[0] == "name":
        out.append(node[1])
    elif node[0] in ("not", "neg"):
        _name_uses(node[1], out)
    elif node[0] == "op":
        _name_uses(node[2], out)
        _name_uses(node[3], out)
    return out


def autolearn_areas(rules: dict[str, Rule], names: list[str]) -> tuple[dict[str, tuple[int, int]], frozenset[str]]:
    """Where autolearn counts the points of each rule of ``names`` (the scored ones), as
    SpamAssassin 4.0 does (PerMsgStatus::_get_autolearn_points, the header and body minimums of
    Plugin::AutoLearnThreshold): name -> (header weight, body weight), the rule's points split
    in that ratio. Computed once per rule set.

    - ``tflags autolearn_header`` / ``autolearn_body`` put a rule's points there, whatever its
      type (both on one rule: header; SpamAssassin takes the first written);
    - otherwise by type (:func:`_autolearn_type`); a meta's points are split by its direct
      sub-rules, each occurrence counted: 2 header and 1 body sub-rule make (2, 1), two thirds
      of its points header points. Sub-rules that are metas, ``full`` rules or undefined here
      count for neither, and a meta with no header or body sub-rule is left out;
    - rules with tflags ``noautolearn``, ``userconf`` or ``learn`` count nowhere (their points
      do not count toward autolearn at all).

    Also the rules of ``names`` with ``tflags autolearn_force``, which lift the minimums."""
    areas: dict[str, tuple[int, int]] = {}
    force: set[str] = set()
    for name in names:
        r = rules.get(name)
        if r is None or r.tflags & NOT_AUTOLEARNED_TFLAGS or LEARN_TFLAG in r.tflags:
            continue
        if "autolearn_force" in r.tflags:
            force.add(name)
        area: tuple[int, int] | None
        if "autolearn_header" in r.tflags:
            area = AUTOLEARN_HEADER
        elif "autolearn_body" in r.tflags:
            area = AUTOLEARN_BODY
        elif r.kind == "meta" and r.meta_tree is not None:
            head = body = 0
            for dep in _name_uses(r.meta_tree, []):
                t = _autolearn_type(rules.get(dep))
                if t is not None:
                    head += t[0]
                    body += t[1]
            area = (head, body) if head or body else None
        else:
            area = _autolearn_type(r)
        if area is not None:
            areas[name] = area
    return areas, frozenset(force)


class RuleBuildError(RuntimeError):
    """A rule set's first build failed recently (engine.FAILED_RETRY_S); not tried again yet.
    (Here, not in the compiled engine module: mypyc does not build subclasses of exceptions.)"""


def load_rules(paths: list[Path] | None = None, score_set: int = 2, local_from: int | None = None) -> RuleSet:
    """Parse rule files (``*.cf`` of each directory in lexical order, then plain files).

    ``score_set``: SpamAssassin's score sets, 0 = no Bayes, no network; 2 = Bayes, no network
    (our default: the network tests are our own DNSBL/URIBL layers). ``local_from``: the index
    in ``paths`` of the first local directory (the administrator's, after the default set): the
    rules whose score a local file sets last are ``RuleSet.local_scores``.
    """
    from gateway_milter.antispam import re2filter, saeval

    if paths is None:
        paths = default_rule_dirs()
    p = _Parser(score_set)
    rs = RuleSet()
    stock: set[str] = set()  # the stock set's file names (a rule's source names its file)
    local: set[str] = set()
    for i, base in enumerate(paths):
        p.local = local_from is not None and i >= local_from
        files = rule_files(base) if base.is_dir() else [base]
        for f in files:
            is_stock = i < local_from if local_from is not None else _stock_path(f)
            p.own_file = not is_stock
            p.feed(f)
            rs.files.append(str(f))
            (stock if is_stock else local).add(f.name)
    rs.local_scores = p.local_scores
    rs.zero_scored = {n for n, v in p.scores.items() if v == 0}
    rs.ignored = p.ignored
    rs.unknown_names = {where: f"{word} {name}" for where, (word, name) in p.named.items() if name not in p.defs}
    rs.freemail = p.freemail
    rs.tlds, rs.tld2, rs.tld3 = p.tlds, p.tld2, p.tld3
    rs.redirectors = p.redirectors
    rs.addrlists, rs.rcvdlists, rs.uri_host_lists = p.addrlists, p.rcvdlists, p.uri_host_lists
    rs.adsp_override = p.adsp_override
    # a redirector pattern Python cannot read is listed by `rules check` (its URIs lose that variant)
    rs.unsupported.update(p.errors)
    rs.line_errors = p.line_errors
    rs.sources = {name: source for name, (_kind, _text, source) in p.defs.items()}
    for name, (kind, text, source) in p.defs.items():
        rule = Rule(name, kind, source, text)
        flags = p.tflags.get(name, "").split()
        rule.tflags = frozenset(f for f in flags if "=" not in f)
        # maxhits=N bounds the count of a rule with multiple; SpamAssassin ignores it without
        for flag in flags if "multiple" in rule.tflags else []:
            if flag.startswith("maxhits="):
                try:
                    rule.maxhits = int(flag[8:])
                except ValueError:
                    pass
        if "multiple" in rule.tflags and rule.maxhits == 1:
            rule.maxhits = 1000
        default = 0.0 if name.startswith("__") else 0.01 if name.startswith("T_") else 1.0
        if "nice" in rule.tflags:  # (Conf::Parser's fix_tests: a nice rule's default is negative)
            default = -default
        rule.score = p.scores.get(name, default)
        rule.describe = p.describes.get(name, "")
        try:
            _parse_definition(p, rule)
            if rule.templates and rule.template is None:  # exists:%{X} and the like: no expression
                raise RuleFileError("a tag template outside a regular expression is not supported")
        except (PatternError, RuleFileError) as e:
            rs.unsupported[name] = str(e)
            continue
        except RecursionError:  # a last resort: input deeper than the bounds above foresee
            rs.unsupported[name] = "definition too deeply nested"
            continue
        if "net" in rule.tflags and rule.kind != "meta" and rule.eval_fn not in saeval.LAYER_ANSWERED:
            # as SpamAssassin without network tests (score sets 0 and 2): the lookups are not
            # run, and read 0 in the metas, which run (``meta __SPOOFED_FREEMAIL !__NOT_SPOOFED
            # && FREEMAIL_FROM`` carries tflags net and still counts for SPOOFED_FREEMAIL_NO_RDNS);
            # never run, so its eval function need not be ours (the DKIM and SPF plugins' rules:
            # the dkim and spf layers answer them, layers.rules.PLUGIN_RULES)
            rs.skipped[name] = "network test (tflags net): not run here (the dnsbl, uribl, spf and dkim layers check the message)"
            continue
        if rule.eval_fn:
            reason = saeval.unsupported_reason(rule.eval_fn, rule.kind, rule.eval_args)
            if reason:
                rs.unsupported[name] = reason
                continue
        rs.rules[name] = rule
    # a local rule's expression must not run super-linear: Python's re holds the GIL for a
    # whole search, and one backtracking without end stops every thread of the milter
    stock -= local
    for name, rule in list(rs.rules.items()):
        if rule.pattern is not None and rule.source.rpartition(":")[0] not in stock:
            got = re2filter.linear_pattern(rule.pattern, rule.maxhits > 1)
            if isinstance(got, str) or (got is not None and (rule.templates or capture_names(rule))):
                rs.unsupported[name] = got if isinstance(got, str) else re2filter.SUPER_LINEAR
                del rs.rules[name]
            elif got is not None:
                rule.pattern = got
    # a template rule reads the tags capture rules set: those are what it depends on (they run
    # first, as SpamAssassin runs them first); a tag no rule here captures is never set
    setters: dict[str, list[str]] = {}
    for name, rule in rs.rules.items():
        for tag in capture_names(rule):
            setters.setdefault(tag, []).append(name)
    for name, rule in list(rs.rules.items()):
        if rule.templates:
            missing = [t for t in rule.templates if t not in setters]
            if missing:
                rs.unsupported[name] = f"template %{{{missing[0]}}}: no rule here captures that tag"
                del rs.rules[name]
                continue
            rule.deps = tuple(dict.fromkeys(n for t in rule.templates for n in setters[t]))
    # metas depending on unsupported rules are unsupported themselves (transitively), and so
    # are template rules whose capture rules are
    changed = True
    while changed:
        changed = False
        for name, rule in list(rs.rules.items()):
            if rule.kind != "meta" and not rule.templates:
                continue
            bad = [d for d in rule.deps if d in rs.unsupported]
            if bad:
                rs.unsupported[name] = f"depends on unsupported {', '.join(bad[:3])}"
                del rs.rules[name]
                changed = True
    for name, rule in rs.rules.items():
        if rule.kind == "meta":
            undefined = tuple(d for d in rule.deps if d not in p.defs)
            if undefined:
                rs.undefined_deps[name] = undefined
    return rs


def _stock_path(f: Path) -> bool:
    """A file of Debian's set or of sa-update's (default_rule_dirs)."""
    try:
        return f.resolve().is_relative_to(PACKAGE_DIR) or f.resolve().is_relative_to(UPDATES_DIR.parent.parent)
    except OSError:
        return False


def capture_names(rule: Rule) -> list[str]:
    """The tags a rule's matches set: its expression's named groups with a tag's name (a
    negated header rule's never match)."""
    if rule.pattern is None or rule.eval_fn or rule.negate or rule.templates:
        return []
    return [n for n in rule.pattern.compiled.groupindex if TAG_NAME.match(n)]


TEMPLATE_MARK = "\x00{}\x00"  # a template's place in a stored expression body (by index)


def fill_templates(template: tuple[str, str, bool], values: list[tuple[str, ...]]) -> PerlPattern:
    """A template rule's expression for this message: each ``%{NAME}`` the alternation of the
    tag's values, each quoted as Perl's quotemeta quotes (SpamAssassin's capture_rules_replace)."""
    body, mods, lines = template
    for i, vals in enumerate(values):
        alt = "(?:" + "|".join(re.sub(r"([^A-Za-z0-9_\x80-\xff])", r"\\\1", v) for v in vals) + ")"
        body = body.replace(TEMPLATE_MARK.format(i), alt)
    return translate(body, mods, lines)


def _mark_templates(rule: Rule, text: str) -> str:
    names: list[str] = []

    def mark(m: re.Match[str]) -> str:
        if "(" in m.group(1):
            raise RuleFileError(f"template %{{{m.group(1)}}}: tags with arguments are not supported")
        names.append(m.group(1))
        return TEMPLATE_MARK.format(len(names) - 1)
    marked = _TEMPLATE.sub(mark, text)
    rule.templates = tuple(names)
    return marked


def _parse_definition(p: _Parser, rule: Rule) -> None:
    text = rule.text
    if rule.name in p.replace_rules:
        text = p.replace_tags(text)
    marked = ""
    if "%{" in text and rule.kind != "meta" and not _EVAL.match(text):
        marked = _mark_templates(rule, text)
        if rule.templates:  # parsed below with each template read as any text
            text = re.sub("\x00\\d+\x00", lambda _m: ANY_TEXT, marked)
    if rule.kind == "meta":
        rule.meta_tree = parse_meta(text)
        rule.meta, rule.deps = meta_source(rule.meta_tree), meta_names(rule.meta_tree)
        return
    m = _EVAL.match(text)
    if rule.kind in ("header", "mimeheader") and not m:
        hm = re.match(r"^(\S+)\s*(=~|!~)\s*(.*)$", text, re.S)
        if not hm:
            if text.startswith("exists:"):
                if rule.kind != "header":  # the engine tests a header's presence for header rules only
                    raise RuleFileError(f"exists: is only supported in header rules, not {rule.kind}")
                rule.target = text
                return
            raise RuleFileError(f"cannot parse header rule {text[:60]!r}")
        rule.target = hm.group(1)
        if rule.kind == "header":
            unknown = [x for x in rule.target.split(":")[1:] if x not in HEADER_MODIFIERS]
            if unknown:  # :host, :domain, :ip, :revip: not read here (never half-applied)
                raise RuleFileError(f"header modifier :{unknown[0]} is not supported")
        rule.negate = hm.group(2) == "!~"
        rest = hm.group(3)
        # a rule's pattern is bytes to SpamAssassin: the texts it runs on are too (engine.py)
        rule.pattern, tail = parse_perl_regex(octets(rest))
        if rule.templates:
            mhm = re.match(r"^(\S+)\s*(=~|!~)\s*(.*)$", marked, re.S)
            assert mhm is not None  # the same text but for the templates
            body, mods, _rest = split_delimited(octets(mhm.group(3)))
            rule.template = (body, mods, False)
        um = re.match(r"^\[if-unset:\s*(.*?)\]$", tail)
        if um:
            rule.if_unset = um.group(1)
        elif tail:
            raise RuleFileError(f"trailing text {tail[:40]!r}")
        return
    if m:
        rule.eval_fn = m.group(1)
        rule.eval_args = _parse_eval_args(m.group(2))
        return
    lines = rule.kind in ("body", "rawbody", "uri")
    rule.pattern, tail = parse_perl_regex(octets(text), lines=lines)
    if tail:
        raise RuleFileError(f"trailing text {tail[:40]!r}")
    if rule.templates:
        body, mods, _rest = split_delimited(octets(marked))
        rule.template = (body, mods, lines)


__all__ = ["Rule", "RuleSet", "load_rules", "compile_meta", "parse_meta", "meta_source", "split_delimited", "RuleFileError"]
