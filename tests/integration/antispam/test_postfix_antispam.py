"""Anti-spam through a real Postfix and the real milter daemon: greylisting (first attempt
451 4.7.1, retry after the delay delivered), GTUBE refused by the score threshold, and
SpamAssassin-style headers on delivered mail: forged X-Spam-* headers removed, every copy of
them (Postfix deletes one occurrence per milter request), and a folded X-Spam-Status whose
continuation lines end in CRLF, not CR CR LF; a tagged subject with a word longer than any
line arrives in lines of at most 998 octets and reads as it was sent."""

from __future__ import annotations

import time
from collections.abc import Iterator
from copy import deepcopy
from typing import Any

import pytest

from tests.mailstack import MailStack, mail_stack
from tests.services import wait_until

pytestmark = pytest.mark.integration

POLICY: dict[str, Any] = {
    "gateway": {"hostname": "mx.example.com"},
    "settings": {
        "antivirus": {"mode": "off"},
        # the Debian rule set is covered by the unit tier; keep this stack fast with a few local
        # rules (set in the fixture) whose long names make X-Spam-Status fold
        "rules": {"include_default": False},
        "greylist": {"mode": "off"},
    },
    "domains": [{"name": "example.com"},
                {"name": "grey.example", "settings": {"greylist": {"mode": "on", "delay": 2, "retry_window": 600}}},
                # every message with the folding rule's 0.1 points is tagged, none held
                {"name": "tag.example", "settings": {"scoring": {"tag_score": 0.05, "quarantine_score": 50,
                                                                 "reject_score": 60, "subject_tag": "[SPAM]",
                                                                 "add_report": True}}}],
}
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
FOLD_RULES = [f"LOCAL_FOLDING_TEST_RULE_WITH_A_LONG_NAME_{i}" for i in range(1, 5)]
FORGED = ("X-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=50.0 required=5.0 tests=FORGED_ONE\r\n"
          "x-spam-flag: YES\r\nX-SPAM-STATUS: Yes, score=50.0 required=5.0 tests=FORGED_TWO\r\n")


def msg(subject: str, body: str = "Hello there.\r\n", to: str = "bob@example.com",
        forged: str = "X-Spam-Flag: YES\r\n") -> str:
    return (f"From: Alice <alice@outside.test>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@outside.test>\r\nDate: Sat, 28 Nov 2026 09:00:00 +0000\r\n"
            f"{forged}\r\n{body}")


@pytest.fixture(scope="module")
def stack() -> Iterator[MailStack]:
    with mail_stack() as s:
        rules = s.root / "rules"
        rules.mkdir()
        (rules / "10_folding.cf").write_text("".join(f"body {r} /foldingtoken/\nscore {r} 0.1\n" for r in FOLD_RULES))
        doc = deepcopy(POLICY)
        doc["settings"]["rules"]["rule_dirs"] = [str(rules)]
        s.import_policy(doc)
        yield s


def test_it_greylists_the_first_attempt_and_delivers_the_retry(stack: MailStack) -> None:
    code, text, refused = stack.send("alice@outside.test", ["carol@grey.example"], msg("grey one", to="carol@grey.example"))
    assert code == 451 and "4.7.1" in text and "Greylisted" in text, text
    code, text, _ = stack.send("alice@outside.test", ["carol@grey.example"], msg("grey one", to="carol@grey.example"))
    assert code == 451, "a retry before the delay is still deferred"
    time.sleep(2.5)
    code, text, _ = stack.send("alice@outside.test", ["carol@grey.example"], msg("grey one", to="carol@grey.example"))
    assert code == 250, text
    wait_until(lambda: stack.sink.find(b"Subject: grey one"), timeout=30)


def test_it_does_not_greylist_domains_without_it(stack: MailStack) -> None:
    code, text, _ = stack.send("alice@outside.test", ["bob@example.com"], msg("not grey"))
    assert code == 250, text


def test_it_refuses_gtube_and_labels_delivered_mail(stack: MailStack) -> None:
    code, text, _ = stack.send("alice@outside.test", ["bob@example.com"], msg("gtube", GTUBE + "\r\n"))
    assert code == 550 and "rejected as spam" in text, text
    code, text, _ = stack.send("alice@outside.test", ["bob@example.com"], msg("labelled"))
    assert code == 250, text
    wait_until(lambda: stack.sink.find(b"Subject: labelled"), timeout=30)
    [m] = stack.sink.find(b"Subject: labelled")
    assert m.message.get_all("X-Spam-Flag") is None  # the sender's forged flag is gone
    status = m.message["X-Spam-Status"]
    assert status is not None and status.startswith("No, score=") and "required=5.0" in status


def test_it_removes_every_forged_copy_and_folds_the_status_with_crlf(stack: MailStack) -> None:
    code, text, _ = stack.send("alice@outside.test", ["bob@example.com"],
                               msg("two forged", "Hello, foldingtoken.\r\n", forged=FORGED))
    assert code == 250, text
    wait_until(lambda: stack.sink.find(b"Subject: two forged"), timeout=30)
    [m] = stack.sink.find(b"Subject: two forged")
    head = m.data.split(b"\r\n\r\n", 1)[0]
    assert b"FORGED_" not in head and b"50.0" not in head, head
    assert m.message.get_all("X-Spam-Flag") is None
    [status] = m.message.get_all("X-Spam-Status")
    assert status.startswith("No, score=") and all(r in status for r in FOLD_RULES), status
    # folded: a continuation line follows, and no header line carries a stray CR
    lines = head.split(b"\r\n")
    at = next(i for i, line in enumerate(lines) if line.startswith(b"X-Spam-Status: No, score="))
    assert lines[at + 1].startswith(b"\t"), head
    assert b"\r\r" not in head and b"\n" not in head.replace(b"\r\n", b""), head


def test_it_signs_outbound_envelope_senders_with_batv_through_chgfrom() -> None:
    doc = {"gateway": {"hostname": "mx.example.com"},
           "settings": {"antivirus": {"mode": "off"}, "rules": {"mode": "off"}, "backscatter": {"mode": "on"}},
           "domains": [{"name": "example.com"}], "trusted_networks": ["127.0.0.0/8"]}
    with mail_stack() as s:
        s.import_policy(doc)
        code, text, _ = s.send("alice@example.com", ["carol@remote.test"], msg("outbound batv", to="carol@remote.test"))
        assert code == 250, text
        wait_until(lambda: s.sink.find(b"Subject: outbound batv"), timeout=30)
        [m] = s.sink.find(b"Subject: outbound batv")
        assert m.mail_from.startswith("prvs=1") and m.mail_from.endswith("=alice@example.com"), m.mail_from
        # the bounce of that message comes back to the tagged address: accepted, and delivered to
        # alice herself; a bounce without the tag (backscatter of a forgery) is refused. Bounces
        # come from outside (one from a trusted network is not judged): 127.0.0.1 no longer trusted
        s.import_policy({**doc, "trusted_networks": []})
        dsn = ("From: MAILER-DAEMON@remote.test\r\nTo: {to}\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
               'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
               "--b\r\nContent-Type: text/plain\r\n\r\nundeliverable\r\n--b--\r\n")
        code, text, _ = s.send("", [m.mail_from], dsn.format(to=m.mail_from, subject="real bounce").encode())
        assert code == 250, text
        wait_until(lambda: s.sink.find(b"Subject: real bounce"), timeout=30)
        [b] = s.sink.find(b"Subject: real bounce")
        assert b.rcpts == ["alice@example.com"], b.rcpts
        code, text, _ = s.send("", ["alice@example.com"], dsn.format(to="alice@example.com", subject="forged").encode())
        assert code == 550, text
        # a bounce for the tagged address and an untagged one in one transaction: the untagged
        # recipient is deferred (452 4.5.3, to come again on its own, and be refused then), and
        # the bounce reaches alice instead of being refused whole
        code, text, refused = s.send("", [m.mail_from, "bob@example.com"],
                                     dsn.format(to=m.mail_from, subject="mixed bounce").encode())
        assert code == 250, text
        assert refused["bob@example.com"][0] == 452 and b"4.5.3" in refused["bob@example.com"][1], refused
        wait_until(lambda: s.sink.find(b"Subject: mixed bounce"), timeout=30)
        [b] = s.sink.find(b"Subject: mixed bounce")
        assert b.rcpts == ["alice@example.com"], b.rcpts


def test_a_tagged_subject_with_a_word_longer_than_any_line_reads_as_sent(stack: MailStack) -> None:
    import email.header

    word = "Unsubscribe" + "x" * 1200  # (Postfix's own 998-octet cut would put a space inside it)
    code, text, _ = stack.send("alice@outside.test", ["carol@tag.example"],
                               msg(f"longword {word} end", "Hello, foldingtoken.\r\n", to="carol@tag.example"))
    assert code == 250, text
    wait_until(lambda: stack.sink.find(b"longword"), timeout=30)
    [m] = stack.sink.find(b"longword")
    head = m.data.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    raw = m.message["Subject"]
    shown = str(email.header.make_header(email.header.decode_header(str(raw).replace("\r\n", "").replace("\n", ""))))
    assert shown == f"[SPAM] longword {word} end", shown[:200]
    assert str(raw).startswith("[SPAM] longword")  # the tag and the other words stay plain
    # tagged where it stood (changed in place through Postfix's cleanup, not deleted and added
    # at the end): between To and Message-ID as sent
    names = [n.lower() for n in m.message]
    assert names.index("to") < names.index("subject") < names.index("message-id"), names


def test_the_report_reaches_the_mailbox_as_spamassassin_writes_it(stack: MailStack) -> None:
    """X-Spam-Report through Postfix's cleanup: an empty first line, then a tab-indented line per
    symbol (SpamAssassin's _REPORT_ with report_safe 0), CRLF line ends only."""
    code, text, _ = stack.send("alice@outside.test", ["dave@tag.example"],
                               msg("report please", "Hello, foldingtoken.\r\n", to="dave@tag.example"))
    assert code == 250, text
    wait_until(lambda: stack.sink.find(b"report please"), timeout=30)
    [m] = stack.sink.find(b"report please")
    head = m.data.split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n")
    at = next(i for i, line in enumerate(lines) if line.startswith(b"X-Spam-Report:"))
    assert lines[at].rstrip() == b"X-Spam-Report:", head
    entries = []
    for line in lines[at + 1:]:
        if not line.startswith(b"\t"):
            break
        entries.append(line)
    assert all(e.startswith(b"\t* ") for e in entries), head
    assert {f"\t*  0.1 {r}".encode() for r in FOLD_RULES} <= set(entries), head
    assert b"\r\r" not in head and b"\n" not in head.replace(b"\r\n", b""), head


def test_it_removes_a_forged_flag_written_with_white_space_before_its_colon(stack: MailStack) -> None:
    # RFC 5322's obsolete syntax, which Postfix accepts: it hands the milter the name without
    # the white space, and finds the field again by that name when asked to delete it
    forged = "X-Spam-Flag : YES\r\nX-Spam-Status\t: Yes, score=50.0 required=5.0 tests=FORGED_SPACED\r\n"
    code, text, _ = stack.send("alice@outside.test", ["bob@example.com"], msg("spaced forged", forged=forged))
    assert code == 250, text
    wait_until(lambda: stack.sink.find(b"Subject: spaced forged"), timeout=30)
    [m] = stack.sink.find(b"Subject: spaced forged")
    head = m.data.split(b"\r\n\r\n", 1)[0]
    assert b"FORGED_SPACED" not in head and b"X-Spam-Flag :" not in head and b"YES" not in head, head
    [status] = m.message.get_all("X-Spam-Status")
    assert status.startswith("No, score="), status


def test_a_tagged_recipient_keeps_its_dsn_parameters_when_delivered_untagged() -> None:
    # RCPT TO:<prvs=...=alice@> NOTIFY=SUCCESS,FAILURE ORCPT=...: the milter deletes the tagged
    # recipient and adds alice@ with the same NOTIFY and ORCPT (smfi_addrcpt_par), which Postfix
    # passes on to the next hop (the sink offers DSN)
    doc = {"gateway": {"hostname": "mx.example.com"},
           "settings": {"antivirus": {"mode": "off"}, "rules": {"mode": "off"}, "backscatter": {"mode": "on"}},
           "domains": [{"name": "example.com"}], "trusted_networks": ["127.0.0.0/8"]}
    with mail_stack(sink_dsn=True) as s:
        s.import_policy(doc)
        code, text, _ = s.send("alice@example.com", ["carol@remote.test"], msg("batv dsn out", to="carol@remote.test"))
        assert code == 250, text
        wait_until(lambda: s.sink.find(b"Subject: batv dsn out"), timeout=30)
        [m] = s.sink.find(b"Subject: batv dsn out")
        tagged = m.mail_from
        assert tagged.startswith("prvs="), tagged
        s.import_policy({**doc, "trusted_networks": []})
        orcpt = "ORCPT=rfc822;" + tagged.replace("=", "+3D")
        code, text, _ = s.send("carol@remote.test", [tagged], msg("batv dsn reply", to=tagged),
                               rcpt_options={tagged: ["NOTIFY=SUCCESS,FAILURE", orcpt]})
        assert code == 250, text
        wait_until(lambda: s.sink.find(b"Subject: batv dsn reply"), timeout=30)
        [r] = s.sink.find(b"Subject: batv dsn reply")
        assert r.rcpts == ["alice@example.com"], r.rcpts
        params = r.rcpt_params["alice@example.com"]
        assert "NOTIFY=SUCCESS,FAILURE" in params, params
        assert [p.upper() for p in params if p.upper().startswith("ORCPT=")] == [orcpt.upper()], params
