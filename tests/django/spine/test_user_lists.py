"""Users' own sender lists and anti-spam switch reach the milter's policy, per recipient."""

from __future__ import annotations

import pytest

from gateway_milter.context import ConnectionInfo
from gateway_milter.pipeline.transaction import Gateway
from gateway_milter.policy.provider import StaticPolicyProvider
from gateway_milter.policy.snapshot import PolicySnapshot
from webadmin.models import PublishedPolicy, UserOptions
from webadmin.services import (
    build_policy_document,
    do_add_user_list_entry,
    do_import_policy,
    do_save_account,
    do_save_user_settings,
)

pytestmark = pytest.mark.django_db


class _Null:
    def store(self, raw: bytes, meta: dict) -> dict:  # type: ignore[type-arg]
        return {**meta, "qid": "q", "path": "p"}

    def emit(self, record: dict) -> None:  # type: ignore[type-arg]
        pass


def _gateway() -> Gateway:
    row = PublishedPolicy.objects.latest("version")
    return Gateway(StaticPolicyProvider(PolicySnapshot.from_document(row.document, row.version)), _Null(), _Null())


def _rcpt(gw: Gateway, sender: str, rcpts: list[str]) -> list[str]:
    ctx = gw.begin(ConnectionInfo(client_ip="198.51.100.9", helo="x.test"))
    gw.mail(ctx, sender)
    return [gw.rcpt(ctx, r).action for r in rcpts]


def test_it_refuses_a_sender_only_for_the_user_who_blocked_it() -> None:
    keep = {"settings": {"antivirus": {"mode": "off"}}, "domains": ["example.com"]}
    do_import_policy(keep)
    bob = do_save_account(None, username="bob", role="user", mailbox="bob@example.com", aliases=["robert@example.com"])
    do_add_user_list_entry(bob, "block", "*@pushy-vendor.test")
    gw = _gateway()
    assert _rcpt(gw, "sales@pushy-vendor.test", ["bob@example.com", "robert@example.com", "carol@example.com"]) \
        == ["reject", "reject", "continue"]
    assert _rcpt(gw, "friend@other.test", ["bob@example.com"]) == ["continue"]
    # the user's entries are not part of the exported policy file, and import keeps them
    assert not [e for e in build_policy_document(include_user_data=False)["lists"] if e.get("recipient")]
    do_import_policy(keep)
    assert _rcpt(_gateway(), "sales@pushy-vendor.test", ["bob@example.com"]) == ["reject"]


def test_it_exempts_users_who_switched_antispam_off_when_allowed() -> None:
    do_import_policy({"settings": {"antivirus": {"mode": "off"}}, "domains": ["example.com"]})
    ann = do_save_account(None, username="ann", role="user", mailbox="ann@example.com")
    ann.options = {"antispam_off": True}
    do_save_user_settings(ann)
    assert not PolicySnapshot.from_document(PublishedPolicy.objects.latest("version").document).antispam_disabled
    UserOptions.objects.create(domain=None, disable_antispam=True)
    do_save_user_settings(ann)
    snap = PolicySnapshot.from_document(PublishedPolicy.objects.latest("version").document)
    assert snap.antispam_disabled == {"ann@example.com"}
