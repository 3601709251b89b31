"""The subject tag after an admin script's header edits. The policy's own edits (Sieve
editheader: an ``[EXT]`` mark on the Subject of outside mail, say) reach the MTA before the
transforms' edits, but the transforms were computed on the message as received: the spam
headers' delete of "Subject occurrence 1" then removed the script's new Subject, and the tag
went on the original text, so the script's change was lost (with a script that adds a Subject
without deleting one, its copy was deleted and the original kept twice over)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway_milter.context import ConnectionInfo
from gateway_milter.pipeline.transaction import Gateway
from gateway_milter.policy.provider import StaticPolicyProvider
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.store.memory import MemoryStore
from gateway_milter.verdict import Action
from tests.unit.antispam.helpers import write_rules
from tests.unit.sieve.helpers import only_layers
from tests.unit.spine.conftest import apply_like_an_mta

RAW = b"From: Alice <alice@outside.test>\r\nTo: bob@example.com\r\nSubject: Invoice overdue\r\n\r\nspammy\r\n"
EXT = ('require ["editheader", "variables"]; if header :matches "subject" "*" {'
       ' deleteheader "subject"; addheader :last "Subject" "[EXT] ${1}"; }')


class Store:
    def store(self, raw: bytes, meta: dict[str, Any]) -> dict[str, Any]:
        return {**meta, "qid": "q1", "path": "x"}


class Sink:
    def emit(self, record: dict[str, Any]) -> None:
        pass


def test_the_subject_tag_keeps_a_scripts_subject(tmp_path: Path, store: MemoryStore) -> None:
    rules = write_rules(tmp_path, "body LOCAL_SPAMMY /spammy/\nscore LOCAL_SPAMMY 6.0\n")
    settings = only_layers("lists", "direction", "relay", "rules", "scoring")
    settings["rules"] = {"include_default": False, "rule_dirs": [str(rules)]}
    # "score": headers and tag, no quarantine (the message is delivered, tagged)
    settings["scoring"] = {"mode": "score", "layers": ["rules"], "subject_tag": "[SPAM]", "fitted_scores": False}
    doc = {"settings": settings, "domains": [{"name": "example.com"}], "scripts": [{"name": "ext", "source": EXT}]}
    gw = Gateway(StaticPolicyProvider(PolicySnapshot.from_document(doc, 1)), Store(), Sink())
    ctx = gw.begin(ConnectionInfo(client_ip="203.0.113.9", helo="mail.outside.test", client_name="mail.outside.test"))
    gw.mail(ctx, "alice@outside.test")
    gw.rcpt(ctx, "bob@example.com")
    received = []
    for line in RAW.split(b"\r\n\r\n")[0].split(b"\r\n"):
        n, _, v = line.decode().partition(": ")
        ctx.add_header(n, v)
        received.append((n, v))
    ctx.body.write(RAW.split(b"\r\n\r\n", 1)[1])
    dec = gw.eom(ctx)
    assert dec.action is Action.ACCEPT
    delivered = apply_like_an_mta(received, list(dec.header_edits))
    assert [v for n, v in delivered if n.lower() == "subject"] == ["[SPAM] [EXT] Invoice overdue"]
    assert [v for n, v in delivered if n == "X-Spam-Flag"] == ["YES"]
