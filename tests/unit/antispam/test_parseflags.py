"""The flags of SpamAssassin's message parser (parseflags.py) that MIMEEval's
check_msg_parse_flags reads: each set where Mail::SpamAssassin::Message sets it and not
elsewhere, on hand-made messages; the eval through the rules engine; hostile shapes bounded."""

from __future__ import annotations

import base64
import time
from pathlib import Path

from gateway_milter.antispam.engine import RuleEngine
from gateway_milter.antispam.parseflags import parse_flags
from gateway_milter.antispam.sarules import load_rules
from gateway_milter.antispam.saview import message_view
from tests.unit.antispam.helpers import make_ctx, write_rules

HEAD = "From: a@example.com\nTo: b@example.com\nSubject: s\nMIME-Version: 1.0\n"


def multipart(parts: str, epilogue: str = "", crlf: bool = False) -> str:
    text = HEAD + 'Content-Type: multipart/mixed; boundary="XX"\n\npreamble\n' + parts + "--XX--\n" + epilogue
    return text.replace("\n", "\r\n") if crlf else text


GOOD_PART = "--XX\nContent-Type: text/plain\n\nhello\n"


def test_a_well_formed_message_sets_no_flag() -> None:
    assert parse_flags(multipart(GOOD_PART + GOOD_PART)) == frozenset()
    assert parse_flags(multipart(GOOD_PART, crlf=True)) == frozenset()
    assert parse_flags(HEAD + "\nplain text\n") == frozenset()
    # an epilogue of white space and dots is none (the ham SpamAssassin saw ends that way)
    assert parse_flags(multipart(GOOD_PART, epilogue="\n.\n  \n")) == frozenset()


def test_an_epilogue() -> None:
    assert parse_flags(multipart(GOOD_PART, epilogue="This is the epilogue.\n")) == {"mime_epilogue_exists"}
    assert parse_flags(multipart(GOOD_PART, epilogue="x\n", crlf=True)) == {"mime_epilogue_exists"}


def test_a_boundary_not_followed_by_a_header_field() -> None:
    # after the opening boundary, and after a later one
    assert "missing_mime_headers" in parse_flags(multipart("--XX\nhello without headers\n"))
    assert "missing_mime_headers" in parse_flags(multipart(GOOD_PART + "--XX\n\nno header, empty line\n"))
    # a field with white space before its colon is a field in a part's header section, but not
    # right after a boundary (two expressions in SpamAssassin)
    assert parse_flags(multipart("--XX\nContent-Type : text/plain\n\nhi\n")) == {"missing_mime_headers"}


def test_a_part_header_section_without_its_empty_line() -> None:
    flags = parse_flags(multipart("--XX\nContent-Type: text/plain\nhello, no empty line\nmore\n"))
    assert flags == {"missing_mime_head_body_separator"}
    # a folded field is one field; a part's last line is its body, whatever it looks like
    assert parse_flags(multipart("--XX\nContent-Type: text/plain;\n charset=us-ascii\n\nhi\n")) == frozenset()


def test_the_line_break_before_a_boundary_belongs_to_the_boundary() -> None:
    # the inner multipart's body is "AAA" alone once the boundary's line break is taken off, so
    # its one line is its last and no header section is missing (mime4j's missing-inner-boundary)
    inner = '--XX\nContent-Type: multipart/alternative; boundary="YY"\n\nAAA\n\n'
    assert parse_flags(multipart(GOOD_PART + inner)) == frozenset()


def test_a_folded_boundary_and_an_embedded_message() -> None:
    folded = HEAD + 'Content-Type: multipart/mixed; boundary="simple\n boundary"\n\n--simple boundary\n\nhi\n' \
        "--simple boundary--\nepilogue\n"
    assert parse_flags(folded) == {"missing_mime_headers", "mime_epilogue_exists"}
    inner = multipart(GOOD_PART, epilogue="inner epilogue\n")
    encoded = base64.encodebytes(inner.encode()).decode()
    outer = ("Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\nSubject: wrapped\n\n" + encoded)
    assert parse_flags(outer) == {"mime_epilogue_exists"}  # the embedded message's parts are parsed too


def test_long_fields() -> None:
    assert parse_flags(HEAD + "X-Long: " + "a" * 9000 + "\n\nbody\n") == {"truncated_header"}
    assert parse_flags(HEAD + "X-" + "n" * 300 + ": v\n\nbody\n") == {"truncated_header"}
    assert parse_flags(HEAD + "X-Long: " + "a" * 8000 + "\n\nbody\n") == frozenset()


def test_the_header_separator_flag_is_computed_but_not_offered(tmp_path: Path) -> None:
    from gateway_milter.antispam.parseflags import walk_flags

    assert "missing_head_body_separator" in walk_flags(HEAD + "--XX\nbody starts at a boundary\n")
    assert "missing_head_body_separator" not in parse_flags(HEAD + "--XX\nbody starts at a boundary\n")
    rules = ("header HB eval:check_msg_parse_flags('missing_head_body_separator')\nscore HB 1\n"
             "body EPI eval:check_msg_parse_flags('mime_epilogue_exists')\nscore EPI 1\n"
             "body NOHDR eval:check_msg_parse_flags('missing_mime_headers')\nscore NOHDR 1\n")
    eng = RuleEngine(load_rules([write_rules(tmp_path, rules)], 2))
    assert "HB" in eng.unsupported and "MTA" in eng.unsupported["HB"]
    hit = {h.name for h in eng.run(message_view(make_ctx(multipart(GOOD_PART, epilogue="hello\n").encode()))).hits}
    assert hit == {"EPI"}
    clean = {h.name for h in eng.run(message_view(make_ctx(multipart(GOOD_PART).encode()))).hits}
    assert clean == set()


def test_hostile_shapes_stay_bounded() -> None:
    t0 = time.process_time()
    many = multipart("--XX\nContent-Type: text/plain\n\nx\n" * 20000, epilogue="e\n")
    assert "mime_epilogue_exists" not in parse_flags(many)  # past 1,000 parts SpamAssassin stops looking
    nested = HEAD
    for i in range(60):  # 60 levels: SpamAssassin parses 20
        nested += f'Content-Type: multipart/mixed; boundary="B{i}"\n\n--B{i}\n'
    nested += "Content-Type: text/plain\n\ndeep\n"
    parse_flags(nested)
    parse_flags(HEAD + "\n" + "--" * 500000 + "\n")
    assert time.process_time() - t0 < 10


def test_the_short_path_gives_the_walks_flags() -> None:
    # parse_flags skips the walk for a plain header section; every variant below must give the
    # walk's flags (long lines and folded fields near the bound, junk lines, boundaries in the
    # header, Content-Type cases, CRLF and LF, a lone CR line)
    from gateway_milter.antispam.parseflags import OFFERED, walk_flags

    variants = []
    for ending in ("\n", "\r\n"):
        for extra in ("", "X-A: " + "a" * 250 + "\n", "X-A: " + "a" * 251 + "\n", "X-F: a\n " + "b" * 255 + "\n",
                      "junk\n", "--XX\n", "\r\n", "content-type : multipart/mixed; boundary=XX\n",
                      "Content-Type: message/rfc822\n", "X-Content-Type: multipart/mixed\n",
                      "Content-Type: text/plain\n", "X" * 300 + ": v\n"):
            for body in (multipart(GOOD_PART, epilogue="epi\n"), HEAD + "\nbody\n"):
                head, _, rest = body.partition("\n\n")
                variants.append((head + "\n" + extra + "\n" + rest).replace("\n", ending).replace("\r\r", "\r"))
    for v in variants:
        assert parse_flags(v) == walk_flags(v) & OFFERED, repr(v[:300])
    assert any(not walk_flags(v) & OFFERED for v in variants) and any(walk_flags(v) & OFFERED for v in variants)
