"""A ``<meta http-equiv="refresh" content="0; url=...">`` sends the reader's browser on to its
URL, so that URL is one of the message's links: SpamAssassin's HTML::html_uri takes it (type
"meta"), its ``uri`` rules read it and URIDNSBL looks up its domain. Ours read neither: a spam
whose only link was a refresh to a listed domain passed URIBL. The expected hits are what
Debian's spamassassin reported for these rules and messages
(tests/integration/antispam/test_sa_differential.py runs them again)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.antispam.htmltext import render_html
from gateway_milter.antispam.saview import message_view
from gateway_milter.layers.uribl import lookup_targets, message_links
from tests.unit.antispam.helpers import assert_rule_hits, make_ctx

RULES = r"""
uri T_REFRESH_TARGET /refresh-target\.example\/go/
score T_REFRESH_TARGET 0.01
"""
SCORED = ["T_REFRESH_TARGET"]


def _html(head: bytes) -> bytes:
    return (b"From: Joe <joe@sender.test>\r\nTo: bob@example.com\r\nSubject: x\r\nMessage-ID: <m1@sender.test>\r\n"
            b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n"
            b"<html><head>" + head + b"</head><body><p>Loading, please wait</p></body></html>\r\n")


MESSAGES = {
    "refresh": (_html(b'<meta http-equiv="refresh" content="0; url=http://refresh-target.example/go">'),
                {"T_REFRESH_TARGET"}),
    "upper_case_and_more_after": (
        _html(b'<META CONTENT="3;URL = http://refresh-target.example/go ; more" HTTP-EQUIV="Refresh">'),
        {"T_REFRESH_TARGET"}),
    "not_a_refresh": (_html(b'<meta http-equiv="content-type" content="text/html; url=http://refresh-target.example/go">'),
                      set()),
    "refresh_without_url": (_html(b'<meta http-equiv="refresh" content="30">'), set()),
}


@pytest.mark.parametrize(("content", "want"), [
    ("0; url=http://a.example/x", ["http://a.example/x"]),
    ("5;URL=http://a.example/x;y", ["http://a.example/x"]),
    ("0; url=http://a.example/?u=1 ;x", ["http://a.example/?u=1"]),
    ("url=http://a.example/ x; url=http://b.example/", ["http://b.example/"]),  # the last url= on the line
    ("30", []),
])
def test_a_refresh_url_is_an_html_uri(content: str, want: list[str]) -> None:
    facts = render_html(f'<html><head><meta http-equiv="refresh" content="{content}"></head><body>x</body></html>')
    assert facts.uris == want
    assert facts.uri_kinds == ["other"] * len(want)


def test_uribl_looks_up_the_refresh_target() -> None:
    view = message_view(make_ctx(MESSAGES["refresh"][0]))
    links = [u for _, u in message_links(view)]
    assert "http://refresh-target.example/go" in links
    assert lookup_targets(message_links(view), set(), 20) == ["refresh-target.example"]


def test_uri_rules_read_the_refresh_target(tmp_path: Path) -> None:
    assert_rule_hits(tmp_path, RULES, SCORED, MESSAGES)
