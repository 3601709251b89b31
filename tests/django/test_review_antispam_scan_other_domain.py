"""Security → Scan a message: a domain administrator's scan must be judged by a policy of
their own domains. Their recipients had to be theirs, but an authenticated (or trusted-network)
message is judged by its sender's domain, so a sender in another tenant's domain ran that
tenant's settings and Sieve scripts and showed them in the result (script name, line, reject
text, list hits): a way to read and probe another domain's policy."""

from __future__ import annotations

import pytest

from gateway_milter.store.memory import MemoryStore
from tests.django.conftest import World
from tests.django.test_scan_tool import _message, _scan, quick_policy

pytestmark = pytest.mark.django_db
B_SCRIPT = 'require ["reject"];\nif header :contains "subject" "hello" { reject "B-ONLY-POLICY"; }\n'


@pytest.fixture(autouse=True)
def _b_has_a_script(world: World) -> None:
    from webadmin.services import do_save_script

    quick_policy(world.data_dir)
    do_save_script(world.b.script, name="b-private-script", source=B_SCRIPT, domain=world.b.domain)


@pytest.mark.parametrize("fields", [
    {"sender": "boss@b.example", "auth": "boss@b.example"},
    {"auth": "boss@b.example"},  # (the sender from the message's From)
])
def test_a_domain_admin_cannot_scan_as_another_tenants_sender(world: World, fields: dict[str, str]) -> None:
    c = world.client("domain_admin", "a")
    msg = _message("x").replace("someone@sender.test", "boss@b.example")
    r = c.post("/security/antispam/scan/", {"message": msg, "recipients": "user@a.example", **fields})
    assert r.status_code == 400, r.status_code
    assert "b.example" in r.content.decode() and "B-ONLY-POLICY" not in r.content.decode()
    r = c.post("/api/antispam/scan/", {"message": msg, "recipients": ["user@a.example"], **fields},
               content_type="application/json")
    assert r.status_code == 400 and "sender" in r.json(), r.content


def test_own_and_outside_senders_still_scan(world: World, store: MemoryStore) -> None:
    c = world.client("domain_admin", "a")
    _page, doc = _scan(c, message=_message("x"), sender="boss@a.example", auth="boss@a.example",
                       recipients="user@a.example")
    assert doc["state"] == "done"
    # mail from another tenant that is not authenticated is judged by the recipient's domain
    _page, doc = _scan(c, message=_message("x"), sender="boss@b.example", recipients="user@a.example")
    assert doc["state"] == "done" and "B-ONLY-POLICY" not in str(doc)
    # a global administrator scans anything
    _page, doc = _scan(world.client("global_admin"), message=_message("x"), sender="boss@b.example",
                       auth="boss@b.example", recipients="user@a.example")
    assert "B-ONLY-POLICY" in str(doc["result"])
