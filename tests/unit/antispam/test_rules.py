"""SpamAssassin rule files: parsing, conditionals, ReplaceTags, metas, evals, unsupported
rules, and the rules layer on small local rule sets (the Debian set is exercised when present)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.antispam.engine import RuleEngine, engine_for
from gateway_milter.antispam.matcher import MultiMatcher, required_factors
from gateway_milter.antispam.perlre import PatternError, octets, parse_perl_regex
from gateway_milter.antispam.sarules import RuleFileError, compile_meta, load_rules
from gateway_milter.antispam.saview import body_lines, message_view
from gateway_milter.layers import get as get_layer
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules

RULES = r"""
header   LOCAL_SUBJ_MONEY  Subject =~ /\bmoney\b/i
describe LOCAL_SUBJ_MONEY  Subject talks about money
score    LOCAL_SUBJ_MONEY  1.5
body     LOCAL_BODY_WIRE   /wire\s+transfer/i
score    LOCAL_BODY_WIRE   2.0 2.1 2.2 2.3
uri      LOCAL_URI_EVIL    /evil\.example/
score    LOCAL_URI_EVIL    3.0
header   __LOCAL_HAS_XM    exists:X-Mailer
header   LOCAL_NO_DATE     Date !~ /./ [if-unset: ]
score    LOCAL_NO_DATE     0.5
meta     LOCAL_COMBO       LOCAL_SUBJ_MONEY && LOCAL_BODY_WIRE && !__LOCAL_HAS_XM
score    LOCAL_COMBO       4.0
body     LOCAL_COUNT       /lottery/i
tflags   LOCAL_COUNT       multiple maxhits=3
score    LOCAL_COUNT       0.1
meta     LOCAL_MANY        LOCAL_COUNT > 2
score    LOCAL_MANY        1.0
ifplugin Mail::SpamAssassin::Plugin::NotARealPlugin
body     LOCAL_SKIPPED     /money/
endif
if (version >= 3.004000)
body     LOCAL_VERSIONED   /versioned/
endif
replace_tag  MN  (?:m|\/\\\/)
replace_rules LOCAL_FUZZY
body     LOCAL_FUZZY       /<MN>oney/
score    LOCAL_FUZZY       0.7
body     LOCAL_UNSUPPORTED eval:no_such_function()
meta     LOCAL_ON_UNSUP    LOCAL_UNSUPPORTED || LOCAL_SUBJ_MONEY
body     LOCAL_BADRE       /(unclosed/
body     LOCAL_LEN         eval:check_body_length('40')
score    LOCAL_LEN         0.3
body     LOCAL_ZERO        /hello/
score    LOCAL_ZERO        0
"""


def engine(tmp_path: Path, text: str = RULES) -> RuleEngine:
    d = write_rules(tmp_path, text)
    return engine_for((str(d),), 2, include_default=False)


def test_it_parses_scores_describe_and_score_sets(tmp_path: Path) -> None:
    rs = load_rules([write_rules(tmp_path, RULES)], score_set=2)
    assert rs.rules["LOCAL_SUBJ_MONEY"].score == 1.5
    assert rs.rules["LOCAL_SUBJ_MONEY"].describe == "Subject talks about money"
    assert rs.rules["LOCAL_BODY_WIRE"].score == 2.2  # the third of four values is set 2
    assert rs.rules["LOCAL_COUNT"].maxhits == 3
    assert "LOCAL_SKIPPED" not in rs.rules and "LOCAL_SKIPPED" not in rs.unsupported
    assert "LOCAL_VERSIONED" in rs.rules


def test_a_rule_without_a_score_line_gets_spamassassins_default(tmp_path: Path) -> None:
    """1 point, 0.01 for a T_ rule, 0 for a sub-rule; a rule flagged ``nice`` the same less than
    zero (Conf::Parser's fix_tests): it was +1, so a list-manager or government-DKIM rule meant to
    lower the score raised it."""
    rs = load_rules([write_rules(tmp_path, r"""
header   LOCAL_PLAIN   Subject =~ /a/
header   T_LOCAL_TRY   Subject =~ /b/
header   __LOCAL_SUB   Subject =~ /c/
header   LOCAL_GOOD    Subject =~ /d/
tflags   LOCAL_GOOD    nice
header   T_LOCAL_GOOD  Subject =~ /e/
tflags   T_LOCAL_GOOD  nice
header   LOCAL_GOOD_SCORED  Subject =~ /f/
tflags   LOCAL_GOOD_SCORED  nice
score    LOCAL_GOOD_SCORED  -0.5
""")], score_set=2)
    got = {n: rs.rules[n].score for n in ("LOCAL_PLAIN", "T_LOCAL_TRY", "__LOCAL_SUB", "LOCAL_GOOD", "T_LOCAL_GOOD",
                                           "LOCAL_GOOD_SCORED")}
    assert got == {"LOCAL_PLAIN": 1.0, "T_LOCAL_TRY": 0.01, "__LOCAL_SUB": 0.0, "LOCAL_GOOD": -1.0, "T_LOCAL_GOOD": -0.01,
                   "LOCAL_GOOD_SCORED": -0.5}


def test_it_lists_unsupported_rules_and_their_dependants(tmp_path: Path) -> None:
    rs = load_rules([write_rules(tmp_path, RULES)])
    assert "no_such_function" in rs.unsupported["LOCAL_UNSUPPORTED"]
    assert "LOCAL_UNSUPPORTED" in rs.unsupported["LOCAL_ON_UNSUP"]  # never half-applied
    assert "LOCAL_BADRE" in rs.unsupported
    assert "LOCAL_ON_UNSUP" not in rs.rules


def test_it_matches_header_body_uri_and_meta_rules(tmp_path: Path) -> None:
    eng = engine(tmp_path)
    ctx = make_ctx(msg("Make MONEY fast", "Send a wire   transfer now to http://evil.example.com/x ok"))
    res = eng.run(message_view(ctx))
    names = {h.name for h in res.hits}
    assert {"LOCAL_SUBJ_MONEY", "LOCAL_BODY_WIRE", "LOCAL_URI_EVIL", "LOCAL_COMBO"} <= names
    assert "LOCAL_NO_DATE" not in names
    assert "LOCAL_ZERO" not in names and "__LOCAL_HAS_XM" not in names
    assert res.score == pytest.approx(sum(h.score for h in res.hits))


def test_it_applies_negated_exists_and_if_unset(tmp_path: Path) -> None:
    eng = engine(tmp_path)
    raw = msg("money", "wire transfer").replace(b"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n", b"X-Mailer: x\r\n")
    names = {h.name for h in eng.run(message_view(make_ctx(raw))).hits}
    assert "LOCAL_NO_DATE" in names  # absent header reads as "" (if-unset)
    assert "LOCAL_COMBO" not in names  # X-Mailer exists: the meta's !__LOCAL_HAS_XM fails


def test_it_counts_multiple_hits_up_to_maxhits(tmp_path: Path) -> None:
    eng = engine(tmp_path)
    res = eng.run(message_view(make_ctx(msg("x", "lottery lottery lottery lottery lottery"))))
    assert res.values["LOCAL_COUNT"] == 3
    assert "LOCAL_MANY" in {h.name for h in res.hits}


def test_it_expands_replace_tags(tmp_path: Path) -> None:
    eng = engine(tmp_path)
    names = {h.name for h in eng.run(message_view(make_ctx(msg("x", r"get \/\/oney here")))).hits}
    assert "LOCAL_FUZZY" in names


def test_it_renders_html_once_and_matches_text_and_links(tmp_path: Path) -> None:
    eng = engine(tmp_path)
    html = ("<html><head><style>p{}</style><title>t</title></head><body><p>Do a <b>wire</b> transfer"
            "</p><a href='hxxp://evil[.]example/p'>click</a><a href='http://evil.example/q'>or</a>"
            "<script>wire transfer</script></body></html>")
    ctx = make_ctx(msg("x", html, ctype="text/html"))
    view = message_view(ctx)
    assert "wire transfer" in view.body and "<b>" not in view.body and "p{}" not in view.body
    assert "http://evil.example/p" in view.uris  # de-obfuscated for Bayes and URIBL
    assert message_view(ctx) is view  # built once per message
    # the uri rules read SpamAssassin's list: HTML links as found (the obfuscated one too)
    assert {"LOCAL_BODY_WIRE", "LOCAL_URI_EVIL"} <= {h.name for h in eng.run(view).hits}
    assert [f.uris for f in view.html_all] == [["hxxp://evil[.]example/p", "http://evil.example/q"]]


def test_it_translates_perl_regex_specifics() -> None:
    p, rest = parse_perl_regex(r"m{^foo\z}i trailing")
    assert rest == "trailing" and p.compiled.search("FOO") and not p.compiled.search("foo\n")
    p, _ = parse_perl_regex(r"/[[:alpha:]]+\x{41}/")
    assert p.compiled.search("abcA")
    with pytest.raises(PatternError):
        parse_perl_regex(r"/x/e")


def test_it_compiles_meta_with_perl_precedence() -> None:
    src, deps = compile_meta("!A && (B || C) && D + E > 1")
    fn = eval(f"lambda h: {src}")
    assert deps == ("A", "B", "C", "D", "E")
    assert fn({"B": 1, "D": 1, "E": 1}) and not fn({"A": 1, "B": 1, "D": 1, "E": 1})
    assert not fn({"B": 1, "D": 1})


def test_a_meta_may_divide_by_a_non_zero_number(tmp_path: Path) -> None:
    src, _deps = compile_meta("(A * 14) / 10 > 2")
    fn = eval(f"lambda h: {src}")
    assert fn({"A": 2}) and not fn({"A": 1})  # 2.8 > 2, 1.4 <= 2: a true division, as Perl's
    for bad in ("A / B > 1", "A / 0 > 1", "A / (B + 1) > 1"):
        with pytest.raises(RuleFileError):
            compile_meta(bad)
    eng = engine(tmp_path, "body __LOT /lottery/\ntflags __LOT multiple maxhits=9\n"
                           "meta LOCAL_DIV (__LOT * 14) / 10 > 4\nscore LOCAL_DIV 1\n"
                           "meta LOCAL_DIV0 __LOT / 0 > 1\nscore LOCAL_DIV0 1\n")
    assert "division" in eng.unsupported["LOCAL_DIV0"]
    for n, hit in ((2, False), (3, True)):  # 2.8 and 4.2 against 4
        view = message_view(make_ctx(msg("x", " ".join(["lottery"] * n))))
        assert ("LOCAL_DIV" in {h.name for h in eng.run(view).hits}) is hit
        assert ("LOCAL_DIV" in {h.name for h in eng.run(view, lazy=False).hits}) is hit


@pytest.mark.parametrize("pattern,text", [
    (r"/wire\s+transfer/i", "WIRE   TRANSFER"), (r"/(?:foo|bar)baz/", "xbarbaz"),
    (r"/v[i1]agra/i", "V1AGRA"), (r"/\bcheap\b.{0,20}pills/", "cheap   blue pills"),
    (r"/a(?=bcd)/", "abcd"), (r"/[Vv]ia/", "Via"),
])
def test_it_never_prefilters_away_a_match(pattern: str, text: str) -> None:
    p, _ = parse_perl_regex(pattern)
    assert p.compiled.search(text)
    assert 0 in MultiMatcher([p]).candidates(text)


def test_it_extracts_selective_factors() -> None:
    p, _ = parse_perl_regex(r"/\bguaranteed\s+(?:income|profit)/i")
    assert required_factors(p) == ("guaranteed",)


def test_it_reports_rule_hits_as_layer_symbols(tmp_path: Path) -> None:
    d = write_rules(tmp_path, RULES)
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(d)], "use_bayes": False}})
    ctx = make_ctx(msg("money talk", "wire transfer"), pol)
    res = ctx.layer("rules")
    assert res.has("LOCAL_SUBJ_MONEY") and res.fact("score") >= 3.5
    assert any(s.layer == "rules" and s.name == "LOCAL_BODY_WIRE" for s in ctx.symbols)
    assert get_layer("rules").fail_mode.value == "tempfail"


def test_it_loads_the_debian_rule_set_when_installed() -> None:
    if not Path("/usr/share/spamassassin/50_scores.cf").exists():
        pytest.skip("spamassassin rules not installed")
    eng = engine_for((), 2, include_default=True)
    assert len(eng.rules) > 1000
    gtube = ("XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X")
    res = eng.run(message_view(make_ctx(msg("test", gtube))))
    assert "GTUBE" in {h.name for h in res.hits} and res.score >= 990


EVAL_RULES = r"""
body  T_HTML_ONLY   eval:check_for_mime_html_only()
score T_HTML_ONLY   1
body  T_QP          eval:check_for_mime('mime_qp_count')
score T_QP          1
body  T_COMMENT     eval:html_text_match('comment', '<!(?!-)')
score T_COMMENT     1
body  T_HTML        eval:html_test('html')
score T_HTML        1
header T_ENV_FROM   eval:check_for_matching_env_and_hdr_from()
score T_ENV_FROM    1
body  T_UNKNOWN_ARG eval:html_test('no_such_test')
header T_ESC        Subject =~ /\e\$B/
score T_ESC         1
"""


def test_it_implements_mime_html_and_header_evals(tmp_path: Path) -> None:
    eng = engine(tmp_path, EVAL_RULES)
    assert "T_UNKNOWN_ARG" in eng.unsupported  # an eval test we do not implement is listed, not false
    raw = (b"From: a@sender.test\r\nSubject: \x1b$B hi\r\nMIME-Version: 1.0\r\nContent-Type: text/html\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\n<!DOCTYPE html><html><body><!x>Hi =3D th=65re</body></html>\r\n")
    ctx = make_ctx(raw, mail_from="a@sender.test")
    names = {h.name for h in eng.run(message_view(ctx)).hits}
    assert {"T_HTML_ONLY", "T_QP", "T_COMMENT", "T_HTML", "T_ENV_FROM", "T_ESC"} <= names
    plain = {h.name for h in eng.run(message_view(make_ctx(msg()))).hits}
    assert not plain & {"T_HTML_ONLY", "T_QP", "T_COMMENT", "T_HTML", "T_ENV_FROM"}


def test_two_blank_senders_match(tmp_path: Path) -> None:
    # HeaderEval's check_for_matching_env_and_hdr_from: "two blank headers match" (a null
    # envelope sender and no From address: 1, as SpamAssassin 4.0.1 reports __ENV_AND_HDR_FROM_MATCH)
    eng = engine(tmp_path, EVAL_RULES)
    bare = b"To: bob@example.com\r\nSubject: hi\r\n\r\nhello\r\n"
    assert "T_ENV_FROM" in {h.name for h in eng.run(message_view(make_ctx(bare, mail_from=""))).hits}
    assert "T_ENV_FROM" not in {h.name for h in eng.run(message_view(make_ctx(bare, mail_from="a@sender.test"))).hits}


def test_it_skips_configured_rules_and_their_metas(tmp_path: Path) -> None:
    d = write_rules(tmp_path, RULES)
    eng = engine_for((str(d),), 2, include_default=False, skip=("LOCAL_BODY_WIRE",))
    assert "LOCAL_BODY_WIRE" in eng.unsupported and "LOCAL_COMBO" in eng.unsupported
    names = {h.name for h in eng.run(message_view(make_ctx(msg("money", "wire transfer")))).hits}
    assert "LOCAL_BODY_WIRE" not in names and "LOCAL_SUBJ_MONEY" in names


def test_network_lookups_are_skipped_but_metas_flagged_net_still_run(tmp_path: Path) -> None:
    # SpamAssassin without network tests skips the lookups (eval rules flagged net) and still
    # evaluates metas flagged net, the lookups reading 0 in them (72_active.cf's
    # __SPOOFED_FREEMAIL, tflags net, feeds SPOOFED_FREEMAIL_NO_RDNS)
    text = r"""
header   T_LOOKUP        Subject =~ /money/
tflags   T_LOOKUP        net
score    T_LOOKUP        1
header   __T_FREE        From =~ /\@free\.example/
meta     __T_SPOOFED     !T_LOOKUP && __T_FREE
tflags   __T_SPOOFED     net
meta     T_SPOOFED_USED  __T_SPOOFED
score    T_SPOOFED_USED  1
"""
    rs = load_rules([write_rules(tmp_path, text)])
    assert "T_LOOKUP" in rs.skipped and "T_LOOKUP" not in rs.rules
    assert "__T_SPOOFED" in rs.rules and "__T_SPOOFED" not in rs.skipped
    eng = engine(tmp_path, text)
    raw = msg("money", "hello").replace(b"alice@sender.test", b"alice@free.example", 1)
    names = {h.name for h in eng.run(message_view(make_ctx(raw))).hits}
    assert names == {"T_SPOOFED_USED"}  # T_LOOKUP never ran: it reads 0 in the meta
    assert not {h.name for h in eng.run(message_view(make_ctx(msg("money", "hello")))).hits}


def test_rawbody_is_the_parts_bytes_with_lf_line_ends(tmp_path: Path) -> None:
    # SpamAssassin (normalize_charset off) matches rawbody against the part's bytes: a UTF-8 é
    # is \xc3\xa9 there; and it is given LF line ends where the milter sees SMTP's CRLF
    rules = ("rawbody LOCAL_UTF8_E /caf\\xc3\\xa9/\nscore LOCAL_UTF8_E 1\n"
             "rawbody LOCAL_EOL /^ends here$/m\nscore LOCAL_EOL 1\n")
    eng = engine(tmp_path, rules)
    raw = msg("x", "Un caf\u00e9 ?\r\nends here\r\nnext line\r\n", ctype="text/plain; charset=utf-8")
    view = message_view(make_ctx(raw))
    assert "\r" not in view.rawbody and "caf\xc3\xa9" in view.rawbody
    assert {"LOCAL_UTF8_E", "LOCAL_EOL"} <= {h.name for h in eng.run(view).hits}
    assert "caf\u00e9" in view.body  # the rendered body stays text


def test_end_of_string_anchors_in_body_rules_end_each_line(tmp_path: Path) -> None:
    # SpamAssassin runs a body rule on each line of the rendered text: \z is the end of a line
    # (after its newline), not of the whole body (TRACKER_ID: /^[a-z0-9]{6,24}...\s*\z/is)
    rules = "body LOCAL_TRACKER /^[a-z0-9]{6,24}[-_a-z0-9]{12,36}[a-z0-9]{6,24}\\s*\\z/is\nscore LOCAL_TRACKER 1\n"
    eng = engine(tmp_path, rules)
    mid = msg("x", "Hello\r\n\r\negfbehkrtejpgtuyveahpeibbraqstvnwa\r\n\r\nBye now")
    assert "LOCAL_TRACKER" in {h.name for h in eng.run(message_view(make_ctx(mid))).hits}
    glued = msg("x", "Hello\r\n\r\negfbehkrtejpgtuyveahpeibbraqstvnwa and more words\r\n\r\nBye")
    assert "LOCAL_TRACKER" not in {h.name for h in eng.run(message_view(make_ctx(glued))).hits}


# SpamAssassin gives body and header rules UTF-8 octets (Message::get_rendered_body_text_array
# ends with utf8::encode) and reads rule files as bytes: its look-alike letters are byte
# sequences (25_replace.cf: [\xd0][\xa0] is the Cyrillic Р). Checked against Mail::SpamAssassin
# 4.0.1: FUZZY_PAYPAL, FUZZY_CLICK_HERE, __HIGHBITS and __4BYTE_UTF8_WORD hit these texts there.
OCTET_RULES = """
body     LOCAL_CYR_P       /Pay[\\xd0][\\xa0]al/
score    LOCAL_CYR_P       1
body     LOCAL_LITERAL     /caf\u00e9 cr\u00e8me/
score    LOCAL_LITERAL     1
body     LOCAL_LATIN1_E    /caf[\\xe9]/
score    LOCAL_LATIN1_E    1
body     LOCAL_4BYTE       /[\\xf0-\\xf4][\\x80-\\xbf]{3}/
score    LOCAL_4BYTE       1
header   LOCAL_SUBJ_CYR    Subject =~ /\\xd0\\xa0ay/
score    LOCAL_SUBJ_CYR    1
body     LOCAL_DOT_COUNT   /^caf.{2} /
score    LOCAL_DOT_COUNT   1
"""


@pytest.mark.parametrize("hyperscan", [False, True])
def test_body_and_header_rules_see_utf8_octets_as_spamassassin_does(tmp_path: Path, hyperscan: bool) -> None:
    if hyperscan:
        from gateway_milter.antispam import hsmatch

        if not hsmatch.available():
            pytest.skip("hyperscan is not installed")
    eng = RuleEngine(load_rules([write_rules(tmp_path, OCTET_RULES)], 2), hs_cache=tmp_path / "hs" if hyperscan else None)
    if hyperscan:
        assert eng.hyperscan(None) is not None
    body = "caf\u00e9 cr\u00e8me\r\n\r\nPay\u0420al \U0001d400\U0001d401 sale"  # Р: Cyrillic; 𝐀𝐁: 4 bytes each
    view = message_view(make_ctx(msg("\u0420ay now", body)))
    hits = {h.name for h in eng.run(view).hits}
    # é is \xc3\xa9: "." meets two bytes of it, and the Latin-1 byte \xe9 is not in the text
    assert hits == {"LOCAL_CYR_P", "LOCAL_LITERAL", "LOCAL_4BYTE", "LOCAL_SUBJ_CYR", "LOCAL_DOT_COUNT"}
    assert eng.run(view, lazy=False).values.keys() >= hits
    assert view.body.startswith("\u0420ay now\ncaf\u00e9")  # the view itself stays text (Bayes reads it)
    plain = message_view(make_ctx(msg("Pay now", "cafe creme PayPal")))
    assert not {h.name for h in eng.run(plain).hits}


def test_octets_are_the_utf8_bytes_one_character_each() -> None:
    assert octets("plain ascii") == "plain ascii"
    assert octets("caf\u00e9") == "caf\xc3\xa9"
    assert octets("\U0001d400") == "\xf0\x9d\x90\x80"
    assert octets("a\udce9b") == "a\xe9b"  # a byte that was not UTF-8 (surrogate escape) is that byte
    assert octets("\ud800") == "\xed\xa0\x80"  # a lone surrogate from an entity: encoded as it stands


def test_body_length_is_the_bytes_after_the_headers_and_vertical_words_count_bytes(tmp_path: Path) -> None:
    # BodyEval's check_body_length reads pristine_body_length (at most the argument), not the
    # rendered text; tvd_vertical_words counts a line's bytes
    rules = ("body LOCAL_LEN_LE eval:check_body_length('20')\nscore LOCAL_LEN_LE 1\n"
             "body LOCAL_TVD eval:tvd_vertical_words('60','101')\nscore LOCAL_TVD 1\n")
    eng = engine(tmp_path, rules)
    # msg() ends the body with CRLF: "0123456789abcdefghi" + LF is 20 bytes as SpamAssassin is given it
    assert "LOCAL_LEN_LE" in {h.name for h in eng.run(message_view(make_ctx(msg("x", "0123456789abcdefghi")))).hits}
    assert "LOCAL_LEN_LE" not in {h.name for h in eng.run(message_view(make_ctx(msg("x", "0123456789abcdefghij")))).hits}
    short = "<p>\u00e9</p>" * 3  # rendered: 3 characters, but the raw body is over 20 bytes
    assert "LOCAL_LEN_LE" not in {h.name for h in eng.run(message_view(make_ctx(msg("x", short, ctype="text/html")))).hits}
    # the rendered line "é é é é " has 4 spaces and 4 other characters (100 %), but 8 other
    # bytes (50 %)
    spaced = message_view(make_ctx(msg("x", "\u00e9 \u00e9 \u00e9 \u00e9")))
    assert "LOCAL_TVD" not in {h.name for h in eng.run(spaced).hits}
    assert "LOCAL_TVD" in {h.name for h in eng.run(message_view(make_ctx(msg("x", "e e e e")))).hits}


def test_body_rules_read_lines_of_at_most_2048_bytes_split_as_spamassassin_splits_them(tmp_path: Path) -> None:
    # Message::split_into_array_of_short_lines: a line over 2,048 bytes is split after the
    # last space in its first 2,048 (at 2,048 when it has none); nothing past 8 KB is dropped
    rules = ("body LOCAL_SPLIT /^(?:lorem ){59}needle/\nscore LOCAL_SPLIT 1\n"
             "body LOCAL_FAR /needle9k/\nscore LOCAL_FAR 1\n"
             "body LOCAL_341 /(?:lorem ){341}/\nscore LOCAL_341 1\n"  # 2,046 bytes: fits a line
             "body LOCAL_342 /(?:lorem ){342}/\nscore LOCAL_342 1\n")  # 2,052: longer than a line can be
    eng = engine(tmp_path, rules)
    view = message_view(make_ctx(msg("x", "lorem " * 400 + "needle")))
    lines = body_lines(view)
    assert [len(x) for x in lines] == [2, 2046, 361]  # "x\n", 341 words, the rest (its line end: a space)
    assert {h.name for h in eng.run(view).hits} == {"LOCAL_SPLIT", "LOCAL_341"}
    far = message_view(make_ctx(msg("x", "lorem " * 1500 + "needle9k " + "x" * 3000)))
    assert all(len(x) <= 2048 for x in body_lines(far))
    assert {h.name for h in eng.run(far).hits} == {"LOCAL_FAR", "LOCAL_341"}


def test_a_body_match_never_runs_from_one_line_into_the_next(tmp_path: Path) -> None:
    # SpamAssassin runs a body rule on each line alone; our lines are joined by newlines, which
    # \s, [^x] and \W also match: a hit across a line end is not a hit
    filler = "|".join(f"zzfiller{i:03d}" for i in range(60))  # long enough for the RE2 prefilter
    rules = ("body LOCAL_ACROSS /\\bend\\s+start\\b/\nscore LOCAL_ACROSS 1\n"
             "body LOCAL_NOTX /end[^x]start/\nscore LOCAL_NOTX 1\n"
             f"body LOCAL_LONG /(?:{filler}|end)\\W+start/\nscore LOCAL_LONG 1\n"
             "body LOCAL_MANY /\\bpay\\W+\\w+/\ntflags LOCAL_MANY multiple maxhits=5\nscore LOCAL_MANY 1\n"
             # zero-width: a look-behind or a $ must not see the newline that ends the line before
             "body LOCAL_BEHIND /(?<=\\s)start\\b/\nscore LOCAL_BEHIND 1\n"
             "body LOCAL_DOLLAR /(?:$|,)(?=s)start/\nscore LOCAL_DOLLAR 1\n")
    eng = engine(tmp_path, rules)
    from gateway_milter.antispam import re2filter

    assert "LOCAL_LONG" in eng.re2 and eng.re2["LOCAL_LONG"].exact
    across = message_view(make_ctx(msg("x", "This is the end\r\n\r\nstart of the next paragraph, pay\r\n\r\nnow")))
    assert body_lines(across) == ["x\n", "This is the end\n", "start of the next paragraph, pay\n", "now "]
    assert {h.name for h in eng.run(across).hits} == set()
    assert {h.name for h in eng.run(across, lazy=False).hits} == set()
    inline = message_view(make_ctx(msg("x", "This is the end start of it, pay now, pay later\r\n\r\npay\r\n\r\nup")))
    hits = {h.name: h.count for h in eng.run(inline).hits}
    assert set(hits) == {"LOCAL_ACROSS", "LOCAL_NOTX", "LOCAL_LONG", "LOCAL_MANY", "LOCAL_BEHIND"}
    assert "LOCAL_DOLLAR" in {h.name for h in eng.run(message_view(make_ctx(msg("x", "the end,start")))).hits}
    assert hits["LOCAL_MANY"] == 2  # "pay now", "pay later"; not "pay" + the next line's "up"
    assert re2filter.re2 is not None


def test_header_rules_read_every_address_and_name_as_spamassassin_4_does(tmp_path: Path) -> None:
    # Check.pm reads get() in list context: every address (or name) of every header, joined by
    # newlines; eval functions read the first one (scalar context)
    rules = ("header LOCAL_ADDR_WS From:addr =~ /\\s/\nscore LOCAL_ADDR_WS 1\n"
             "header LOCAL_SECOND From:addr =~ /^pay\\@/m\nscore LOCAL_SECOND 1\n"
             "header LOCAL_FIRST_ONLY From:first:addr =~ /^pay\\@/m\nscore LOCAL_FIRST_ONLY 1\n"
             "header LOCAL_LAST_RCVD Received:last =~ /oldest/\nscore LOCAL_LAST_RCVD 1\n"
             "header LOCAL_FIRST_RCVD Received:first =~ /oldest/\nscore LOCAL_FIRST_RCVD 1\n"
             "header LOCAL_NAMES To:name =~ /^Bob Smith\\nCarol$/\nscore LOCAL_NAMES 1\n"
             "header LOCAL_NO_NAME Cc:name =~ /./ [if-unset: unset]\nscore LOCAL_NO_NAME 1\n"
             "header LOCAL_HOST From:addr:host =~ /example/\nscore LOCAL_HOST 1\n")
    eng = engine(tmp_path, rules)
    assert "header modifier :host" in eng.unsupported["LOCAL_HOST"]
    raw = (b"Received: from a by b; Sat, 28 Nov 2026 10:00:00 +0000\r\n"
           b"Received: from oldest by a; Sat, 28 Nov 2026 09:59:00 +0000\r\n"
           b"From: dont@x.example, pay@x.example,\r\n    top@x.example\r\n"
           b"To: 'Bob   Smith' <bob@example.com>, Carol <carol@example.com>, dave@example.com\r\n"
           b"Cc: erin@example.com\r\nSubject: hi\r\n\r\nHello\r\n")
    view = message_view(make_ctx(raw))
    assert view.header("From:addr") == "dont@x.example" and view.rule_header("From:addr") == \
        "dont@x.example\npay@x.example\ntop@x.example"
    assert view.header("To:name") == "Bob Smith"
    assert view.rule_header("Cc:name") is None and view.header("Cc:name") == ""
    hits = {h.name for h in eng.run(view).hits}
    assert hits == {"LOCAL_ADDR_WS", "LOCAL_SECOND", "LOCAL_LAST_RCVD", "LOCAL_NAMES", "LOCAL_NO_NAME"}


def test_an_encoded_word_with_bytes_its_charset_does_not_have_is_decoded_as_far_as_it_goes() -> None:
    from gateway_milter.antispam.saview import decode_header_value

    # Big5 with one byte pair that is not Big5: SpamAssassin (Perl's Encode) puts U+FFFD there;
    # the encoded word must not stay as it was written (its "?" made PLING_QUERY hit)
    got = decode_header_value("=?big5?Q?=A7=DA=AA=BE=B9D=A4@=B0_=A8=D3=A7a!?=")
    assert got.startswith("我知道") and got.endswith("來吧!") and "\ufffd" in got and "?" not in got
    assert decode_header_value("=?utf-8?q?caf=C3=A9?= =?iso-8859-1?q?caf=E9?=") == "cafécafé"


def test_tflags_nosubject_skips_the_subject_line_only(tmp_path: Path) -> None:
    # Debian's __NONEMPTY_BODY (/\S/, nosubject) decides EMPTY_MESSAGE: the Subject line is the
    # body's first line, which SpamAssassin skips for such a rule (an empty line when there is
    # no Subject, so then nothing of the text is skipped)
    rules = ("body __LOCAL_NONEMPTY /\\S/\ntflags __LOCAL_NONEMPTY nosubject\n"
             "meta LOCAL_EMPTY !__LOCAL_NONEMPTY\nscore LOCAL_EMPTY 1\n"
             "body LOCAL_WORDS /\\w+/\ntflags LOCAL_WORDS multiple maxhits=9 nosubject\nscore LOCAL_WORDS 0.1\n")
    eng = engine(tmp_path, rules)

    def hits(raw: bytes) -> dict[str, int]:
        return {h.name: h.count for h in eng.run(message_view(make_ctx(raw))).hits}

    image_only = msg("please see this", '<a href="http://x.example/"><img src="http://x.example/a.gif" alt="a"></a>',
                     ctype="text/html; charset=us-ascii")
    assert hits(image_only) == {"LOCAL_EMPTY": 1}
    assert hits(msg("please see this", "one two")) == {"LOCAL_WORDS": 2}
    no_subject = b"From: a@sender.test\r\nTo: bob@example.com\r\n\r\none two three\r\n"
    assert hits(no_subject) == {"LOCAL_WORDS": 3}


def test_text_attachments_and_html_named_parts_are_rendered_as_spamassassin_renders_them(tmp_path: Path) -> None:
    # Node::rendered: every text/plain and text/html leaf, attachments too; a part named *.html
    # is HTML whatever its type; other text types (calendar, enriched) are not rendered
    rules = ("body LOCAL_TXT /attached words/\nscore LOCAL_TXT 1\n"
             "body LOCAL_HTMLFILE /order here now/\nscore LOCAL_HTMLFILE 1\n"
             "body LOCAL_TAGS /<b>/\nscore LOCAL_TAGS 1\n"
             "body LOCAL_CAL /BEGIN:VCALENDAR/\nscore LOCAL_CAL 1\n"
             "rawbody LOCAL_RAWCAL /BEGIN:VCALENDAR/\nscore LOCAL_RAWCAL 1\n"
             "rawbody LOCAL_RAWHTML /<b>order/\nscore LOCAL_RAWHTML 1\n")
    eng = engine(tmp_path, rules)
    import base64

    html = base64.b64encode(b"<html><body><b>order here now</b></body></html>").decode()
    raw = ("From: a@sender.test\r\nTo: bob@example.com\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
           "--b1\r\nContent-Type: text/plain\r\n\r\nSee the files.\r\n"
           '--b1\r\nContent-Type: text/plain; name="notes.txt"\r\nContent-Disposition: attachment; filename="notes.txt"\r\n\r\n'
           "Some attached words.\r\n"
           '--b1\r\nContent-Type: application/octet-stream; name="order.html"\r\nContent-Transfer-Encoding: base64\r\n'
           f'Content-Disposition: attachment; filename="order.html"\r\n\r\n{html}\r\n'
           "--b1\r\nContent-Type: text/calendar\r\n\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n--b1--\r\n").encode()
    view = message_view(make_ctx(raw))
    assert view.has_html
    assert {h.name for h in eng.run(view).hits} == {"LOCAL_TXT", "LOCAL_HTMLFILE", "LOCAL_RAWHTML"}


def test_text_is_decoded_as_spamassassins_normalize_charset_decodes_it() -> None:
    from gateway_milter.antispam.saview import normalize_charset

    assert normalize_charset(b"caf\xc3\xa9", "iso-8859-1") == "café"  # UTF-8 first, whatever was declared
    assert normalize_charset(b"caf\xe9 \x93quoted\x94", "iso-8859-1") == "café “quoted”"  # Latin-1 read as 1252
    assert normalize_charset(b"\xc4\xe3\xba\xc3", "gb2312") == "你好"
    # a GB2312 text with a sequence GB2312 does not have: Windows-1252, as the last resort
    assert normalize_charset(b"\xc4\xe3\xcb\xff", "gb2312") == "ÄãËÿ"
    assert normalize_charset(b"\x81 x", "") == "\ufffd x"  # one of 1252's undefined bytes
    assert normalize_charset(b"plain", "x-unknown") == "plain"
    # a 7-bit encoding is decoded, not read as ASCII (nor as UTF-8, which 7-bit bytes also are)
    assert normalize_charset(b'\x1b$B%"%@\x1b(B', "iso-2022-jp") == "アダ"


def test_encoded_words_are_decoded_as_spamassassin_decodes_them() -> None:
    from gateway_milter.antispam.saview import decode_header_value

    # wherever they stand, nothing added around them (the stdlib put spaces there)
    assert decode_header_value("=?iso-2022-jp?B?am9rb0Bycy4xMjgubmUuanA=?=@FreeBSD.ORG", "From") == \
        "joko@rs.128.ne.jp@FreeBSD.ORG"
    assert decode_header_value("x=?utf-8?q?a?=y") == "xay"
    assert decode_header_value('"=?iso-2022-jp?B?JxskQiUiJUAbKEIn?=" <a@b.example>', "To") == "\"'アダ'\" <a@b.example>"
    # a character split across two words of one charset; white space between words dropped
    assert decode_header_value("=?utf-8?Q?=E4=BD?= =?utf-8?Q?=A0?= x") == "你 x"
    assert decode_header_value("=?US-ASCII*EN?Q?Keith_Moore?=") == "Keith Moore"
    # not decoded in these headers
    assert decode_header_value("<=?utf-8?q?x?=@example.com>", "Message-ID") == "<=?utf-8?q?x?=@example.com>"


def test_rendered_parts_have_lf_line_ends_as_spamassassins_decode_leaves_them() -> None:
    # Node::decode turns CRLF into LF in quoted-printable parts and in base64 text parts; the
    # HTML facts (length: html_range, html_image_only) count what it gives the parser
    import base64

    html = b"<html>\r\n<body>\r\n<img src=http://x.example/a.gif>\r\n</body>\r\n</html>\r\n"
    b64 = base64.encodebytes(html).decode().replace("\n", "\r\n")
    raw = ("From: a@sender.test\r\nTo: bob@example.com\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/html; charset=us-ascii\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64).encode()
    view = message_view(make_ctx(raw))
    assert view.html.length == len(html.replace(b"\r\n", b"\n")) == len(html) - 5


def test_runs_of_more_than_20_blank_lines_are_cut_as_spamassassins_parser_cuts_them() -> None:
    from gateway_milter.antispam.saview import squash_blank_lines

    head = b"From: a@sender.test\r\nSubject: hi\r\nContent-Type: text/html\r\n\r\n"
    body = b"<html>\r\n" + b"\t\t\r\n" * 30 + b"<b>x</b>\r\n" + b"\r\n" * 20 + b"</html>\r\n"
    raw = head + body
    out = squash_blank_lines(raw)
    lines = out[len(head):].split(b"\r\n")
    assert lines[0] == b"<html>" and lines[1:21] == [b"\t\t"] * 20 and lines[21] == b"<b>x</b>"
    assert lines[22:42] == [b""] * 20 and lines[42] == b"</html>"  # a run of 20: kept
    cut = squash_blank_lines(head + b"a\r\n" + b" \r\n" * 21 + b"b\r\n")
    assert cut[len(head):].split(b"\r\n")[1:-2] == [b" "] * 20
    plain = head + b"<p>a</p>\r\n" + b"\r\n" * 20 + b"b\r\n"
    assert squash_blank_lines(plain) is plain
    view = message_view(make_ctx(raw))
    assert view.html.length == len(out) - len(head) - out[len(head):].count(b"\r")  # LF line ends
    assert view.body_len == len(body) - body.count(b"\r")  # the pristine body keeps every line


def test_folded_headers_are_unfolded_to_one_space_as_spamassassin_unfolds_them(tmp_path: Path) -> None:
    # Node::header: s/\n[ \t]+/ /g; the Received time after a fold then parses (the date rules)
    eng = engine(tmp_path, "header LOCAL_FOR Received =~ /for <jm\\@example\\.com>; Fri/\nscore LOCAL_FOR 1\n"
                           "header LOCAL_RAW Received:raw =~ /for\\n    <jm/\nscore LOCAL_RAW 1\n")
    raw = (b"Received: from a.example (a.example [192.0.2.1]) by mx.example.com with SMTP id 1 for\r\n"
           b"    <jm@example.com>; Fri, 29 Jun 2001 19:12:15\r\n    +0900\r\n"
           b"From: a@sender.test\r\nSubject: hi\r\nDate: Fri, 29 Jun 01 01:03:58 EST\r\n\r\nHello\r\n")
    view = message_view(make_ctx(raw))
    assert view.header("Received") == ("from a.example (a.example [192.0.2.1]) by mx.example.com with SMTP id 1 for "
                                       "<jm@example.com>; Fri, 29 Jun 2001 19:12:15 +0900")
    assert {h.name for h in eng.run(view).hits} == {"LOCAL_FOR", "LOCAL_RAW"}
    from gateway_milter.antispam.saeval import _date_shift

    assert round(_date_shift(view), 2) == -4.14  # Date 06:03:58 UTC, received 10:12:15 UTC


def test_a_word_without_an_at_sign_is_no_address_as_spamassassins_parser_reads_it() -> None:
    # Util::parse_header_addresses: "yyyy" is a name with no address, so a stored message whose
    # Return-Path is "yyyy" has no envelope sender to guess, and From: MAILER-DAEMON no From:addr
    raw = b"Return-Path: yyyy\r\nFrom: MAILER-DAEMON\r\nTo: bob@example.com\r\nSubject: hi\r\n\r\nHello\r\n"
    ctx = make_ctx(raw)
    ctx.envelope_guessed = True
    view = message_view(ctx)
    view.envelope_guess = True
    assert view.header("EnvelopeFrom") is None
    assert view.rule_header("From:addr") is None and view.header("From:addr") == ""
    assert view.rule_header("To:addr") == "bob@example.com"
