"""What fuzzing the content path found (bench/fuzz_content.py, docs/antispam-evaluation.md
"Fuzzing the content path"): each input, minimised and written by hand, goes through the
message view, Bayes and the rules without raising and within a small part of the rules
layer's budget."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from gateway_milter.antispam import re2filter
from gateway_milter.antispam.bayes import message_keys
from gateway_milter.antispam.perlre import parse_perl_regex
from gateway_milter.antispam.saview import message_view
from tests.unit.antispam.helpers import make_ctx, msg

needs_re2 = pytest.mark.skipif(not re2filter.available(), reason="google-re2 is not installed")

# A quoted-printable part with an 8-bit byte whose charset parameter the codecs refuse: the
# standard library decodes such a payload by its charset and falls back to ASCII only for an
# unknown one (LookupError), so these raised out of get_payload() in the message view's MIME
# counters (the rules layer tempfails on that)
REFUSED_CHARSETS = {
    "nul": b'charset="a\x00b"',  # ValueError: embedded null character
    "rfc2231": b"charset*=utf-8''utf-8",  # get_param gives a tuple: TypeError
    "idna": b"charset=idna",  # UnicodeError: no "replace" for idna
    "undefined": b"charset=undefined",  # UnicodeError: undefined encoding
}


@pytest.mark.parametrize("case", sorted(REFUSED_CHARSETS))
@pytest.mark.parametrize("nested", [False, True], ids=["top", "in_multipart"])
def test_it_views_a_part_whose_charset_the_codecs_refuse(case: str, nested: bool) -> None:
    part = (b"Content-Type: text/plain; " + REFUSED_CHARSETS[case] + b"\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf\xe9 au lait=\r\n")
    head = b"From: a@sender.test\r\nTo: b@example.com\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
    raw = (head + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" + part + b"--b--\r\n" if nested
           else head + part)
    view = message_view(make_ctx(raw))
    # the part's lines were read: no needlessly encoded character (MIMEEval's count)
    assert view.mime["mime_qp_count"] == 0 and view.mime["mime_qp_long_line"] == 0
    assert message_keys(view).keys


# A multipart's boundary as an RFC 2231 value whose charset the codecs refuse (a NUL in it:
# ValueError, embedded null character) or that mixes forms (TypeError): get_boundary() raised
# out of the view's MIME counters, and the rules layer failed on the message
@pytest.mark.parametrize("boundary", [b"boundary*=\"ansi-\x00\x00.4''b1\"",
                                      b"boundary*=utf-8''b1; boundary*0=b2",
                                      b"boundary*" + b"9" * 4400 + b"*=b1"], ids=["nul", "mixed", "digits"])
def test_it_views_a_multipart_whose_boundary_the_stdlib_cannot_read(boundary: bytes) -> None:
    raw = (b"From: a@sender.test\r\nTo: b@example.com\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/signed; " + boundary + b"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n"
           b"part one\r\n--b1--\r\n")
    view = message_view(make_ctx(raw))
    assert message_keys(view).keys
    ctx = make_ctx(raw)
    res = ctx.layer("rules")
    assert res.error is None and res.skipped is None, (res.error, res.skipped)


# (pattern, text): texts long enough for long_value_search to ask RE2, each with its answer from
# Python's own search; the last patterns have a look-ahead or a back-reference, which RE2 takes
# only as a superset (``re`` alone answers for those)
LONG = "name=x; " * 100
SEARCHES = [
    (r"/name=.*?(?:prize|urgent)/mi", LONG),
    (r"/name=.*?(?:prize|urgent)/mi", LONG + "name=urgent"),
    (r"/name=.*?(?:prize|urgent)/mi", LONG + "\nname=URGENT"),
    (r"/name=.*?(?:prize|urgent)/mi", "urgent\n" + LONG),
    (r'/\bname="?[^"]*\.(?:zip|rar)[";$]/i', LONG),
    (r'/\bname="?[^"]*\.(?:zip|rar)[";$]/i', LONG + 'name="a.zip"'),
    (r"/^name=x; (?!name)/", LONG),
    (r"/^name=x; (?!name)/", LONG.rstrip()),
    (r"/(name=x; )\1{50}/", LONG),
    (r"/(name=y; )\1/", LONG),
]


@needs_re2
@pytest.mark.parametrize("perl,text", SEARCHES)
def test_long_value_search_answers_as_python_does(perl: str, text: str) -> None:
    pat, _ = parse_perl_regex(perl)
    assert len(text) >= re2filter.LONG_VALUE
    search = re2filter.long_value_search(pat, pat.compiled.search)
    assert (search(text) is not None) == (pat.compiled.search(text) is not None)
    assert (search(text[:40]) is not None) == (pat.compiled.search(text[:40]) is not None)  # short: ``re`` alone


@needs_re2
def test_long_value_search_is_linear_where_python_is_quadratic() -> None:
    """A 100 KB value of ``name=`` (with ``re``: about 30 s for this pattern alone)."""
    pat, _ = parse_perl_regex(r"/name=.*?(?:lot(?:eri[ej]|t(?:ery|o))|award|prize|winn(?:er|ing)|urgent)/mi")
    assert isinstance(pat.compiled, re.Pattern)
    search = re2filter.long_value_search(pat, pat.compiled.search)
    text = "attachment; " + "filename=x; " * 8000
    t0 = time.process_time()
    assert search(text) is None
    assert search(text + "filename=prize.doc") is not None
    assert time.process_time() - t0 < 1.0


# RFC 2231 parameters the standard library's decode_params raises on, read by get_content_charset()
# in the message view's MIME counters
@pytest.mark.parametrize("params", [b"charset*=utf-8''a; charset*0=b",  # mixed forms: TypeError
                                    b"charset*" + b"9" * 4400 + b"*=utf-8"])  # over 4,300 digits: ValueError
def test_it_views_a_part_whose_rfc2231_parameters_the_stdlib_refuses(params: bytes) -> None:
    raw = (b"From: a@sender.test\r\nSubject: hi\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: text/plain; " + params + b"\r\n\r\nhello there\r\n--b--\r\n")
    view = message_view(make_ctx(raw))  # (the MIME view may leave such a part out: mime/view.py)
    assert view.mime["mime_body_text_count"] <= 1
    assert message_keys(view).keys


def test_it_splits_the_address_headers_in_linear_time() -> None:
    """Address headers of dashes: ``[\\w.+-]+@`` read on to the end of the run from each of its
    characters (a From of 60,000: 5 s of Bayes features; cut at 8,192 now, but 30 Reply-To of
    8,000: 3 s); the features stay findall's."""
    from gateway_milter.antispam.tokenizer import _ADDRESS_PARTS, address_parts

    for value in ["-" * 600 + " <alice@sender.test>", "a." * 300 + "x@y.test", "x'y-z@a.b " * 40,
                  "+" * 300 + "@d.test", "--a--" * 100 + "\u00e9-b@c.d" + "." * 300]:
        assert address_parts(value) == _ADDRESS_PARTS.findall(value)[:20]
    raw = msg("x", headers="".join(f"Reply-To: {'-' * 8000} <r{i}@sender.test>\r\n" for i in range(30)))
    raw = raw.replace(b"From: Alice <", b"From: " + b"-" * 8000 + b" <")
    t0 = time.process_time()
    feats = message_keys(message_view(make_ctx(raw))).features
    assert time.process_time() - t0 < 1.0
    assert "from:addr:alice@sender.test" in feats and "reply-to:addr:r29@sender.test" in feats


def test_it_reads_the_parameters_of_a_long_content_type_in_linear_time() -> None:
    """60 KB of ``;`` in a quoted parameter: the standard library counted the quotes from the
    parameter's start again at each ``;`` (email.message._parseparam; 4 s of the message
    view); mime/view.py splits them in one pass, into the same list."""
    import email.message

    from gateway_milter.mime.view import _parse_params

    for value in ['text/plain; name="' + ";" * 200 + '"; charset=utf-8', 'a; b="x\\";y"; c=d', ";;", "",
                  'text/html; a="b;c\\"d;e"f; g', 'x; NAME = "v" ; Other=1;']:
        assert _parse_params(value) == email.message._parseparam(value)  # type: ignore[attr-defined]
    raw = msg("x", ctype='text/plain; charset=utf-8; name="' + ";" * 60_000 + '"')
    t0 = time.process_time()
    view = message_view(make_ctx(raw))
    assert time.process_time() - t0 < 1.0
    assert view.mime["mime_body_text_count"] == 1


def test_it_cuts_header_fields_where_spamassassin_does() -> None:
    """A From of 60 KB of dots: __PDS_FROM_NAME_TO_DOMAIN (``ALL =~ /From: ["']?([a-z0-9\\.-]+\\.
    [0-9a-z\\.-]+)["']? [^\\n]+\\n+To:[^\\n]+\\@\\1/ism``, a back-reference, so RE2 cannot take
    it) took 13 s on it. SpamAssassin cuts a field's value at 8,192 octets and ALL at 64 KB
    (Mail::SpamAssassin::Message, Node::get_all_headers), and so does the view now."""
    from gateway_milter.antispam.perlre import parse_perl_regex

    raw = msg("x").replace(b"From: Alice <", b"From: " + b"." * 60_000 + b" <")
    raw = raw.replace(b"Subject: x", b"Subject: x\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 8000) for i in range(10)))
    view = message_view(make_ctx(raw))
    assert max(len(v) for _, v in view.headers) <= 8192
    assert len(view.header("ALL") or "") <= 65536
    assert view.header("Subject") == "x"
    pat, _ = parse_perl_regex(r"""/From: ["']?([a-z0-9\.-]+\.[0-9a-z\.-]+)["']? [^\n]+\n+To:[^\n]+\@\1/ism""")
    t0 = time.process_time()
    assert pat.compiled.search(view.header("ALL") or "") is None
    assert time.process_time() - t0 < 1.0



def test_it_checks_freemail_senders_in_linear_time() -> None:
    """FreeMail's allow list ends in ``.+=.+=.+@`` (matched) and its bulk-sender list in
    ``.+=.+@`` (searched): on a sender of 2,000 ``=`` and no ``@`` after them ``re`` tried every
    split, 6.7 s each (a From of 60 KB of ``=?``: 228 s in the rules layer). The same answers
    with the leftmost ``=`` each time, in one pass."""
    import re as re_

    from gateway_milter.antispam import saeval

    welcome_as_written = re_.compile(saeval._FREEMAIL_WELCOME.pattern.replace(
        r"|[^\n][^=\n]*=[^\n][^=\n]*=[^\n]+)@", "|.+=.+=.+)@"), re_.I)
    bulk_as_written = re_.compile(saeval._BULK_ENVFROM.pattern.replace(r"|(?m:^)[^\n][^=\n]*=[^\n]+)@", "|.+=.+)@"),
                                  re_.I)
    assert welcome_as_written.pattern != saeval._FREEMAIL_WELCOME.pattern
    assert bulk_as_written.pattern != saeval._BULK_ENVFROM.pattern
    for text in ["a=b=c@gmail.test", "=a=b@x", "a==@x", "a=b=@x", "a=@b=c@x", "ab=cd", "a\n=b=c@x", "x=y\n@z",
                 "=@=@=@", "a=b=c=d", "@a=b=c@", "==@==@", "bob@gmail.test", "a=\nb=c@x", "a=b=\nc@x"]:
        assert (welcome_as_written.match(text) is None) == (saeval._FREEMAIL_WELCOME.match(text) is None), text
        assert (bulk_as_written.search(text) is None) == (saeval._BULK_ENVFROM.search(text) is None), text
    t0 = time.process_time()
    assert saeval._FREEMAIL_WELCOME.match("=" * 100_000) is None
    assert saeval._BULK_ENVFROM.search("=" * 100_000) is None
    raw = msg("x").replace(b"From: Alice <alice@sender.test>", b"From: " + b"=?" * 4000)
    view = message_view(make_ctx(raw))
    saeval.EVALS["check_freemail_replyto"](view, ("replyto",), {"freemail_domains": {"gmail.test"}})
    saeval.EVALS["check_freemail_replyto"](view, ("reply",), {"freemail_domains": {"gmail.test"}})
    assert time.process_time() - t0 < 1.0


def test_it_reads_a_received_header_of_repeated_authenticated_in_linear_time() -> None:
    """Received.pm's Sendmail authentication pattern, five lazy gaps in a row: on a Received of
    "(authenticated) [ip]) " repeated and no " by" after them ``re`` tried every combination
    (atheris: over 60 s, in Bayes' sender key and the rules' trust path). The first place each
    part can be is kept (atomic groups): the same headers match."""
    from gateway_milter.antispam.relays import _AUTH

    sendmail = re.compile(r"^from .*?(?:\](?: \([^)]*\))?\)|\)\]) .*?\(.*?authenticated.*?\).*? by")
    _, rx, _ = _AUTH[3]
    for header in ["from x (y [1.2.3.4]) (authenticated bits=0) by mx.test (8.14/8.14) id q",
                   "from x ([1.2.3.4]) (a) (authenticated) by z", "from x (y) (authenticated) by z",
                   "from x ] (y)) z (authenticated) by", "from a )] (b authenticated c) d by e",
                   "from x ([1.2.3.4]) (authenticated by z", "from x ([1.2.3.4]) authenticated) by z"]:
        assert (rx.search(header) is None) == (sendmail.search(header) is None), header
    header = "from python (gw01.es3.egwn.net [212.9.66.13]) " + "(authenticated) [212.9.66.13]) " * 250
    raw = msg("x", headers=f"Received: {header}\r\n")
    t0 = time.process_time()
    message_keys(message_view(make_ctx(raw)))
    assert time.process_time() - t0 < 1.0


@needs_re2
def test_it_runs_mimeheader_rules_on_a_long_header_in_linear_time(tmp_path: Path) -> None:
    """A Content-Type of 100 KB of ``name=`` parameters: Debian's __HK_SPAMMY_CTFN,
    __MALW_ATTACH_02_02 and __PHISH_ATTACH_01_02 took 57 s of CPU on it with Python's ``re``
    (the rules layer's budget is 10 s; a MIME part's headers are not cut at 8,192 as the
    message's are); searched through RE2 (re2filter.long_value_search), a few ms, with the same
    hits."""
    from gateway_milter.antispam.engine import engine_for
    from tests.unit.antispam.helpers import write_rules

    d = write_rules(tmp_path, "mimeheader T_CTFN Content-Type =~ /name=.*?(?:prize|urgent)/mi\nscore T_CTFN 1\n"
                              "header T_SUBJ Subject =~ /!.*?\\?/\nscore T_SUBJ 1\n"
                              "mimeheader T_CTZIP Content-Type =~ /\\bname=\"?[^\"]*\\.(?:zip|rar)[\";$]/i\nscore T_CTZIP 1\n")
    eng = engine_for((str(d),), 2, include_default=False)
    params = "name=x; " * 12_500
    for ctype, subject, hits in ((params, "!" * 8000, set()),  # (a longer Subject is cut at 8,192)
                                 (params + 'name="prize.zip"', "!" * 8000 + "?", {"T_CTFN", "T_CTZIP", "T_SUBJ"})):
        view = message_view(make_ctx(msg(subject, ctype="text/plain; " + ctype)))
        t0 = time.process_time()
        res = eng.run(view)
        assert time.process_time() - t0 < 2.0
        assert {h.name for h in res.hits} == hits


@needs_re2
def test_it_runs_uri_rules_on_long_nested_redirects_in_linear_time(tmp_path: Path) -> None:
    """Links of 105 nested redirects cut short (``http://wrap.com/r?u=https://a.com/r?u=...
    https:/``, 2 KB each) beside one that matches: Debian's __PDS_DOUBLE_URL
    (``https?://[\\S]+(?:\\?|=)https?://[\\S]+[\\w]+$``) takes time cubic in such a URI with
    Python's ``re``, 0.1 s each, 1.3 s for a 7 KB message that fuzzing found (RE2 reading the
    URIs joined cannot rule the rule out: one of them matches). Each long URI is now asked of
    RE2 as a long header value is: a few ms, the same answers."""
    from gateway_milter.antispam.engine import engine_for
    from tests.unit.antispam.helpers import write_rules

    d = write_rules(tmp_path, "uri T_DOUBLE_URL m;https?://[\\S]+(?:\\?|=)https?://[\\S]+[\\w]+$;\nscore T_DOUBLE_URL 1\n")
    eng = engine_for((str(d),), 2, include_default=False)
    for last, hits in (("http://b.test/?u=http://c.test/buy", {"T_DOUBLE_URL"}), ("http://b.test/buy", set())):
        links = [f"http://wrap{i}.com/r?u=" + "https://a.com/r?u=" * 105 + "https:/" for i in range(12)] + [last]
        html = "".join(f'<a href="{u}">go</a> ' for u in links)
        view = message_view(make_ctx(msg("hi", f"<html><body>{html}</body></html>", ctype="text/html")))
        assert len(view.uris) >= 13
        t0 = time.process_time()
        res = eng.run(view)
        assert time.process_time() - t0 < 0.3
        assert {h.name for h in res.hits} == hits


def test_it_reads_a_message_part_with_a_long_8bit_header_in_linear_time() -> None:
    """A message/* part SpamAssassin keeps as a leaf (here message/news) with a 30 KB header
    value holding 8-bit bytes: written out again with ``as_string``, the standard library
    encoded the value as an ``unknown-8bit`` word, measuring the encoded line again at each
    character (2.7 s of the view for a 63 KB part fuzzing found). It is written as bytes now,
    the 8-bit bytes as they came, as SpamAssassin's rawbody holds them."""
    value = ("caf\xe9 " * 5000).encode("latin-1")
    raw = (b"From: a@sender.test\r\nTo: b@example.com\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
           b"--b\r\nContent-Type: message/news\r\n\r\nNewsgroups: x\r\nX-Long: " + value + b"\r\n\r\nbody\r\n--b--\r\n")
    t0 = time.process_time()
    view = message_view(make_ctx(raw))
    assert time.process_time() - t0 < 0.5
    assert "X-Long: caf\xe9 caf\xe9" in view.rawbody and "unknown-8bit" not in view.rawbody


@pytest.mark.parametrize("value", [
    "attachment; filename==?*oi8-r?B?89DJ08/LLmRvYw==?=",  # what the random engine found
    "x =?*en?Q?caf=E9?= y",
    "=?*?B?YWJj?==?*?Q?d?=",  # two of them side by side: joined as one word's bytes
])
def test_it_decodes_an_encoded_word_with_no_charset_before_its_language(value: str) -> None:
    """``=?*lang?B?...?=``: the charset before RFC 2231's ``*language`` is empty. The decoder
    marked text as it stands with an empty charset too, so such a word's bytes were joined to
    the text before it (TypeError) and the rules layer failed on every try of the message. Its
    bytes are now read as an unknown charset is read."""
    from gateway_milter.antispam.saview import decode_header_value

    got = decode_header_value(value, "Content-Disposition")
    assert "=?" not in got
    raw = msg("x", headers=f"Content-Disposition: {value}\r\n")
    view = message_view(make_ctx(raw))
    assert message_keys(view).keys


def test_it_views_a_multipart_alternative_that_the_parser_made_a_leaf() -> None:
    """A multipart/alternative without a boundary is a leaf to the parser, and its 8-bit body
    is decoded by the charset parameter when its payload is asked for: given in RFC 2231 form
    (``charset*=...``, a tuple) that raised TypeError out of the MIME counters (found by the
    compiled fuzzing run)."""
    raw = (b"From: a@sender.test\r\nTo: b@example.com\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/alternative; charset*=x\r\n\r\ncaf\xe9 au lait\r\n")
    view = message_view(make_ctx(raw))
    assert view.mime["mime_body_text_count"] == 0
    assert message_keys(view).keys


@needs_re2
@pytest.mark.parametrize("to", ["<!--" * 30, "<![CDATA[" * 20, "<!--" * 2000])
def test_it_runs_a_header_rule_with_nested_repeats_in_linear_time(to: str) -> None:
    """Debian's TO_MALFORMED has ``<\\S+(?:\\!\\S+){1,}>``: on a To: of 30 ``<!--`` Python's
    ``re`` tried every way of cutting the text (56 s for 120 characters, exponential: Perl's
    engine remembers where it failed, Python's does not). A header pattern with nested repeats
    that RE2 takes exactly is now asked of RE2 whatever the value's length (its ``[^\\S"]`` and
    its ``$`` at the end of a branch are written exactly for RE2 now); found by a sweep of the
    whole pipeline."""
    from gateway_milter.antispam.perlre import parse_perl_regex

    p, _rest = parse_perl_regex(r'/(?:^|[^\S"])(?:(?:\"[^\"]+\"|\S+)\@\S+\.\S+|^\s*.+:\s*;|^\s*\"[^\"]+\":\s*;|'
                                r'^\s*\([^\)]*\)\s*$|<\S+(?:\!\S+){1,}>|^\s*$)/')
    pf = re2filter.prefilter(p)
    assert pf is not None and pf.exact
    search = re2filter.long_value_search(p, p.compiled.search)
    t0 = time.process_time()
    assert search(to) is None  # (not a well-formed address: the rule, a negated match, hits)
    assert time.process_time() - t0 < 0.5
    for ok in ("bob@example.com", "<a!b>", '"x" <bob@example.com>', "   ", "(comment) \n", "undisclosed: ;"):
        assert (search(ok) is None) == (p.compiled.search(ok) is None), ok
