"""The rules read header addresses and names with SpamAssassin's own parser
(Mail::SpamAssassin::Util::_parse_header_addresses), not the standard library's, which read
malformed values otherwise: a source route, ``a@[1], [b]@example.com`` (Debian's FROM_ADDR_WS and
HEADER_FROM_DIFFERENT_DOMAINS fired where SpamAssassin's did not), ``<a@b>junk`` lists. The
expected pairs are what Debian's spamassassin 4.0.1 parser returned for these values
(tests/integration/antispam/test_sa_differential.py asks it again)."""

from __future__ import annotations

from gateway_milter.antispam.saaddr import parse_addresses
from gateway_milter.antispam.saview import message_view
from tests.unit.antispam.helpers import make_ctx

# raw value (as after the colon) -> SpamAssassin's (phrase, address) pairs
CASES: dict[str, list[tuple[str | None, str | None]]] = {
    " <@test.com, @test.ru:test@attack.com>": [],
    " Name <@a.example,@b.example:u@c.example>": [("Name ", None)],
    " zvfjenphuq@[1086695621], [ufa]@netnoteinc.com": [(None, "zvfjenphuq@[1086695621]"), ("[ufa]@netnoteinc.com", None)],
    " ndtuftrzzsglsvnz@uksyz@21cn.com": [(None, "ndtuftrzzsglsvnz@uksyz")],
    " <a@b.net>c.com, <d@e.net>c.com": [(None, "a@b.net"), (None, "d@e.net")],
    ' "Bob, Smith" <bob@x.example>': [("Bob, Smith ", "bob@x.example")],
    " Bob (comment) <bob@x.example>": [("Bob  ", "bob@x.example")],
    " bob@x.example (Bob Smith)": [("Bob Smith", "bob@x.example")],
    " Group: a@b.example, c@d.example;": [(None, "a@b.example"), (None, "c@d.example")],
    " undisclosed-recipients:;": [],
    ' "" <x@y.example>': [(" ", "x@y.example")],
    " Alice <alice@x.example>, bob@y.example": [("Alice ", "alice@x.example"), (None, "bob@y.example")],
    " Bob <bob@x.example> <bob2@x.example>": [("Bob ", "bob@x.example")],
    ' "quoted\\"x" <q@x.example>': [('quoted"x ', "q@x.example")],
    " noaddress": [("noaddress", None)],
    " <>": [(None, None)],
}


def test_it_parses_as_spamassassin_does() -> None:
    for value, expected in CASES.items():
        assert parse_addresses(value) == expected, value


def test_the_view_reads_from_addr_and_name_with_it() -> None:
    raw = (b"From: zvfjenphuq@[1086695621], [ufa]@netnoteinc.com\r\nTo: <a@b.net>c.com, <d@e.net>c.com\r\n"
           b"Subject: x\r\n\r\nhi\r\n")
    m = message_view(make_ctx(raw))
    assert m.rule_header("From:addr") == "zvfjenphuq@[1086695621]"  # (no white space: FROM_ADDR_WS)
    assert m.rule_header("From:name") == "[ufa]@netnoteinc.com"
    assert m.rule_header("To:addr") == "a@b.net\nd@e.net"
