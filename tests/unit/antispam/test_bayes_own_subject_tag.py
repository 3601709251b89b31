"""A message saved from a mailbox after the gateway flagged it (a junk folder exported for
``bayes train``, a message a user marks) carries the gateway's subject tag: Bayes learned the
tag, which no arriving message has, as the mark of spam. It is taken off a message the gateway
flagged (its own X-Spam-Status: Yes, ... version=Bulwark) before it is learned or forgotten; a
flag of another filter (an upstream X-Spam-Flag: YES) leaves the Subject as it arrived."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command

from gateway_milter.antispam.bayes import message_keys
from gateway_milter.store.memory import MemoryStore
from webadmin.antispam_tasks import without_own_tag

SENT = (b"From: Shop <news@shop.test>\r\nTo: bob@example.com\r\nSubject: Cheap watches for you\r\n"
        b"Message-ID: <w1@shop.test>\r\nDate: Mon, 30 Nov 2026 10:00:00 +0000\r\n\r\nBuy cheap watches now.\r\n")


def flagged(raw: bytes, subject: bytes) -> bytes:
    """The message as the gateway delivered it to a junk folder: flagged, its subject tagged."""
    head, body = raw.split(b"\r\n\r\n", 1)
    head = head.replace(b"Subject: Cheap watches for you", b"Subject: " + subject)
    return (b"X-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=9.1 required=5.0 tests=A,B autolearn=no\r\n"
            b"\tversion=Bulwark\r\n"
            + head + b"\r\n\r\n" + body)


def learned_again(tmp: Path, arrived: bytes, copy: bytes) -> str:
    """``bayes train --spam`` the message as it arrived, then its mailbox copy: what the second
    run says."""
    (tmp / "arrived.eml").write_bytes(arrived)
    (tmp / "copy.eml").write_bytes(copy)
    call_command("bayes", "train", "--spam", str(tmp / "arrived.eml"), stdout=io.StringIO(), stderr=io.StringIO())
    out = io.StringIO()
    call_command("bayes", "train", "--spam", str(tmp / "copy.eml"), stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


OWN = ("X-Spam-Status", "Yes, score=9.1 required=5.0 tests=A,B autolearn=no\n\tversion=Bulwark")
OWN_NO = ("X-Spam-Status", "No, score=1.1 required=5.0 tests=A,B autolearn=no version=Bulwark")
FOREIGN = ("X-Spam-Status", "Yes, score=9.1 required=5.0 tests=A,B autolearn=no version=4.0.1")


@pytest.mark.parametrize(("headers", "subject"), [
    ([("X-Spam-Flag", "YES"), OWN, ("Subject", "[SPAM] Cheap watches")], "Cheap watches"),
    ([("X-Spam-Flag", "yes "), OWN, ("Subject", "  [SPAM]   Cheap watches")], "Cheap watches"),
    ([("X-Spam-Flag", "YES"), OWN, ("Subject", "=?UTF-8?Q?[SPAM]_Gr=C3=BC=C3=9Fe?=")], "Grüße"),
    ([("X-Spam-Flag", "YES"), OWN, ("Subject", "***SPAM*** Cheap watches")], "Cheap watches"),  # a domain's tag
    ([OWN_NO, ("Subject", "[SPAM] Cheap watches")], "[SPAM] Cheap watches"),  # not flagged
    ([("Subject", "[SPAM] Cheap watches")], "[SPAM] Cheap watches"),
    ([("X-Spam-Flag", "YES"), OWN, ("Subject", "Re: [SPAM] Cheap watches")], "Re: [SPAM] Cheap watches"),
    # another filter's verdict (a copy held as it arrived): the gateway tagged nothing
    ([("X-Spam-Flag", "YES"), ("Subject", "[SPAM] Cheap watches")], "[SPAM] Cheap watches"),
    ([("X-Spam-Flag", "YES"), FOREIGN, ("Subject", "[SPAM] Cheap watches")], "[SPAM] Cheap watches"),
    # the gateway's X-Bulwark-Result says whose the tag is: it arrived tagged ("kept"), or the
    # gateway tagged it ("added"); without the field (a copy delivered before it), the gateway's
    ([OWN, ("X-Bulwark-Result", f"quarantine; score=9.10; host=gw; id=1; subject_tag=kept; symbols={'A, B'}"),
      ("Subject", "[SPAM] Cheap watches")], "[SPAM] Cheap watches"),
    ([OWN, ("X-Bulwark-Result", "accept; score=9.10; host=gw; id=1; subject_tag=added; symbols=A"),
      ("Subject", "[SPAM] Cheap watches")], "Cheap watches"),
    ([OWN, ("X-Bulwark-Result", "accept; score=9.10; host=gw; id=1; symbols=A"),
      ("Subject", "[SPAM] Cheap watches")], "Cheap watches"),
])
def test_it_takes_the_tag_off_a_flagged_subject_only(headers: list[tuple[str, str]], subject: str) -> None:
    out = dict(without_own_tag(headers, ("***SPAM***", "[SPAM]")))
    assert out["Subject"] == subject
    assert without_own_tag(headers, ()) == headers  # no tag configured: nothing to take off


@pytest.mark.django_db
def test_a_tagged_copy_is_learned_as_the_message_that_arrived(tmp_path: Path, store: MemoryStore) -> None:
    from webadmin.antispam_tasks import own_subject_tags, view_of_bytes
    from webadmin.services import do_publish_policy, do_set_layer_settings

    do_set_layer_settings("scoring", {"subject_tag": "[SPAM]"})
    do_publish_policy("test")
    from webadmin.services import current_snapshot

    assert own_subject_tags(current_snapshot()) == ("[SPAM]",)
    tagged = flagged(SENT, b"[SPAM] Cheap watches for you")
    # the same features as the message the milter saw (the X-Spam-* headers are never read)
    assert message_keys(view_of_bytes(tagged)).keys == message_keys(view_of_bytes(SENT)).keys
    assert learned_again(tmp_path, SENT, tagged) == "learned 0 message(s), 1 already known"



@pytest.mark.django_db
def test_a_subject_that_arrived_tagged_is_learned_as_it_arrived(tmp_path: Path, store: MemoryStore) -> None:
    """The sender (or an upstream filter of the same tag) wrote "[SPAM] " already: the gateway
    does not tag it again, says so in X-Bulwark-Result, and training keeps the Subject: the
    junk folder's copy is the message autolearn learned (before: the tag was taken off, and the
    one message was learned twice)."""
    from gateway_milter.transforms import loaded
    from gateway_milter.verdict import Outcome
    from tests.unit.antispam.helpers import make_ctx, policy, write_rules
    from tests.unit.spine.conftest import apply_like_an_mta
    from webadmin.services import do_publish_policy, do_set_layer_settings

    do_set_layer_settings("scoring", {"subject_tag": "[SPAM]"})
    do_publish_policy("test")
    rules = write_rules(tmp_path, "body LOCAL_WATCHES /cheap watches/i\nscore LOCAL_WATCHES 6.0\n")
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(rules)]},
                  "scoring": {"layers": ["rules"], "subject_tag": "[SPAM]"}})

    def delivered(raw: bytes) -> bytes:
        ctx = make_ctx(raw, pol)
        edits = [e for t in loaded() for r in [t(ctx, Outcome.accept(), None)] if r for e in r.header_edits]  # type: ignore[arg-type]
        head = apply_like_an_mta(ctx.headers, edits)
        return b"".join(f"{n}: {v}\r\n".encode() for n, v in head) + b"\r\n" + raw.split(b"\r\n\r\n", 1)[1]

    pre = SENT.replace(b"Subject: Cheap watches for you", b"Subject: [SPAM] Cheap watches for you")
    copy = delivered(pre)
    assert b"subject_tag=kept" in copy and b"Subject: [SPAM] Cheap watches for you\r\n" in copy
    assert learned_again(tmp_path, pre, copy) == "learned 0 message(s), 1 already known"
    # the gateway's own tag is still taken off
    copy = delivered(SENT)
    assert b"subject_tag=added" in copy and b"Subject: [SPAM] Cheap watches for you\r\n" in copy
    assert learned_again(tmp_path, SENT, copy) == "learned 0 message(s), 1 already known"
