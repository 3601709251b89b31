"""``bayes forget`` reads a message as ``bayes train`` read it (the published trust path): the
sender history it takes back is the one training added, not another sender's."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command

from gateway_milter.antispam.bayes import SPAM_UNIT, TOKEN, scope_key
from gateway_milter.antispam.saview import SaMessage, build_view
from gateway_milter.antispam.tokenizer import hashed, sender_key
from gateway_milter.mime.view import parse_message
from gateway_milter.pipeline.rawmessage import split_message
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import msg

# relayed by our front MX (192.0.2.25, a trusted network) from the shop's server
RAW = (b"Received: from front.example.com (front.example.com [192.0.2.25]) by gw.example.com; "
       b"Sat, 28 Nov 2026 10:00:02 +0000\r\n"
       b"Received: from mail.shop.test (mail.shop.test [198.51.100.7]) by front.example.com; "
       b"Sat, 28 Nov 2026 10:00:01 +0000\r\n") + msg("deal", "cheap pills").replace(b"alice@sender.test",
                                                                             b"news@shop.test")
# the same From from another server of the same /16 as our front MX: read without the trust
# path, RAW's sender key would be this message's
NEIGHBOUR = RAW.replace(b"mail.shop.test [198.51.100.7]", b"relay.shop.test [192.0.3.9]").replace(
    b"cheap pills", b"our order confirmation")


def _sender_count(store: MemoryStore, view: SaMessage) -> int:
    key = sender_key(view)
    assert key is not None
    ((n,),) = store.counters([(scope_key("global"), [TOKEN + hashed([key])[0]])])
    return n


def _call(*args: str) -> str:
    out = io.StringIO()
    call_command("bayes", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_forget_takes_back_the_sender_history_training_added(tmp_path: Path, store: MemoryStore) -> None:
    from webadmin.antispam_tasks import view_of_bytes
    from webadmin.models import TrustedNetwork
    from webadmin.services import do_publish_policy

    TrustedNetwork.objects.create(network="192.0.2.0/24")
    do_publish_policy("test")
    (tmp_path / "s.eml").write_bytes(RAW)
    (tmp_path / "h.eml").write_bytes(NEIGHBOUR)
    trusted = view_of_bytes(RAW)  # the network of 198.51.100.7: the first untrusted relay
    headers, _ = split_message(RAW)
    inferred = build_view(headers, RAW, parse_message(RAW))  # without the trust path: another key
    assert sender_key(trusted) != sender_key(inferred) == sender_key(view_of_bytes(NEIGHBOUR))

    assert "learned 1 message(s)" in _call("train", "--ham", str(tmp_path / "h.eml"))
    before = (_sender_count(store, trusted), _sender_count(store, inferred))
    assert before == (0, 1)  # the neighbour's one ham
    assert "learned 1 message(s)" in _call("train", "--spam", str(tmp_path / "s.eml"))
    assert _sender_count(store, trusted) == SPAM_UNIT  # one spam from this sender

    assert "forgot 1 message(s)" in _call("forget", "--spam", str(tmp_path / "s.eml"))
    assert (_sender_count(store, trusted), _sender_count(store, inferred)) == before
    (ns, nh), = store.counters([(scope_key("global"), ["#s", "#h"])])
    assert (ns, nh) == (0, 1)
