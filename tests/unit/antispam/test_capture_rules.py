"""SpamAssassin 4's capture rules: a rule's named group (``(?<NAME>...)``) sets a tag where it
matches, and a rule whose expression holds ``%{NAME}`` runs with the tag's values in its place
(Perl-quoted), or not at all while the tag is unset. Checked on the lazy path, the reference
path and through Hyperscan, and with Debian's GB_CUSTOM_HTM_URI (a link that carries the
recipient's own address, a phishing form's mark)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.antispam import hsmatch
from gateway_milter.antispam.engine import RuleEngine
from gateway_milter.antispam.sarules import DEFAULT_DIRS, load_rules
from gateway_milter.antispam.saview import message_view
from tests.unit.antispam.helpers import make_ctx, write_rules

RULES = r"""
header   __TO_ADDR    To:addr =~ /(?<TO_ADDR>.*)/
uri      URI_HAS_TO   m|^https?://.{4,64}[\#?/=]%{TO_ADDR}$|i
score    URI_HAS_TO   2.0
body     BODY_HAS_TO  /dear %{TO_ADDR}\b/i
score    BODY_HAS_TO  1.0
header   SUBJ_HAS_TO  Subject =~ /%{TO_ADDR}/
score    SUBJ_HAS_TO  0.5
header   __SUBJ_WORD  Subject =~ /invoice (?<INVOICE_NO>\d+)/
body     BODY_INVOICE /ref\W+%{INVOICE_NO}/
score    BODY_INVOICE 1.0
uri      NO_SUCH_TAG  m|%{NEVER_CAPTURED}|
score    NO_SUCH_TAG  1.0
header   EXISTS_TAG   exists:%{TO_ADDR}
score    EXISTS_TAG   1.0
uri      ARG_TAG      m|%{TO_ADDR(x)}|
score    ARG_TAG      1.0
"""


def _msg(to: str, subject: str, body: str) -> bytes:
    head = f"From: Alice <alice@sender.test>\r\nSubject: {subject}\r\n" + (f"To: {to}\r\n" if to else "")
    return (head + "Message-ID: <1@sender.test>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n" + body + "\r\n").encode()


def _engine(tmp_path: Path, rules: str = RULES, hs: bool = False) -> RuleEngine:
    return RuleEngine(load_rules([write_rules(tmp_path, rules)], 2), hs_cache=tmp_path / "cache" if hs else None)


def _hits(eng: RuleEngine, raw: bytes) -> dict[str, set[str]]:
    view = message_view(make_ctx(raw))
    lazy = {h.name for h in eng.run(view).hits}
    reference = {h.name for h in eng.run(message_view(make_ctx(raw)), lazy=False).hits}
    return {"lazy": lazy, "reference": reference}


def test_template_rules_load_with_their_capture_rules(tmp_path: Path) -> None:
    eng = _engine(tmp_path)
    assert {"URI_HAS_TO", "BODY_HAS_TO", "SUBJ_HAS_TO", "BODY_INVOICE"} <= set(eng.rules)
    assert eng.rules["URI_HAS_TO"].deps == ("__TO_ADDR",)  # the capture rule runs because its reader does
    assert "__TO_ADDR" in eng.rules and "__SUBJ_WORD" in eng.rules
    # a tag no rule captures: listed, never run
    assert "NO_SUCH_TAG" in eng.unsupported and "NEVER_CAPTURED" in eng.unsupported["NO_SUCH_TAG"]
    # a template where no expression is, and a tag with arguments: listed, never run
    assert "outside a regular expression" in eng.unsupported["EXISTS_TAG"]
    assert "arguments" in eng.unsupported["ARG_TAG"]


def test_a_template_reads_the_captured_value(tmp_path: Path) -> None:
    eng = _engine(tmp_path)
    raw = _msg("victim@example.com", "Your mailbox",
               "Dear victim@example.com, log in at https://login.evil-site.com/index.html#victim@example.com")
    got = _hits(eng, raw)
    assert got["lazy"] == got["reference"] == {"URI_HAS_TO", "BODY_HAS_TO"}


def test_another_address_or_none_does_not_hit(tmp_path: Path) -> None:
    eng = _engine(tmp_path)
    other = _msg("someone@example.com", "Your mailbox",
                 "Dear victim@example.com, log in at https://login.evil-site.com/index.html#victim@example.com")
    assert _hits(eng, other) == {"lazy": set(), "reference": set()}
    # no To: the tag is never set (an empty capture is dropped), so no template rule runs
    none = _msg("", "Your mailbox", "Dear , log in at https://login.evil-site.com/index.html#")
    assert _hits(eng, none) == {"lazy": set(), "reference": set()}


def test_the_value_is_quoted_not_read_as_an_expression(tmp_path: Path) -> None:
    eng = _engine(tmp_path)
    # "a+b.c" as an expression would match "aab-c"; quoted, only the text itself
    quoted = _msg("a+b.c@example.com", "a+b.c@example.com", "nothing")
    assert _hits(eng, quoted)["lazy"] == {"SUBJ_HAS_TO"}
    loose = _msg("a+b.c@example.com", "aab-c@example.com", "nothing")
    assert _hits(eng, loose) == {"lazy": set(), "reference": set()}


def test_every_address_of_the_first_match_and_a_second_tag(tmp_path: Path) -> None:
    eng = _engine(tmp_path)
    # To:addr holds two addresses: the capture (not multiple) is the first match's, as there
    two = _msg("first@example.com, second@example.com", "hi", "dear second@example.com")
    assert _hits(eng, two)["lazy"] == set()
    first = _msg("first@example.com, second@example.com", "hi", "dear first@example.com")
    assert _hits(eng, first)["lazy"] == {"BODY_HAS_TO"}
    invoice = _msg("x@example.com", "Your invoice 4711", "Payment ref: 4711 due")
    assert _hits(eng, invoice) == {"lazy": {"BODY_INVOICE"}, "reference": {"BODY_INVOICE"}}
    assert _hits(eng, _msg("x@example.com", "Your invoice 4711", "Payment ref: 4712 due"))["lazy"] == set()


@pytest.mark.skipif(not hsmatch.available(), reason="the hyperscan package is not installed (x86-64 wheels only)")
def test_through_hyperscan_the_same_hits(tmp_path: Path) -> None:
    eng = _engine(tmp_path, hs=True)
    assert eng.hyperscan(None) is not None
    raw = _msg("victim@example.com", "Your mailbox",
               "Dear victim@example.com, log in at https://login.evil-site.com/index.html#victim@example.com")
    assert _hits(eng, raw) == {"lazy": {"URI_HAS_TO", "BODY_HAS_TO"}, "reference": {"URI_HAS_TO", "BODY_HAS_TO"}}
    other = _msg("someone@example.com", "x", "https://login.evil-site.com/index.html#victim@example.com")
    assert _hits(eng, other)["lazy"] == set()


@pytest.mark.skipif(not any(d.is_dir() for d in DEFAULT_DIRS), reason="Debian's spamassassin rules are not installed")
def test_debian_gb_custom_htm_uri(tmp_path: Path) -> None:
    from gateway_milter.layers.rules import RulesSettings, engine_from_settings

    eng = engine_from_settings(RulesSettings())
    assert "GB_CUSTOM_HTM_URI" in eng.rules and "__GB_TO_ADDR" in eng.rules
    assert not [n for n, why in eng.unsupported.items() if "template" in why or "capture" in why]
    raw = _msg("victim@example.com", "Mailbox quota", "Confirm your account: "
               "https://storage.evil-site.com/files/login.html#victim@example.com")
    assert "GB_CUSTOM_HTM_URI" in {h.name for h in eng.run(message_view(make_ctx(raw))).hits}
    other = _msg("someone@example.com", "Mailbox quota", "Confirm your account: "
                 "https://storage.evil-site.com/files/login.html#victim@example.com")
    assert "GB_CUSTOM_HTM_URI" not in {h.name for h in eng.run(message_view(make_ctx(other))).hits}
