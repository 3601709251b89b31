"""A released outbound message goes out with its envelope sender signed (BATV), as the milter
signs it on delivery: the held copy keeps the sender as written, and the bounces of a release
sent unsigned were refused as backscatter, so the local sender never heard of a failed
delivery. Inbound mail, a sender of another domain and backscatter off keep the sender."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from django.utils import timezone

from gateway_milter.layers.backscatter import BackscatterSettings, verify
from gateway_milter.store.memory import MemoryStore
from quarantine.models import QuarantinedMessage, QuarantineRecipient
from quarantine.services import do_release_message
from tests.django.conftest import World
from tests.unit.antispam.helpers import store  # noqa: F401  (the fixture)
from webadmin.models import LayerSetting
from webadmin.services import do_publish_policy


_N = itertools.count(1)  # (qid: at most 40 characters, which PostgreSQL enforces)


def _held(world: World, mail_from: str, direction: str) -> QuarantinedMessage:
    src = world.a.qmessage
    m = QuarantinedMessage.objects.create(
        qid=f"release-{next(_N)}", log_id=src.log_id, queue="admin", created=timezone.now()
        - dt.timedelta(minutes=1), mail_from=mail_from, header_from=mail_from, subject="out", reason="dlp",
        size=src.size, score=0.0, direction=direction, storage_path=src.storage_path)
    QuarantineRecipient.objects.create(message=m, address="partner@remote.test", domain="remote.test")
    return m


def _backscatter(mode: str) -> None:
    LayerSetting.objects.update_or_create(layer="backscatter", domain=None, defaults={"values": {"mode": mode}})
    do_publish_policy("test")


def test_a_released_outbound_message_has_its_sender_signed(world: World, smtp_sink: list[Any],
                                                         store: MemoryStore) -> None:  # noqa: F811
    _backscatter("on")
    assert do_release_message(_held(world, "user@a.example", "outbound")) == ["partner@remote.test"]
    sent = smtp_sink[-1].mail_from
    assert sent.startswith("prvs=") and sent.endswith("=user@a.example")
    assert verify(sent, store, BackscatterSettings(mode="on")) == "user@a.example"


def test_other_releases_keep_the_sender_as_written(world: World, smtp_sink: list[Any],
                                                  store: MemoryStore) -> None:  # noqa: F811
    _backscatter("on")
    do_release_message(_held(world, "spam@spam.test", "inbound"))
    do_release_message(_held(world, "someone@elsewhere.test", "outbound"))  # not a local domain
    assert [e.mail_from for e in smtp_sink[-2:]] == ["spam@spam.test", "someone@elsewhere.test"]
    _backscatter("off")
    do_release_message(_held(world, "user@a.example", "outbound"))
    assert smtp_sink[-1].mail_from == "user@a.example"
