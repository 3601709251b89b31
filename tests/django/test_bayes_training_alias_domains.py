"""Training from the web admin learns mail to an alias domain in its domain's Bayes scope, the
one the milter reads for it (the policy snapshot's ``canonical_domain``): a scanned message
learned from the scan tool, and the training page's scopes, which list each domain once."""

from __future__ import annotations

import re

import pytest

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.store.memory import MemoryStore
from tests.django.conftest import World
from tests.django.test_scan_tool import _message, _scan, quick_policy


@pytest.fixture(autouse=True)
def _alias_domain(world: World) -> None:
    from webadmin.models import Domain
    from webadmin.services import do_publish_policy

    quick_policy(world.data_dir)
    Domain.objects.filter(pk=world.a.domain.pk).update(aliases=["alias-a.example"])
    do_publish_policy("test")


def test_a_scanned_message_to_an_alias_domain_is_learned_in_its_domains_scope(world: World, store: MemoryStore) -> None:
    c = world.client("global_admin")
    page, _doc = _scan(c, message=_message("cheap pills for you", to="user@alias-a.example"))
    token = re.search(r"/security/antispam/scan/([A-Za-z0-9_-]{22})/learn/", page).group(1)  # type: ignore[union-attr]
    c.post(f"/security/antispam/scan/{token}/learn/", {"label": "spam"})
    bc = BayesClassifier(store)
    assert bc.stats("dom:alias-a.example")["spam_learned"] == 0
    assert bc.stats("dom:a.example")["spam_learned"] == 1


def test_the_training_scopes_list_each_domain_once_under_its_own_name(world: World) -> None:
    from webadmin import training

    assert training.scopes_for(world.root.user) == ["global", "dom:a.example", "dom:b.example"]
    assert training.scopes_for(world.a.accounts["domain_admin"].user) == ["dom:a.example"]


def test_a_training_task_given_an_alias_domains_scope_learns_in_its_domains(world: World, store: MemoryStore) -> None:
    from webadmin.antispam_tasks import train_message

    path = world.data_dir / "scans" / "one.eml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_message("cheap pills for you", to="user@alias-a.example"))
    assert train_message("spam", paths=[str(path)], scopes=["dom:alias-a.example"])["learned"] == 1
    assert BayesClassifier(store).stats("dom:a.example")["spam_learned"] == 1
