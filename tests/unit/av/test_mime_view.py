"""The shared MIME view: stable API, file names, nesting, detected types and ambiguity."""

from __future__ import annotations

import pytest

from gateway_milter.mime import headers as H
from gateway_milter.mime.view import MAX_DEPTH, parse_message
from tests.services import EICAR
from tests.unit.av.mailbuild import (
    AMBIGUOUS,
    HEAD,
    b64,
    plain,
    with_attachment,
    zip_bytes,
)


def test_it_keeps_the_documented_api() -> None:
    v = parse_message(with_attachment(b"%PDF-1.4\n%fake\n", "report.pdf", "application/pdf"))
    assert [p.content_type for p in v.parts] == ["text/plain", "application/pdf"]
    text, pdf = v.parts
    assert text.text is not None and "attached" in text.text and not text.is_attachment
    assert pdf.filename == "report.pdf" and pdf.is_attachment and pdf.payload.startswith(b"%PDF")
    assert pdf.text is None and pdf.depth == 1 and pdf.index == 1
    assert "attached" in v.text and v.html == "" and v.defects == []
    assert pdf.path == (1,) and pdf.path_str == "2" and pdf.detected_type == "application/pdf"
    assert v.ambiguities == []


def test_it_never_raises_on_garbage() -> None:
    for raw in (b"", b"\x00\xff" * 100, b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--\r\n",
                HEAD + b"Content-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\nContent-Type: ;;;\r\n\r\n=?="):
        v = parse_message(raw)
        assert isinstance(v.parts, list)
        v.alternative_payloads()


def test_it_decodes_rfc2231_and_encoded_word_file_names() -> None:
    raw = (HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
           b"--b\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Disposition: attachment; filename*=utf-8''%E2%82%AC%20rechnung.pdf\r\n\r\nx\r\n"
           b"--b\r\nContent-Type: application/octet-stream\r\n"
           b'Content-Disposition: attachment; filename="=?utf-8?B?w6l0w6kuZXhl?="\r\n\r\ny\r\n'
           b"--b\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Disposition: attachment; filename*0=\"long\"; filename*1=\"name.exe\"\r\n\r\nz\r\n--b--\r\n")
    names = [p.filename for p in parse_message(raw).parts]
    assert names == ["\u20ac rechnung.pdf", "\u00e9t\u00e9.exe", "longname.exe"]


def test_it_reports_conflicting_file_names_and_keeps_them_all() -> None:
    raw = with_attachment(b"MZ" + b"\0" * 100, "invoice.pdf", name_param="invoice.exe")
    v = parse_message(raw)
    part = v.parts[1]
    assert set(part.filenames) == {"invoice.pdf", "invoice.exe"}
    assert any(a.code == "CONFLICTING_FILENAMES" for a in v.ambiguities)


def test_it_walks_nested_messages_with_paths() -> None:
    inner = with_attachment(b"hello", "a.txt", "text/plain")
    raw = (HEAD + b'Content-Type: multipart/mixed; boundary="o"\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\nhi\r\n'
           b"--o\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--o--\r\n")
    v = parse_message(raw)
    assert [p.path_str for p in v.parts] == ["1", "2.1.1", "2.1.2"]
    assert v.parts[-1].filename == "a.txt" and v.max_depth == 3


@pytest.mark.parametrize("extra", [30, 3000])
def test_it_stops_at_a_deep_nesting_bomb(extra: int) -> None:
    depth = MAX_DEPTH + extra
    raw = HEAD + b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(depth))
    raw += b"Content-Type: text/plain\r\n\r\ndeep\r\n" + b"".join(b"--b%d--\r\n" % i for i in reversed(range(depth)))
    v = parse_message(raw)
    assert any(a.code == "TOO_DEEP" for a in v.ambiguities)


def test_it_detects_the_true_type() -> None:
    v = parse_message(with_attachment(zip_bytes({"a.txt": b"hello"}), "photo.jpg", "image/jpeg"))
    part = v.parts[1]
    assert part.declared_type == "image/jpeg" and part.detected_type == "application/zip"


def test_it_finds_nothing_ambiguous_in_plain_mail() -> None:
    assert parse_message(plain()).ambiguities == []
    assert parse_message(with_attachment(b"data", "a.bin")).ambiguities == []


EXPECTED_CODES = {
    "duplicate_boundary": "AMBIGUOUS_BOUNDARY",
    "duplicate_content_type": "DUPLICATE_CONTENT_TYPE",
    "rfc2231_boundary": "RFC2231_BOUNDARY",
    "comment_boundary": "HEADER_COMMENT",
    "semicolon_in_quotes": "HIDDEN_PART",
    "part_after_close": "HIDDEN_PART",
    "duplicate_transfer_encoding": "DUPLICATE_TRANSFER_ENCODING",
    "missing_boundary_param": "MISSING_BOUNDARY",
    "hidden_in_text": "HIDDEN_PART",
    "space_before_colon": "MALFORMED_HEADER",
    "transfer_encoding_with_params": "UNKNOWN_TRANSFER_ENCODING",
    "two_types_in_one_field": "HIDDEN_PART",
    "encoded_word_boundary": "MISSING_BOUNDARY",
    "boundary_case": "HIDDEN_PART",
    "nul_in_boundary": "AMBIGUOUS_BOUNDARY",
    "rfc2231_parser_crash": "UNPARSEABLE",
    "uuencoded_in_text": "HIDDEN_PART",
}


@pytest.mark.parametrize("case", sorted(AMBIGUOUS))
def test_it_flags_each_ambiguity_and_finds_the_hidden_payload(case: str) -> None:
    v = parse_message(AMBIGUOUS[case])
    assert EXPECTED_CODES[case] in {a.code for a in v.ambiguities}
    # the primary (stdlib) reading does not see the EICAR part; another reading does
    assert EICAR not in [p.payload for p in v.parts]
    assert EICAR in v.alternative_payloads()
    assert v.alternatives().complete


def test_it_bounds_the_alternative_readings() -> None:
    parts = b"".join(b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                     + b64(b"%d" % i * 20) for i in range(700))
    raw = HEAD + b'Content-Type: multipart/mixed; boundary="a"; boundary="b"\r\n\r\n' + parts + b"--b--\r\n"
    alts = parse_message(raw).alternatives()
    assert not alts.complete


def test_it_reads_every_boundary_candidate() -> None:
    cands = H.boundary_candidates(['multipart/mixed; (boundary="c1";) boundary="c2"; boundary*0="c"; boundary*1="3"'])
    assert set(cands) >= {"c1", "c2", "c3"} and cands[0] == "c2"


def test_it_makes_names_safe_for_display() -> None:
    assert H.safe_filename("../../etc/passwd") == "_.._etc_passwd"
    assert "\u202e" not in H.safe_filename("invoice\u202efdp.exe")
    assert H.safe_filename("") == "unnamed"


def test_it_parses_the_shared_mime_corpus_without_errors() -> None:
    import time

    from tests.services import shared_path

    root = shared_path("corpus", "mime")
    if not root.exists():
        pytest.skip("../shared/corpus/mime not present")
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    slowest = 0.0
    for p in files:
        t0 = time.monotonic()
        v = parse_message(p.read_bytes())
        if v.is_ambiguous:
            v.alternatives()
        slowest = max(slowest, time.monotonic() - t0)
    assert len(files) > 100 and slowest < 5.0


def _mutations(seed_messages: list[bytes], per_seed: int, rnd_seed: int) -> list[bytes]:
    import random

    rnd = random.Random(rnd_seed)
    tokens = [b"\r\n", b"--", b";", b'"', b"(", b")", b"=?", b"?=", b"boundary=", b"*0*=", b"*=", b"charset*=",
              b"filename*=", b"Content-Type: multipart/mixed; boundary=x\r\n", b"\r\n\r\n", b"\x00", b"\xff", b"%", b"'"]
    out = []
    for s in seed_messages:
        for _ in range(per_seed):
            b = bytearray(s)
            for _ in range(rnd.randint(1, 6)):
                pos = rnd.randrange(len(b))
                if rnd.random() < 0.5:
                    b[pos] = rnd.randrange(256)
                else:
                    b[pos:pos] = rnd.choice(tokens)
            out.append(bytes(b))
    return out


def test_it_never_raises_on_mutated_messages() -> None:
    seeds = [*AMBIGUOUS.values(), with_attachment(zip_bytes({"a.exe": b"MZ"}), "a.zip")]
    for raw in _mutations(seeds, 40, 7):
        v = parse_message(raw)
        v.alternatives()
        for p in v.parts:
            assert isinstance(p.detected_type, str)
            v.archive(p)


@pytest.mark.parametrize("charset", [b"idna", b"base64", b"zlib", b"punycode", b"rot13", b"no-such-charset"])
def test_it_survives_hostile_charsets(charset: bytes) -> None:
    v = parse_message(HEAD + b"Content-Type: text/plain; charset=" + charset + b"\r\n\r\n\xff\xfe hello ==\r\n")
    assert v.parts[0].text is not None and "hello" in v.parts[0].text and v.ambiguities == []


# a To: with thousands of encoded words exhausts the stdlib address parser's recursion
HOSTILE_TO = '"test" <test@test.com>,\r\n\t' + "=?utf-8?Q?date=3E2017-08-20T10:08:28.617=3C/pr?=\r\n\t" * 3000 + "x@y.example"


def test_address_parsing_never_raises() -> None:
    assert H.addresses(['"Alice A." <alice@a.example>, bob@b.example']) == [("Alice A.", "alice@a.example"),
                                                                             ("", "bob@b.example")]
    from email.utils import parseaddr

    for v in ("Carol <carol@c.example>", "no address", ""):
        assert H.address(v) == parseaddr(v)[1]  # as the stdlib's where the stdlib copes
    # the stdlib raises RecursionError on this value: the bare addresses are kept instead
    assert [a for _, a in H.addresses([HOSTILE_TO])] == ["test@test.com", "x@y.example"]
    assert H.address(HOSTILE_TO) == "test@test.com"


MALFORMED_FROM = "zvfjenphuq@[1086695621], [ufa]@netnoteinc.com"  # (a 2002 spam's From)


def test_the_legacy_reading_of_a_malformed_header_is_the_same_on_every_interpreter() -> None:
    # the anti-spam view's reading (strict=False): the pieces the parser before
    # CVE-2023-27043's fix found, whether or not this interpreter has the fix
    assert H.addresses([MALFORMED_FROM], strict=False) == [
        ("", "zvfjenphuq@[1086695621]"), ("", ""), ("", "ufa"), ("", ""), ("", "@netnoteinc.com")]
    assert H.addresses(["News@no.hostname.supplied,"], strict=False) == [("", "News@no.hostname.supplied")]
    # the common forms do not reach the parser: the same in both readings
    assert H.addresses(["a@b.example, Carol <c@c.example>"], strict=False) == H.addresses(["a@b.example, Carol <c@c.example>"])


@pytest.mark.skipif(not H._STRICT_MODE, reason="this interpreter's getaddresses has no strict mode (CPython "
                                                "3.11.10+ and Debian 12's python3.11 security updates have it)")
def test_the_layers_deciding_on_a_domain_find_no_address_in_a_malformed_header() -> None:
    assert H.addresses([MALFORMED_FROM]) == [("", "")]
    assert H.address(MALFORMED_FROM) == ""
    assert H.addresses(["alice@example.org)<bob@example.org>"]) == [("", "")]


def test_the_anti_spam_view_reads_a_malformed_from_as_before() -> None:
    from gateway_milter.antispam.saview import message_view
    from tests.unit.antispam.helpers import make_ctx

    m = message_view(make_ctx(b"From: " + MALFORMED_FROM.encode() + b"\r\nSubject: x\r\n\r\nbody\r\n"))
    assert m.header("From:addr") == "zvfjenphuq@[1086695621]"


PLAIN_FORMS = ["alice@a.example", "  Alice   Smith\t<alice@a.example> ", '"Smith Alice" <a.s+tag@mail.a.example>',
               '"" <x@y.example>', "<bare@b.example>", "Bob<bob@b.example>", "=?utf-8?Q?B=C3=B6b?= <b@b.example>",
               "a@b.example, Carol <c@c.example>,d@d.example", "O'Brien <o'brien@x.example>"]
NOT_PLAIN = ["J. Smith <j@x.example>", '"Smith, J" <j@x.example>', "j@x.example (J)", "<j@[192.0.2.1]>",
             "a@b.example,", "undisclosed-recipients:;", "ceo@local.example <x@evil.example>", '"a\\"b" <q@x.example>',
             "x@y.example.", '"A" <a@x.example>, "B" <b@x.example>']


@pytest.mark.parametrize("value", PLAIN_FORMS + NOT_PLAIN)
def test_the_common_address_forms_are_read_as_the_stdlib_reads_them(value: str) -> None:
    from email.utils import getaddresses

    # the common forms take the short way, the others the stdlib parser's; both give its pairs
    assert (H._plain_addresses(value) is not None) is (value in PLAIN_FORMS)
    assert H.addresses([value]) == getaddresses([H._quote_at_phrases(value)])


def test_a_multipart_whose_boundary_never_appears_is_read_as_plain_text() -> None:
    # (the declared boundary lacks the space the delimiters have: SpamAssassin's parser and mail
    # readers show the whole body as text, so content checks must see it)
    raw = (HEAD + b'Content-Type: multipart/alternative; boundary="=Multipart Boundary 07"\r\n\r\n'
           b"preamble\r\n--= Multipart Boundary 07\r\nContent-Type: text/plain\r\n\r\nBuy cheap pills now\r\n"
           b"--= Multipart Boundary 07--\r\n")
    v = parse_message(raw)
    assert [p.content_type for p in v.parts] == ["text/plain"]
    assert v.parts[0].text is not None and "Buy cheap pills now" in v.parts[0].text
    assert {a.code for a in v.ambiguities} >= {"MISSING_BOUNDARY", "HIDDEN_PART"}


def _three_parts(first_headers: str) -> bytes:
    return (b"From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
            b"--b\r\n" + first_headers.encode() + b"\r\n\r\nfirst\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\nsecond part\r\n"
            b"--b\r\nContent-Type: application/octet-stream; name=\"x.bin\"\r\n\r\n" + EICAR + b"\r\n--b--\r\n")


def test_an_rfc2231_section_number_of_thousands_of_digits_is_skipped() -> None:
    """int() refuses 4,300+ digits: the walk raised and the view ended at the first part."""
    v = parse_message(_three_parts('Content-Type: text/plain; name*' + "9" * 5000 + '=a; name="ok.txt"'))
    assert [p.content_type for p in v.parts] == ["text/plain", "text/plain", "application/octet-stream"]
    assert v.parts[0].filename == "ok.txt" and v.ambiguities == []
    assert H.rfc2231_params([("name*0", "a"), ("name*" + "0" * 20 + "1", "b")]) == {"name": "ab"}


def test_a_part_the_walk_cannot_read_leaves_its_siblings_read(monkeypatch: pytest.MonkeyPatch) -> None:
    real = H.filename_candidates

    def refuse_the_marked_part(dispositions: list[str], cts: list[str]) -> list[str]:
        if any("x-hostile" in v for v in cts):
            raise TypeError("a stdlib accessor failing")
        return real(dispositions, cts)

    monkeypatch.setattr(H, "filename_candidates", refuse_the_marked_part)
    v = parse_message(_three_parts("Content-Type: text/plain; x-hostile=1"))
    # the part after it still reaches the content checks (antivirus reads the marked message as unscannable)
    assert [p.content_type for p in v.parts] == ["text/plain", "application/octet-stream"]
    assert v.parts[1].payload.startswith(EICAR[:20]) and v.parts[1].path == (2,)
    assert [(a.code, a.path) for a in v.ambiguities] == [("UNPARSEABLE", "1")]


# pieces of header values: encoded-word syntax, line ends (every one str.splitlines knows),
# white space, base64 and quoted-printable text, a surrogate escape
_WORD_PIECES = ["=?", "?=", "?", "utf-8", "iso-8859-1", "B", "Q", "q", "b", " ", "  ", "\t", "\n", "\r\n",
                "\r", "\x0b", "\x85", "a", "Zm9v", "YQ", "=C3=A9", "_", "x", "\u00e9", "=", "*", "==", "\udcff"]


def test_encoded_words_are_decoded_as_the_stdlib_decodes_them() -> None:
    """H.decode_header gives email.header.decode_header's result, or its error, for 40,000
    values made of encoded-word pieces (seeded), and for the usual forms."""
    import random
    from email.header import decode_header as stdlib_decode

    def both(v: str) -> tuple[object, object]:
        out: list[object] = []
        for fn in (stdlib_decode, H.decode_header):
            try:
                out.append(fn(v))
            except Exception as e:  # noqa: BLE001 - the error's type is compared
                out.append(type(e).__name__)
        return out[0], out[1]

    usual = ["=?utf-8?q?caf=C3=A9?= =?utf-8?q?x?=", "a =?utf-8?b?Zm9v?=  b", "=?utf-8?b?Zm9v?=\r\n =?utf-8?b?YmFy?=",
             "=?iso-8859-1?Q?a?= plain =?utf-8?B?w6k=?=", "=?utf-8?b?Zm9?=", "=?utf-\r\n 8?q?x?=", "plain", ""]
    rng = random.Random(7)
    values = usual + ["".join(rng.choice(_WORD_PIECES) for _ in range(rng.randint(0, 16))) for _ in range(40_000)]
    differ = [v for v in values if (pair := both(v))[0] != pair[1]]
    assert differ == []
    assert H.decode_header("=?utf-8?q?caf=C3=A9?= =?utf-8?q?x?=") == [(b"caf\xc3\xa9x", "utf-8")]


@pytest.mark.parametrize("value", [
    "=?koi8-r?B?8?9D" * 7_000,  # word starts and no "?=" after them (the fuzzer's file name)
    "=?" * 50_000,
    "=?a\n?q?x" * 12_500,  # a charset across a line break: the whole value is looked at
    ("=?a?q?" + "x" * 50 + "\n") * 1_800,
])
def test_encoded_words_are_decoded_in_linear_time(value: str) -> None:
    """100 KB values (Postfix's default header_size_limit): the standard library's decoder
    took 2.9 s CPU on the first one, ours takes milliseconds; the MIME view reads a file name
    of it, the message log's subject and Sieve's header tests decode the same way."""
    import time

    t0 = time.process_time()
    H.decode_header(value)
    H.decode_words(value)
    assert time.process_time() - t0 < 0.5
    raw = with_attachment(b"x", "a.txt", name_param=value[:100_000])
    t0 = time.process_time()
    parse_message(raw)
    assert time.process_time() - t0 < 1.0


@pytest.mark.parametrize(("value", "want"), [
    ("Grüße =?utf-8?q?aus_Bonn?=", "Grüße aus Bonn"),  # text beside an encoded word kept as it is
    ("Gr\udcfc\udcdfe =?utf-8?q?aus_Bonn?=", "Grüße aus Bonn"),  # raw Latin-1 bytes (surrogate escapes)
    ("Gr\udcc3\udcbc\udcc3\udc9fe =?utf-8?q?aus_Bonn?=", "Grüße aus Bonn"),  # raw UTF-8 bytes
    ("Привет =?iso-8859-1?q?caf=E9?=", "Привет café"),  # above U+00FF beside a word
    ("a\\u00e9 =?utf-8?q?x?=", "a\\u00e9 x"),  # a backslash in the text stays one
    ("Rechnung_M\udce4rz.pdf", "Rechnung_März.pdf"),  # no encoded word: raw bytes read alone
    ("a =?idna?q?=FF=FE?= b", "a \ufffd\ufffd b"),  # a codec without "replace": that word as UTF-8
    # folded: unfolded first (decode_header dropped the white space that starts a line:
    # "[SPAM]Grüße ausBonn"); between two encoded words it goes, as RFC 2047 says
    ("[SPAM]\n =?utf-8?b?R3LDvMOfZQ==?= aus\r\n\t=?utf-8?q?Bonn?=", "[SPAM] Grüße aus\tBonn"),
    ("x\n =?utf-8?q?a?=\n =?utf-8?q?b?=", "x ab"),
])
def test_decode_words_keeps_the_text_beside_encoded_words(value: str, want: str) -> None:
    """Decoded as ASCII (make_header's way), each non-ASCII character outside the encoded
    words came out as U+FFFD, and raw 8-bit bytes as backslash escapes."""
    assert H.decode_words(value) == want


@pytest.mark.parametrize("charset", ["idna", "punycode", "utf-8\x00", "no-such-charset"])
def test_rfc2231_values_in_a_charset_the_codecs_refuse_read_as_utf8(charset: str) -> None:
    """``name*=idna''%ff...``: the codec takes no "replace" (UnicodeError), a NUL in its name
    is a ValueError; only an unknown name (LookupError) was read as UTF-8. The exception made
    the MIME view skip the part as UNPARSEABLE: its file name went unread by the attachment
    checks, and the message took mimecheck's points for it."""
    got = H.rfc2231_params([("filename*", f"{charset}''%ff%fe.exe")])
    assert got == {"filename": "\ufffd\ufffd.exe"}


def test_an_attachment_named_in_such_a_charset_is_read() -> None:
    raw = (b"From: a@b.example\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
           b"--XX\r\nContent-Type: text/plain\r\n\r\nhi\r\n--XX\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Disposition: attachment; filename*=idna''%ff%fe.exe\r\n\r\nMZ\r\n--XX--\r\n")
    view = parse_message(raw)
    assert [p.filename for p in view.parts][1:] == ["\ufffd\ufffd.exe"] and not view.ambiguities


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_a_boundary_folded_inside_its_quotes_is_read_unfolded(eol: bytes) -> None:
    # RFC 5322 2.2.3: unfolding takes the line break away and keeps the white space, so the
    # boundary is "simple boundary"; the standard library kept the line break in it, found no
    # delimiter and read the whole body as one text part (an attachment a mail reader shows
    # was never seen by the attachment and content filters)
    raw = eol.join([b"From: a@sender.test", b"Subject: x", b"MIME-Version: 1.0",
                    b'Content-Type: multipart/mixed; boundary="simple', b' boundary"', b"",
                    b"preamble", b"--simple boundary", b"Content-Type: text/plain", b"", b"hello",
                    b"--simple boundary", b"Content-Type: application/octet-stream",
                    b'Content-Disposition: attachment; filename="setup.exe"', b"Content-Transfer-Encoding: base64",
                    b"", b"TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAA", b"--simple boundary--", b""])
    v = parse_message(raw)
    assert [p.content_type for p in v.parts] == ["text/plain", "application/octet-stream"]
    assert [p.filename for p in v.attachments] == ["setup.exe"] and v.parts[1].payload.startswith(b"MZ")
    assert not v.ambiguities  # (a lawful form: no parser that unfolds reads it otherwise)
    assert H.boundary_candidates(['multipart/mixed; boundary="simple\r\n boundary"']) == ["simple boundary"]
