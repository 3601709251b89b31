"""The Hyperscan first pass (hsmatch.py): every match of a rule's Python expression is a
Hyperscan candidate, so the engine's hits with it equal the reference path's; the build is
cached, watched and survives bad input."""

from __future__ import annotations

import gc
import os
import re
import time
import warnings
from pathlib import Path

import pytest

from gateway_milter.antispam import hsmatch
from gateway_milter.antispam.engine import RuleEngine, _atleast, engine_for
from gateway_milter.antispam.perlre import octets, parse_perl_regex
from gateway_milter.antispam.sarules import load_rules
from gateway_milter.antispam.saview import message_view
from tests.unit.antispam.helpers import make_ctx, msg, write_rules
from tests.unit.antispam.test_rules_lazy import MESSAGES, RULES, corpus_sample, debian_engine_or_skip, same

needs_hs = pytest.mark.skipif(not hsmatch.available(), reason="the hyperscan package is not installed "
                              "(wheels exist for x86-64 only; the engine then keeps its Python prefilters)")


@needs_hs
@pytest.mark.parametrize("perl,expected", [
    # Python's \Z is PCRE's \z; in a line-wise text (body) Perl's \z and \Z end each line
    (r"/foo\z/", r"foo(?:(?<=\n)|\z)"),
    (r"/foo\Z/", r"foo(?:(?=\n)|(?<=\n)|\z)"),
    (r"/a{,5}b/", r"a{0,5}b"),  # Python reads {,n} as {0,n}, PCRE literally
    (r"/a{,}b/", r"a{0,}b"),
    (r"/a{x}b{}/", r"a{x}b{}"),  # not quantifiers in either
    (r"/<[^>]{1,1000}x/", r"<[^>]{1,}x"),  # wide bounded repeats are widened (a superset)
    (r"/a{2,9}/", r"a{2,9}"),
    (r"/[{]{1,99}/", r"[{]{1,}"),  # a brace in a class is a literal
    (r"/caf\x{e9} \x{2019}/", r"caf\xe9 \x{2019}"),
])
def test_expressions_translate_for_hyperscan(perl: str, expected: str) -> None:
    pat, _ = parse_perl_regex(perl, lines=True)
    hx = hsmatch.hs_expression(pat.source, pat.flags)
    assert hx is not None and hx[0] == expected


CASES = [  # (perl pattern, texts): Python's matches must all be candidates
    (r"/v[_\W]{0,3}i[_\W]{0,3}a[_\W]{0,3}g/i", ["V-I_A.G.ra", "vi agra", "nothing"]),
    (r"/(?<!\w)free(?!dom)/i", ["FREE money", "freedom", "carefree"]),  # look-around: prefilter mode
    (r"/(\w)\1\1/", ["aaa", "abc", "x111"]),  # back-reference: prefilter mode
    (r"/^Subject: .{0,40}\$\d+$/m", ["x\nSubject: win $100\ny", "Subject: $5 now"]),
    (r"/<[^>]{1,1000}onMouseOver=[^>]{1,1000}window\.status=/i", ["<a onmouseover=\"window.status='x'\">"]),
    (r"/caf\x{e9}/i", ["Caf\u00e9 au lait", "CAF\u00c9", "cafe"]),
    (r"/\bunsubscribe\b/", ["to unsubscribe, reply", "unsubscribed"]),
    (r"/end of text\z/", ["this is the end of text", "end of text\n"]),
    (r"/^\s*$/", ["", "\n\n", "x"]),
    # octet strings, as the engine's texts are (an "é" is its two UTF-8 octets): a byte is a
    # character to both sides, classes and counted repeats alike
    (r"/caf\xc3\xa9/", [octets("caf\u00e9"), "cafe"]),
    (r"/^caf.{2}$/m", [octets("caf\u00e9"), "cafe!"]),
    (r"/caf[^e]{2}\b/", [octets("caf\u00e9 au lait"), "cafes"]),
    # __HAS_HREF and __HAS_IMG_SRC_DATA in one database: compiled for bytes instead of UTF-8,
    # Hyperscan 5.4 misses the first where [^>] takes the newline of an empty line
    (r"/^[^>].*?<a href=/im", ["\t<img src='data><img src='data<\n\n<A HREF=", "a\n\n<a href=x"]),
    (r"/^[^>].*?<img src=['\"]data/im", ["x\n\n<img src='data", "<A HREF=<img src='data"]),
]


@pytest.fixture(scope="module")
def matcher(tmp_path_factory: pytest.TempPathFactory) -> hsmatch.BodyMatcher:
    entries = []
    for i, (perl, _texts) in enumerate(CASES):
        pat, _ = parse_perl_regex(perl, lines=True)
        hx = hsmatch.hs_expression(pat.source, pat.flags)
        assert hx is not None
        entries.append(hsmatch.Entry(f"R{i}", "body", *hx))
    out = tmp_path_factory.mktemp("hs") / "db"
    assert hsmatch.build(entries, out)
    m = hsmatch.BodyMatcher.load(out)
    assert m is not None
    return m


@needs_hs
@pytest.mark.parametrize("perl,expected", [
    (r"/(?:$|\W)(?=u)x/", r"(?:(?:)|\W)(?=u)x"),
    (r"/a\$b$/", r"a\$b(?:)"),  # an escaped dollar is a literal
    (r"/[$^]x[^]$]$/", r"[$^]x[^\]$](?:)"),  # in a class too, also after '[^]'
])
def test_loose_expressions_drop_only_the_dollar_anchors(perl: str, expected: str) -> None:
    pat, _ = parse_perl_regex(perl, lines=True)
    hx = hsmatch.hs_expression(pat.source, pat.flags, anchors=False)
    assert hx is not None and hx[0] == expected
    py, loose = re.compile(pat.source, re.M), re.compile(expected, re.M)
    for text in ("x", "a$b", "$x]", "ux", "\nux\n", " ux", "a$b\n"):
        assert loose.search(text) or not py.search(text)  # a superset
    entry = hsmatch.entries_for([("R", "body", pat.source, pat.flags, False)])[0]
    assert entry.loose == expected


@needs_hs
def test_every_python_match_is_a_candidate(matcher: hsmatch.BodyMatcher) -> None:
    assert len(matcher.covered["body"]) == len(CASES)  # all compiled, exactly or as a prefilter
    assert matcher.modes["R1"] == "prefilter" and matcher.modes["R2"] == "prefilter"
    assert matcher.modes["R0"] == "exact"
    for i, (perl, texts) in enumerate(CASES):
        pat, _ = parse_perl_regex(perl, lines=True)
        for text in texts:
            cands = matcher.candidates("body", text)
            assert cands is not None
            if pat.compiled.search(text):
                assert f"R{i}" in cands, (perl, text)
    # and it does rule things out: the whole point
    assert "R0" not in (matcher.candidates("body", "nothing") or set())
    assert "R6" not in (matcher.candidates("body", "unsubscribed") or set())
    assert "R9" not in (matcher.candidates("body", "cafe") or set())
    assert "R10" not in (matcher.candidates("body", octets("caf\u00e9s")) or set())  # 3 octets after "caf"


@needs_hs
def test_text_that_is_not_utf8_goes_the_python_way(matcher: hsmatch.BodyMatcher) -> None:
    assert matcher.candidates("body", "lone \udce9 surrogate") is None


@needs_hs
def test_a_pattern_too_slow_to_compile_is_left_to_python(tmp_path: Path) -> None:
    # two 1000-wide bounded repeats of a UTF-8 class, not widened: minutes to compile (the
    # Debian rule HIDE_WIN_STATUS as written), far over a half-second budget
    UTF8 = hsmatch.hyperscan.HS_FLAG_UTF8
    slow = r"<[^>]{1,1000}onMouseOver=[^>]{1,1000}window\.status="
    entries = [hsmatch.Entry("FAST", "body", "hello", 0), hsmatch.Entry("SLOW", "body", slow, UTF8),
               hsmatch.Entry("BAD", "body", "(", 0), hsmatch.Entry("AFTER", "body", "world", 0)]
    out = tmp_path / "db"
    t0 = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        assert hsmatch.build(entries, out, pattern_budget_s=0.5)
        gc.collect()
    assert time.monotonic() - t0 < 60
    # the restarted child's pipe is closed, not left to the garbage collector
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], [str(w.message) for w in caught]
    m = hsmatch.BodyMatcher.load(out)
    assert m is not None
    assert {"FAST", "AFTER"} <= m.covered["body"] and "SLOW" not in m.covered["body"]
    assert "BAD" not in m.covered["body"]  # does not compile in either mode
    assert m.candidates("body", "hello world") == {"FAST", "AFTER"}


@needs_hs
def test_a_damaged_cache_file_is_ignored(tmp_path: Path) -> None:
    bad = tmp_path / "db"
    bad.write_bytes(b'{"format": 1, "modes": {}, "dbs": {"body": [[999999, ["X"]]]}}\n\x00\x01')
    assert hsmatch.BodyMatcher.load(bad) is None
    bad.write_bytes(b"not json\n")
    assert hsmatch.BodyMatcher.load(bad) is None


def fixture_engine(tmp_path: Path, cache: Path) -> RuleEngine:
    d = write_rules(tmp_path, RULES)
    return RuleEngine(load_rules([d], 2), hs_cache=cache)


@needs_hs
def test_the_engine_with_hyperscan_gives_the_reference_hits(tmp_path: Path) -> None:
    eng = fixture_engine(tmp_path, tmp_path / "cache")
    assert eng.hyperscan(None) is not None
    assert eng.hs_loader is not None and eng.hs_loader.path.exists()
    for m in MESSAGES + [msg("x", "v.i.a.g.r.a and p-i-l-l-s, Name: Address: Phone:")]:
        view = message_view(make_ctx(m))
        same(eng.run(view), eng.run(view, lazy=False))
    # a second engine on the same rules loads the file instead of compiling again
    t0 = time.monotonic()
    again = fixture_engine(tmp_path, tmp_path / "cache")
    assert again.hyperscan(30) is not None
    assert time.monotonic() - t0 < 10
    # rules the scan rules out are settled before any Python runs
    view = message_view(make_ctx(msg("plain", "nothing to see here")))
    res = again.run(view)
    assert not res.hits or all(h.name == "EMPTY_OK" for h in res.hits)


@needs_hs
def test_a_text_hyperscan_cannot_scan_goes_the_python_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    eng = fixture_engine(tmp_path, tmp_path / "cache")
    hm = eng.hyperscan(None)
    assert hm is not None
    real = hm.candidates
    # as for a text with lone surrogates: the body is not scanned, the other texts are
    monkeypatch.setattr(hm, "candidates", lambda kind, text: None if kind == "body" else real(kind, text))
    for m in MESSAGES:
        view = message_view(make_ctx(m))
        same(eng.run(view), eng.run(view, lazy=False))
    res = eng.run(message_view(make_ctx(MESSAGES[0])))
    assert {"FRAUD_ANY", "MONEY_MANY"} <= {h.name for h in res.hits}


@needs_hs
def test_header_rules_on_long_header_texts_are_scanned_and_empty_ones_go_the_python_way(tmp_path: Path) -> None:
    d = write_rules(tmp_path, "header ALL_EMPTY ALL =~ /^$/\nscore ALL_EMPTY 0.1\n"
                              "header ALL_SUBJ ALL =~ /^Subject: hi/m\nscore ALL_SUBJ 0.1\n"
                              "header RCVD_MX Received =~ /from mx\\.relay\\.test/\nscore RCVD_MX 0.1\n"
                              "header NO_UNTRUSTED X-Spam-Relays-Untrusted =~ /^$/\nscore NO_UNTRUSTED 0.1\n"
                              "header SUBJ_HI Subject =~ /hi/\nscore SUBJ_HI 0.1\n")
    eng = RuleEngine(load_rules([d], 2), hs_cache=tmp_path / "cache")
    hm = eng.hyperscan(None)
    assert hm is not None and hm.covered["ALL"] == {"ALL_EMPTY", "ALL_SUBJ"}
    assert hm.covered["Received"] == {"RCVD_MX"} and hm.covered["X-Spam-Relays-Untrusted"] == {"NO_UNTRUSTED"}
    assert "Subject" not in hm.covered  # a short header stays with Python's re
    relayed = message_view(make_ctx(msg("hi", "text", headers="Received: from mx.relay.test (mx.relay.test "
                                                               "[198.51.100.9]) by mx.example.com; "
                                                               "Sat, 28 Nov 2026 10:00:00 +0000\r\n")))
    with_headers = message_view(make_ctx(msg("hi", "text")))
    no_headers = message_view(make_ctx(b"\r\njust a body\r\n"))
    assert no_headers.header("ALL") is None and with_headers.header("X-Spam-Relays-Untrusted") == ""
    for view in (relayed, with_headers, no_headers):
        same(eng.run(view), eng.run(view, lazy=False))
    assert {h.name for h in eng.run(relayed).hits} == {"ALL_SUBJ", "RCVD_MX", "SUBJ_HI"}
    # an empty relay line matches /^$/: the empty text is left to the rule's own expression
    assert {h.name for h in eng.run(with_headers).hits} == {"ALL_SUBJ", "NO_UNTRUSTED", "SUBJ_HI"}
    # no header at all: the rules search their if-unset value "", as on the reference path
    assert {h.name for h in eng.run(no_headers).hits} == {"ALL_EMPTY", "NO_UNTRUSTED"}


@needs_hs
def test_a_header_with_many_rules_is_scanned_once_and_an_absent_one_settles_its_rules(tmp_path: Path) -> None:
    from gateway_milter.antispam.engine import HS_HEADER_MIN_RULES

    rules = ["header SUBJ_EMPTY Subject =~ /^$/", "header SUBJ_UNSET Subject =~ /unset/ [if-unset: unset]",
             "header SUBJ_FREE Subject =~ /\\bfree\\b/i", "header SUBJ_MONEY Subject =~ /\\$\\d+/",
             "header SUBJ_NOT Subject !~ /hello/", "header FROM_X From =~ /x/"]
    assert len(rules) - 2 >= HS_HEADER_MIN_RULES
    d = write_rules(tmp_path, "".join(f"{r}\nscore {r.split()[1]} 0.1\n" for r in rules))
    eng = RuleEngine(load_rules([d], 2), hs_cache=tmp_path / "cache")
    hm = eng.hyperscan(None)
    assert hm is not None
    # the negated rule stays with Python (its value is the opposite of a match), as do the
    # headers with fewer rules
    assert hm.covered["Subject"] == {"SUBJ_EMPTY", "SUBJ_UNSET", "SUBJ_FREE", "SUBJ_MONEY"}
    assert "From" not in hm.covered
    assert eng.unset_hits == {"Subject": (("SUBJ_EMPTY", 1), ("SUBJ_UNSET", 1))}  # (each with its value)
    cases = {b"Subject: FREE for $100\r\nFrom: x@test\r\n\r\nbody\r\n": {"SUBJ_FREE", "SUBJ_MONEY", "SUBJ_NOT", "FROM_X"},
             b"From: y@test\r\n\r\nbody\r\n": {"SUBJ_EMPTY", "SUBJ_UNSET", "SUBJ_NOT"},  # no Subject: if-unset
             b"Subject: hello\r\nSubject: free\r\n\r\nbody\r\n": {"SUBJ_FREE"}}
    for raw, expected in cases.items():
        view = message_view(make_ctx(raw))
        same(eng.run(view), eng.run(view, lazy=False))
        assert {h.name for h in eng.run(view).hits} == expected, raw


@needs_hs
def test_rule_sets_that_differ_only_in_skip_rules_share_one_database(tmp_path: Path) -> None:
    from gateway_milter.antispam.engine import HS_HEADER_MIN_RULES

    rules = ["header SUBJ_EMPTY Subject =~ /^$/", "header SUBJ_UNSET Subject =~ /unset/ [if-unset: unset]",
             "header SUBJ_FREE Subject =~ /\\bfree\\b/i", "header SUBJ_MONEY Subject =~ /\\$\\d+/",
             "body BODY_PILLS /\\bpills\\b/", "body BODY_CASH /cash now/i",
             "rawbody RAW_FONT /<font/i", "uri URI_SHOP /shop\\.example\\.com\\//"]
    d = write_rules(tmp_path, "".join(f"{r}\nscore {r.split()[1]} 0.1\n" for r in rules)
                    + "meta META_PILLS BODY_PILLS && BODY_CASH\nscore META_PILLS 1\n")
    cache = tmp_path / "cache"
    full = RuleEngine(load_rules([d], 2), hs_cache=cache)
    # without two of Subject's rules this set alone would leave Subject to Python's re, and
    # without BODY_CASH its meta is gone
    skip = frozenset({"SUBJ_FREE", "SUBJ_MONEY", "BODY_CASH"})
    subject = {r.split()[1] for r in rules if " Subject " in r}
    assert len(subject - skip) < HS_HEADER_MIN_RULES <= len(subject)
    part = RuleEngine(load_rules([d], 2), skip=skip, hs_cache=cache)
    assert full.hs_loader is not None and part.hs_loader is not None
    assert part.hs_loader.path == full.hs_loader.path  # one file for both
    assert full.hyperscan(None) is not None
    t0 = time.monotonic()
    hm = part.hyperscan(30)  # loaded, not compiled again
    assert hm is not None and time.monotonic() - t0 < 10
    assert hm is full.hyperscan(0)  # and in one process, one copy of the databases
    assert "META_PILLS" not in part.rules and not skip & set(part.rules)
    # every header text it scans has its absent-header values, from the one set
    assert part.unset_hits["Subject"] == (("SUBJ_EMPTY", 1), ("SUBJ_UNSET", 1))
    cases = {b"Subject: FREE pills for $100\r\n\r\ncash now, pills at http://shop.example.com/ <font>\r\n":
             {"BODY_PILLS", "URI_SHOP", "RAW_FONT"},
             b"From: y@test\r\n\r\npills\r\n": {"SUBJ_EMPTY", "SUBJ_UNSET", "BODY_PILLS"},  # no Subject
             b"Subject: \r\n\r\nnothing\r\n": {"SUBJ_EMPTY"},
             b"Subject: hi\r\nContent-Type: text/html\r\n\r\n<font>cash now</font>\r\n": {"RAW_FONT"}}
    for raw, expected in cases.items():
        view = message_view(make_ctx(raw))
        same(part.run(view), part.run(view, lazy=False))
        assert {h.name for h in part.run(view).hits} == expected, raw
        same(full.run(view), full.run(view, lazy=False))
    assert {h.name for h in full.run(message_view(make_ctx(list(cases)[0]))).hits} >= {"SUBJ_FREE", "META_PILLS"}
    # the databases go with the last engine using them
    path = full.hs_loader.path
    assert hsmatch._loaded.get(path) is hm
    del full, part, hm
    gc.collect()
    assert hsmatch._loaded.get(path) is None


def test_without_a_cache_directory_the_engine_keeps_python(tmp_path: Path) -> None:
    eng = RuleEngine(load_rules([write_rules(tmp_path, RULES)], 2), hs_cache=None)
    assert eng.hyperscan(None) is None
    view = message_view(make_ctx(MESSAGES[0]))
    same(eng.run(view), eng.run(view, lazy=False))


@pytest.mark.parametrize("values,need,expected,computed", [
    ([0, 0, 0, 1], 2, False, 3),  # after three zeros two are needed from one: stop
    ([1, 1, 0, 0], 2, True, 2),  # reached: stop
    ([0, 1, 1, 0], 2, True, 3),
    ([0, 0, 0, 0], 0, True, 0),  # "> -1": always true
    ([1, 1, 1, 1], 5, False, 0),  # more than there are: never true
])
def test_atleast_stops_as_soon_as_the_answer_is_known(values: list[int], need: int, expected: bool,
                                                      computed: int) -> None:
    asked: list[str] = []
    names = tuple(f"R{i}" for i in range(len(values)))

    def v(name: str) -> int:
        asked.append(name)
        return values[int(name[1:])]

    assert _atleast(v, names, need) is expected
    assert len(asked) == computed
    assert expected == (sum(values) >= need)


def test_bounded_sums_only_over_rules_worth_zero_or_one(tmp_path: Path) -> None:
    rules = RULES + "\nmeta COUNTED (__MONEY + __WIRE + __URGENT) > 1\nscore COUNTED 0.1\n" \
        "meta BOOLEAN (__WIRE + __URGENT + __PILLS) > 1\nscore BOOLEAN 0.1\n"
    eng = engine_for((str(write_rules(tmp_path, rules)),), 2, include_default=False)
    assert "atleast" in eng.lazy_meta_source(eng.rules["BOOLEAN"].meta_tree)  # type: ignore[arg-type]
    # __MONEY counts up to 5 hits: a plain sum, since "can no longer be reached" would be wrong
    assert "atleast" not in eng.lazy_meta_source(eng.rules["COUNTED"].meta_tree)  # type: ignore[arg-type]
    for m in MESSAGES:
        view = message_view(make_ctx(m))
        same(eng.run(view), eng.run(view, lazy=False))
    view = message_view(make_ctx(msg("x", "$1 $2 $3 wire transfer")))
    assert "COUNTED" in {h.name for h in eng.run(view).hits}


@needs_hs
def test_debian_rules_with_hyperscan_match_the_reference_on_corpus_messages() -> None:
    eng = debian_engine_or_skip()
    # built once per machine (about a minute) into GATEWAY_RULES_CACHE_DIR, then loaded
    hm = eng.hyperscan(float(os.environ.get("BULWARK_HS_BUILD_WAIT_S", "900")))
    assert hm is not None, "the Hyperscan build did not finish"
    assert sum(len(v) for v in hm.covered.values()) > 500
    n = int(os.environ.get("BULWARK_RULE_EQUIVALENCE_N", "60"))
    checked = 0
    for path in corpus_sample(n):
        view = message_view(make_ctx(path.read_bytes()))
        lazy, plain = eng.run(view), eng.run(view, lazy=False)
        assert [(h.name, h.count) for h in lazy.hits] == [(h.name, h.count) for h in plain.hits], path.name
        assert all(plain.values.get(k, 0) == c for k, c in lazy.values.items()), path.name
        checked += 1
    assert checked >= min(n, 20)
    assert re.search(r"rules-hs-[0-9a-f]{32}\.db$", str(eng.hs_loader.path))  # type: ignore[union-attr]


@needs_hs
def test_rules_compile_builds_then_loads_and_reports_coverage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from django.core.management import call_command

    monkeypatch.setenv("GATEWAY_RULES_CACHE_DIR", str(tmp_path / "cache"))
    d = write_rules(tmp_path, RULES + "\nbody LOOK_BACK /(?<!\\w)urgent/i\nscore LOOK_BACK 0.1\n"
                    "body END_INSIDE /(?:$|x)urgent/\nscore END_INSIDE 0.1\n"
                    # (a body rule like it is searched paragraph by paragraph and sees their
                    # ends: Hyperscan gets it without anchors from the start, test_piece_ends)
                    "body END_BODY /(?:$|\\W)(?=u)urgent/\nscore END_BODY 0.1\n"
                    "header ALL_HDR ALL =~ /^Subject:.*urgent/mi\nscore ALL_HDR 0.1\n"
                    "body LONG_ONE /(?:" + "|".join(f"word{i}" for i in range(100)) + ")/\nscore LONG_ONE 0.1\n")
    out = io.StringIO()
    call_command("rules", "compile", "--dir", str(d), "--no-default", stdout=out)
    text = out.getvalue()
    assert "compiling" in text and "built in" in text
    m = re.search(r"(\d+) patterns exact, (\d+) as prefilters, (\d+) as prefilters without their \$ anchors, "
                  r"(\d+) of (\d+) rules left to Python", text)
    assert m is not None and int(m[2]) >= 1 and int(m[3]) == 1
    assert int(m[1]) + int(m[2]) + int(m[3]) + int(m[4]) == int(m[5])
    assert list((tmp_path / "cache").glob("rules-hs-*.db"))
    assert "RE2 first for 1 long expressions on the Python path, 1 of them exact" in text


def test_rules_compile_says_so_when_hyperscan_is_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.management import call_command
    from django.core.management.base import CommandError

    monkeypatch.setenv("GATEWAY_RULES_HYPERSCAN", "0")
    d = write_rules(tmp_path, RULES + "\n# off\n")
    with pytest.raises(CommandError, match="not available"):
        call_command("rules", "compile", "--dir", str(d), "--no-default")


def test_stale_cache_files_are_pruned_and_the_one_in_use_kept(tmp_path: Path) -> None:
    keep, old, fresh = tmp_path / "rules-hs-a.db", tmp_path / "rules-hs-b.db", tmp_path / "rules-hs-c.db"
    for f in (keep, old, fresh):
        f.write_bytes(b"x")
    week_ago = time.time() - 8 * 86400
    os.utime(keep, (week_ago, week_ago))
    os.utime(old, (week_ago, week_ago))
    hsmatch.prune(keep)
    assert keep.exists() and fresh.exists() and not old.exists()
    assert time.time() - keep.stat().st_mtime < 60


@needs_hs
def test_hostile_input_through_hyperscan_stays_in_budget_with_the_reference_hits() -> None:
    from tests.unit.antispam.test_hostile_input import BUDGET_S, CASES

    if not Path("/usr/share/spamassassin/50_scores.cf").exists():
        pytest.skip("spamassassin rules not installed")
    eng = engine_for((), 2, include_default=True)
    assert eng.hyperscan(float(os.environ.get("BULWARK_HS_BUILD_WAIT_S", "900"))) is not None
    for case, make in sorted(CASES.items()):
        view = message_view(make_ctx(make()))
        t0 = time.process_time()
        hits = [(h.name, h.count) for h in eng.run(view).hits]
        took = time.process_time() - t0
        assert took < BUDGET_S / 4, f"{case} took {took:.1f}s CPU"
        assert hits == [(h.name, h.count) for h in eng.run(view, lazy=False).hits], case


@needs_hs
@pytest.mark.parametrize("perl,expected", [
    (r"/foo\z/", r"foo\z"),  # Python's \Z is PCRE's \z
    (r"/foo\Z/", r"foo\Z"),  # Perl's \Z (perlre: a look-ahead) is PCRE's \Z again
])
def test_end_anchors_of_a_whole_text_translate_for_hyperscan(perl: str, expected: str) -> None:
    # a header value or the full message is one string: \z and \Z end the text, not a line
    pat, _ = parse_perl_regex(perl, lines=False)
    hx = hsmatch.hs_expression(pat.source, pat.flags)
    assert hx is not None and hx[0] == expected
