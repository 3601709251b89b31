"""Search, pagination, TOTP, accounts, CSV import, Sieve validation, layer forms, Postfix maps,
API and deploy checks of the web admin."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
import pyotp
import pytest
from django.test import Client
from django.utils import timezone

from tests.django.conftest import World


def _bulk_log(n: int) -> None:
    from reports.models import MessageLog, MessageRecipient

    now = timezone.now()
    rows = [MessageLog(log_id=f"bulk{i:028d}", time=now - dt.timedelta(seconds=i // 2), direction="inbound",
                       mail_from=f"s{i % 7}@sender.test", subject=f"bulk {i}", action="accept" if i % 3 else "reject",
                       score=float(i % 10), size=1000 + i) for i in range(n)]
    MessageLog.objects.bulk_create(rows)
    ids = MessageLog.objects.filter(log_id__startswith="bulk").values_list("id", flat=True)
    MessageRecipient.objects.bulk_create([MessageRecipient(message_id=i, address="user@a.example", domain="a.example",
                                                           action="accept") for i in ids])


def test_it_pages_the_log_by_keyset_without_gaps_or_repeats(world: World) -> None:
    _bulk_log(120)
    c = world.client("domain_admin")
    seen: list[str] = []
    url = "/api/messages/?limit=25&subject=bulk"
    while url:
        data = c.get(url).json()
        seen += [r["log_id"] for r in data["results"]]
        url = f"/api/messages/?limit=25&subject=bulk&cursor={data['next']}" if data["next"] else ""
    assert len(seen) == 120 and len(set(seen)) == 120
    # Sorted by score, ascending, also pages completely.
    seen2, url = [], "/api/messages/?limit=40&subject=bulk&sort=score"
    while url:
        data = c.get(url).json()
        seen2 += [r["score"] for r in data["results"]]
        url = f"/api/messages/?limit=40&subject=bulk&sort=score&cursor={data['next']}" if data["next"] else ""
    assert seen2 == sorted(seen2) and len(seen2) == 120


def test_it_filters_the_log_like_the_form_says(world: World) -> None:
    _bulk_log(30)
    c = world.client("global_admin")

    def n(q: str) -> int:
        return len(c.get("/api/messages/?limit=200&" + q).json()["results"])

    assert n("sender=s1@sender.test") == len([i for i in range(30) if i % 7 == 1])
    assert n("sender=@sender.test") == 30
    assert n("result=junk&subject=bulk") == 10
    assert n("score_min=9&subject=bulk") == 3
    assert n("recipient=user@b.example") == 1
    assert n("domain=b.example") == 1
    assert n("direction=outbound") == 0
    r = c.get("/logging/log/?result=junk&subject=bulk&sort=-score")
    assert r.status_code == 200 and r.content.count(b'data-log-id="bulk') == 10
    assert c.get("/api/messages/?since=yesterday").status_code == 400
    assert b"not a date" in c.get("/logging/log/?since=yesterday").content


def test_a_superuser_without_an_account_is_held_to_the_administrators_totp_rule(world: World) -> None:
    # the first administrator (manage.py bootstrap, createsuperuser) is a Django superuser with no
    # Account row until it enrols: a global administrator all the same (access.principal), so
    # require_admin_totp holds it too (it used to pass with its password alone)
    from django.contrib.auth.models import User

    from webadmin.models import Account

    User.objects.create_superuser("first", password="Correct-horse-9")
    _require_admin_totp(True)
    c = _sent_to_enrolment("first")
    assert c.get("/api/domains/").status_code == 403
    assert not Account.objects.filter(user__username="first").exists()  # (not made by looking)
    _require_admin_totp(False)
    c2 = Client()
    assert c2.post("/accounts/login/", {"username": "first", "password": "Correct-horse-9"})["Location"] == "/"
    assert c2.get("/dashboard/").status_code == 200 and c2.get("/api/domains/").status_code == 200


def _require_admin_totp(on: bool) -> None:
    from webadmin.models import AdminSettings

    s = AdminSettings.get()
    s.require_admin_totp = on
    s.save()


def _sent_to_enrolment(username: str) -> Client:
    """A client logged in with ``username``'s password, whom every page sends to TOTP enrolment."""
    c = Client()
    r = c.post("/accounts/login/", {"username": username, "password": "Correct-horse-9"})
    assert r.status_code == 302 and r["Location"] == "/account/2fa/"
    assert c.get("/dashboard/")["Location"] == "/account/2fa/"  # nothing else until enrolled
    return c


def test_it_requires_totp_for_administrators(world: World) -> None:
    from webadmin.models import Account

    _require_admin_totp(True)
    c = _sent_to_enrolment("dadmin_a")
    acct = Account.objects.get(user__username="dadmin_a")
    page = c.get("/account/2fa/")
    acct.refresh_from_db()
    assert acct.totp_secret.encode() in page.content
    assert b'<div id="totp-qr"' in page.content and b"<svg" in page.content  # scannable code
    assert c.post("/account/2fa/", {"code": "000000"}).status_code == 200
    r = c.post("/account/2fa/", {"code": pyotp.TOTP(acct.totp_secret).now()})
    assert r.status_code == 302
    assert c.get("/dashboard/").status_code == 200
    # Next login asks for the code; a wrong one is refused; a used one cannot be replayed.
    c2 = Client()
    r = c2.post("/accounts/login/", {"username": "dadmin_a", "password": "Correct-horse-9"})
    assert r["Location"] == "/accounts/login/totp/"
    assert c2.get("/dashboard/").status_code == 302
    assert c2.post("/accounts/login/totp/", {"code": "123456"}).status_code == 200
    acct.refresh_from_db()
    acct.totp_last_step = 0
    acct.save()
    code = pyotp.TOTP(acct.totp_secret).now()
    assert c2.post("/accounts/login/totp/", {"code": code})["Location"] == "/"
    assert c2.get("/dashboard/").status_code == 200
    c3 = Client()
    c3.post("/accounts/login/", {"username": "dadmin_a", "password": "Correct-horse-9"})
    assert c3.post("/accounts/login/totp/", {"code": code}).status_code == 200  # replay refused
    # Users without the domain option log in with a password only.
    c4 = Client()
    assert c4.post("/accounts/login/", {"username": "user@a.example", "password": "Correct-horse-9"})["Location"] == "/"
    assert c4.get("/account/").status_code == 200


def test_it_rejects_a_wrong_password_and_unsafe_next(world: World) -> None:
    c = Client()
    assert c.post("/accounts/login/", {"username": "root", "password": "nope-nope-nope"}).status_code == 200
    r = c.post("/accounts/login/", {"username": "root", "password": "Correct-horse-9", "next": "https://evil.test/"})
    assert r["Location"] == "/"


def test_it_imports_users_from_csv_within_the_admins_domains(world: World) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from webadmin.models import Account

    csv_text = ("username,mailbox,aliases,role,domains,digest\n"
                "carol,carol@a.example,c@a.example,user,,weekly\n"
                "mallory,mallory@b.example,,user,,\n"
                "boss,boss@a.example,,global_admin,,\n")
    c = world.client("domain_admin")
    r = c.post("/setup/users/import/", {"file": SimpleUploadedFile("u.csv", csv_text.encode())}, follow=True)
    msgs = [str(m) for m in r.context["messages"]]
    assert "1 user(s) created." in msgs
    assert any("line 3" in m and "not in one of your domains" in m for m in msgs)
    assert any("line 4" in m and "global administrator" in m for m in msgs)
    carol = Account.objects.get(mailbox="carol@a.example")
    assert carol.aliases == ["c@a.example"] and carol.digest_schedule == "weekly"
    assert not Account.objects.filter(mailbox="mallory@b.example").exists()
    export = b"".join(c.get("/setup/users/export.csv").streaming_content)
    assert b"carol@a.example" in export and b"user@b.example" not in export


def test_a_csv_import_that_is_not_csv_is_reported_not_a_500(world: World) -> None:
    """A field over the csv module's limit answered 500; a bad digest created the row's account
    before it was refused; a user name with a NUL or over 150 characters reached the database
    (PostgreSQL refuses both). Runs on SQLite and PostgreSQL."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from webadmin.models import Account

    c = world.client("global_admin")
    head = "username,mailbox,aliases,role,domains,digest\n"
    cases = [
        (head + "dave,dave@a.example,,user,,\n" + "eve,eve@a.example," + "x" * 200_000 + ",user,,\n", "line 3: not CSV"),
        (head + "nul\x00user,nul@a.example,,user,,\n", "line 2: "),  # (PostgreSQL refuses a NUL in text)
        (head + "frank,frank@a.example,,user,,monthly\n", "line 2: digest must be never, hours, daily or weekly"),
    ]
    for text, says in cases:
        r = c.post("/setup/users/import/", {"file": SimpleUploadedFile("u.csv", text.encode())}, follow=True)
        assert r.status_code == 200
        msgs = [str(m) for m in r.context["messages"]]
        assert any(says in m for m in msgs), msgs
    assert Account.objects.filter(mailbox="dave@a.example").exists()  # (the rows before the bad one stand)
    assert not Account.objects.filter(mailbox__in=["eve@a.example", "frank@a.example", "nul@a.example"]).exists()
    # the API too: a name Django's forms refuse, an address with white space (on PostgreSQL a name
    # over 150 characters was a 500)
    for body in ({"username": "x" * 151, "mailbox": "long@a.example", "role": "user"},
                 {"username": "a b", "mailbox": "ab@a.example", "role": "user"},
                 {"username": "ok", "mailbox": "o k@a.example", "role": "user"}):
        r = c.post("/api/users/", body, content_type="application/json")
        assert r.status_code == 400, (body, r.status_code, r.content[:200])
    r = c.post("/api/users/csv/", {"csv": "username,mailbox\n" + "y" * 151 + ",y@a.example\n"},
               content_type="application/json")
    assert r.status_code == 200 and "1 to 150 characters" in str(r.json()["errors"]), r.content[:300]
    assert not Account.objects.filter(mailbox__in=["long@a.example", "ab@a.example", "y@a.example"]).exists()


def test_it_validates_sieve_as_you_type_with_line_numbers(world: World) -> None:
    c = world.client("domain_admin")
    ok = c.post("/api/sieve/validate/", {"source": "keep;\n"}, content_type="application/json").json()
    assert ok == {"errors": []}
    bad = c.post("/api/sieve/validate/", {"source": "keep;\nif true {\n  keep;\n\n}}\n"},
                 content_type="application/json").json()
    assert bad["errors"] and bad["errors"][0]["line"] == 5
    assert world.client("user").post("/api/sieve/validate/", {"source": "keep;"},
                                     content_type="application/json").status_code == 404
    # Saving an invalid script through the page is refused with the line.
    r = c.post("/security/scripts/new/", {"name": "x", "domain": world.a.domain.pk, "position": "after", "order": 0,
                                          "enabled": "on", "source": "keep;\nif true {\n"})
    assert r.status_code == 200 and (b"line 3" in r.content or b"line 2" in r.content)


def test_it_saves_layer_settings_through_the_generic_form(world: World) -> None:
    from webadmin.models import LayerSetting, PublishedPolicy

    c = world.client("global_admin")
    page = c.get("/security/layers/size/")
    assert page.status_code == 200
    before = PublishedPolicy.objects.count()
    form = {k: v for k, v in page.context["form"].initial.items() if v is not None}
    form["mode"] = "score"
    r = c.post("/security/layers/size/", {k: ("on" if v is True else v) for k, v in form.items() if v is not False})
    assert r.status_code == 302, r.content[:2000]
    assert LayerSetting.objects.get(layer="size", domain=None).values["mode"] == "score"
    assert PublishedPolicy.objects.count() == before + 1
    # A domain admin edits only their domain's override.
    d = world.client("domain_admin")
    assert d.get(f"/security/layers/size/?domain={world.b.domain.pk}").status_code == 404
    assert d.get("/security/layers/size/").status_code == 200


def test_it_writes_postfix_maps(world: World, tmp_path: Path) -> None:
    from django.core.management import call_command

    from webadmin.models import Domain

    Domain.objects.filter(pk=world.a.domain.pk).update(aliases=["alias-a.example"],
                                                       mail_servers=["mx1.a.example:2525", "10.0.0.2"])
    call_command("postfix", "maps", "--dir", str(tmp_path))
    relay = (tmp_path / "relay_domains").read_text()
    transport = (tmp_path / "transport").read_text()
    assert "a.example\tOK" in relay and "alias-a.example\tOK" in relay and "b.example\tOK" in relay
    assert "a.example\tsmtp:[mx1.a.example]:2525" in transport
    assert "alias-a.example\tsmtp:[mx1.a.example]:2525" in transport
    assert "b.example\tsmtp:[mx.b.example]:25" in transport


def test_it_serves_the_same_rules_through_api_tokens(world: World) -> None:
    from rest_framework.authtoken.models import Token

    tok = Token.objects.create(user=world.a.accounts["user"].user)
    c = Client(HTTP_AUTHORIZATION=f"Token {tok.key}")
    data = c.get("/api/quarantine/").json()
    assert [m["qid"] for m in data["results"]] == [world.a.qmessage.qid]
    assert c.get(f"/api/quarantine/{world.b.qmessage.pk}/").status_code == 404
    assert c.get("/api/domains/").status_code == 404
    r = c.post("/api/user-lists/", {"list": "block", "value": "pest@spam.test"}, content_type="application/json")
    assert r.status_code == 201, r.content
    assert r.json()["mailbox"] == "user@a.example"
    assert c.post("/api/lists/", {"list": "block", "kind": "sender", "value": "x@spam.test"},
                  content_type="application/json").status_code == 404
    schema = c.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/quarantine/" in schema.content


def test_it_manages_domains_and_users_through_the_api(world: World) -> None:
    g = world.client("global_admin")
    r = g.post("/api/domains/", {"name": "c.example", "mail_servers": ["mx.c.example"]}, content_type="application/json")
    assert r.status_code == 201, r.content
    assert g.post("/api/domains/", {"name": "not a domain"}, content_type="application/json").status_code == 400
    d = world.client("domain_admin")
    assert d.post("/api/domains/", {"name": "d.example"}, content_type="application/json").status_code == 404
    r = d.post("/api/users/", {"username": "dave", "role": "user", "mailbox": "dave@a.example"},
               content_type="application/json")
    assert r.status_code == 201, r.content
    r = d.post("/api/users/", {"username": "eve", "role": "user", "mailbox": "eve@b.example"},
               content_type="application/json")
    assert r.status_code == 400
    r = d.post("/api/users/", {"username": "eve", "role": "global_admin", "mailbox": "eve@a.example"},
               content_type="application/json")
    assert r.status_code == 400


def test_it_shows_server_status_and_charts_on_the_dashboard(world: World) -> None:
    r = world.client("global_admin").get("/dashboard/")
    assert r.status_code == 200
    for name in (b"Database", b"Milter", b"Policy", b"Postfix queue", b"ClamAV", b"Redis"):
        assert b'data-service="' + name + b'"' in r.content
    assert r.content.count(b'class="card chart"') == 9
    assert b'<rect class="bar"' in r.content  # the quarantined messages of the last hour are drawn
    assert b"/logging/log/?since=" in r.content  # bars link into the filtered log
    api = world.client("user").get("/api/dashboard/").json()
    assert {c["key"] for c in api["charts"]} == {"traffic", "bandwidth", "goodjunk", "junk", "recipients", "spamdomains",
                                                "scores", "symbols", "goodsymbols"}
    assert world.b.marker not in str(api)


def test_it_passes_the_deploy_check_with_production_settings(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}  # set by browser tests
    env |= {"GATEWAY_HTTPS": "true", "GATEWAY_DATA_DIR": str(tmp_path),
           "GATEWAY_SECRET_KEY": "k3$" + "x9Qz7-Lm2Vb8Nc4Rt6Yh1Gf5Dd0Ss3Aa" * 2, "GATEWAY_ALLOWED_HOSTS": "gw.example"}
    res = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env=env,
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "no issues" in res.stdout


@pytest.mark.parametrize("page", ["/messages/quarantine/", "/security/lists/", "/setup/users/new/"])
def test_it_puts_a_csrf_token_in_every_form(world: World, page: str) -> None:
    r = world.client("global_admin").get(page)
    assert r.content.count(b"<form method=\"post\"") <= r.content.count(b"csrfmiddlewaretoken")


def test_it_refuses_posts_without_csrf(world: World) -> None:
    c = Client(enforce_csrf_checks=True)
    c.force_login(world.root.user)
    r = c.post(f"/messages/quarantine/{world.a.qmessage.pk}/action/", {"action": "delete"})
    assert r.status_code == 403



def test_it_creates_and_shows_dkim_keys_for_own_domains_only(world: World, tmp_path: Path) -> None:
    keystore = pytest.importorskip("gateway_milter.auth.keystore")
    keystore.set_keystore(keystore.KeyStore(tmp_path / "dkim"))
    try:
        c = world.client("domain_admin")
        r = c.post("/security/dkim/", {"domain": world.a.domain.pk, "action": "generate",
                                       "algorithm": "ed25519-sha256"})
        assert r.status_code == 302
        page = c.get("/security/dkim/")
        assert b"bulwark1._domainkey.a.example. IN TXT" in page.content and b"b.example" not in page.content
        assert c.post("/security/dkim/", {"domain": world.b.domain.pk, "action": "generate"}).status_code == 404
        assert world.client("user").get("/security/dkim/").status_code == 404
        api = c.get("/api/dkim/").json()
        assert [d["domain"] for d in api] == ["a.example"] and api[0]["keys"][0]["txt"].startswith("v=DKIM1; k=ed25519")
        r = c.post("/api/dkim/", {"domain": "a.example", "action": "rotate", "algorithm": "ed25519-sha256"},
                   content_type="application/json")
        assert r.status_code == 201 and r.json()["selector"] == "bulwark2"
        assert c.post("/api/dkim/", {"domain": "b.example", "action": "rotate"},
                      content_type="application/json").status_code == 404
    finally:
        keystore.set_keystore(None)


def test_it_keeps_the_subject_index_in_step_with_the_log(world: World) -> None:
    from reports.models import MessageLog

    c = world.client("global_admin")

    def hits(text: str) -> int:
        return len(c.get("/api/messages/", {"subject": text}).json()["results"])

    assert hits("watches") == 2
    MessageLog.objects.filter(pk=world.a.message.pk).update(subject="Quarterly figures Q3")
    assert hits("figures q3") == 1 and hits("tenant-a") == 0
    MessageLog.objects.filter(pk=world.a.message.pk).delete()
    assert hits("figures") == 0
    assert hits("100%_sure") == 0  # wildcard characters are searched literally


def test_it_throttles_password_and_code_guessing(world: World) -> None:
    from webadmin.views.auth import MAX_FAILURES

    c = Client()
    for _ in range(MAX_FAILURES):
        assert c.post("/accounts/login/", {"username": "root", "password": "guess-guess-1"}).status_code == 200
    r = c.post("/accounts/login/", {"username": "root", "password": "Correct-horse-9"})
    assert r.status_code == 429  # even the right password, until the window passes
    assert Client().post("/accounts/login/", {"username": "dadmin_a", "password": "Correct-horse-9"}).status_code == 302


def test_it_guards_the_django_admin_with_the_same_second_factor(world: World) -> None:
    from webadmin.models import AdminSettings

    s = AdminSettings.get()
    s.require_admin_totp = True
    s.save()
    world.root.user.is_staff = world.root.user.is_superuser = True
    world.root.user.save()
    c = Client()
    c.force_login(world.root.user)  # a password-only session
    r = c.get("/admin/")
    assert r.status_code == 302 and "/admin/login/" in r["Location"]
    r = c.get("/admin/login/")
    assert b"Bulwark" in r.content
    s = c.session
    s["bulwark_2fa"] = True
    s.save()
    assert c.get("/admin/").status_code == 200


def test_it_offers_the_setup_pages_through_the_api(world: World) -> None:
    g, d = world.client("global_admin"), world.client("domain_admin")
    r = d.post("/api/verification-sources/", {"domain": "a.example", "kind": "ldap", "config": {
        "url": "ldap://dc", "base_dn": "dc=a", "bind_password": "s3cret"}}, content_type="application/json")
    assert r.status_code == 201, r.content
    assert r.json()["config"]["bind_password"] == "********"
    assert d.post("/api/verification-sources/", {"domain": "b.example", "kind": "local"},
                  content_type="application/json").status_code == 400
    assert d.put("/api/user-options/?domain=a.example", {"view_transcripts": True},
                 content_type="application/json").json()["view_transcripts"] is True
    assert d.put("/api/user-options/?domain=b.example", {"view_transcripts": True},
                 content_type="application/json").status_code == 404
    assert g.patch("/api/settings/", {"digest_link_days": 3}, content_type="application/json").json()[
        "digest_link_days"] == 3
    assert g.patch("/api/settings/", {"digest_link_days": "x"}, content_type="application/json").status_code == 400
    r = d.post("/api/users/csv/", {"csv": "username,mailbox\nfrank,frank@a.example\nx,x@b.example\n"},
               content_type="application/json")
    assert r.json()["created"] == 1 and len(r.json()["errors"]) == 1
    csv_text = d.get("/api/users/csv/").content
    assert b"frank@a.example" in csv_text and b"user@b.example" not in csv_text


def test_it_reads_the_postfix_queue_format() -> None:
    from quarantine.mtaqueue import parse_postqueue_json

    # The shape postqueue -j prints (postqueue(1)), one object per line; garbage is skipped.
    text = ('{"queue_name": "deferred", "queue_id": "4F9D31A2B3", "arrival_time": 1764320000, '
            '"message_size": 2048, "forced_expire": false, "sender": "a@x.test", "recipients": '
            '[{"address": "b@y.test", "delay_reason": "connect to mx.y.test[192.0.2.1]:25: Connection refused"}]}\n'
            'not json\n{"queue_name": "active", "queue_id": "5A", "arrival_time": 1764320100, "sender": "", '
            '"recipients": [{"address": "c@z.test"}]}\n')
    rows = parse_postqueue_json(text)
    assert [r.queue_id for r in rows] == ["4F9D31A2B3", "5A"]
    assert rows[0].recipients == (("b@y.test", "connect to mx.y.test[192.0.2.1]:25: Connection refused"),)
    assert rows[0].size == 2048 and rows[0].arrival.year == 2025


def test_it_summarises_results_per_visible_domain(world: World) -> None:
    r = world.client("domain_admin").get("/reports/?period=7d")
    assert r.status_code == 200
    rows = [(s.domain, s.total, s.junk) for s in r.context["summaries"]]
    assert rows == [("a.example", 1, 1)]
    g = world.client("global_admin").get("/reports/")
    assert [s.domain for s in g.context["summaries"]] == ["a.example", "b.example"]
    assert b"recipient=%40a.example" in g.content


def test_it_shows_the_policy_order_with_system_scripts(world: World) -> None:
    pytest.importorskip("gateway_milter.sieve.policy")
    from webadmin.services import do_publish_policy

    do_publish_policy("test")
    r = world.client("domain_admin").get("/security/scripts/order/")
    assert r.status_code == 200, r.content[:500]
    names = [s["name"] for s in r.context["steps"]]
    assert "script-a" in names and "script-b" not in names
    assert any(s["system"] for s in r.context["steps"])
    assert world.client("domain_admin").get(f"/security/scripts/order/?domain={world.b.domain.pk}").status_code == 404


def test_it_lists_the_policy_order_through_the_api(world: World) -> None:
    pytest.importorskip("gateway_milter.sieve.policy")
    steps = world.client("domain_admin").get("/api/policy-order/?domain=a.example").json()
    names = [s["name"] for s in steps]
    assert "script-a" in names and "script-b" not in names and any(s["system"] for s in steps)
    assert world.client("domain_admin").get("/api/policy-order/?domain=b.example").status_code == 404
    assert world.client("user").get("/api/queue/").status_code == 404
    assert world.client("global_admin").get("/api/queue/").status_code in (200, 503)


def test_it_resets_a_lost_authenticator_within_scope(world: World) -> None:
    from webadmin.models import Account

    for t in ("a", "b"):
        Account.objects.filter(mailbox=f"user@{t}.example").update(totp_enabled=True, totp_secret="JBSWY3DPEHPK3PXP")
    d = world.client("domain_admin")
    assert d.post(f"/setup/users/{world.a.accounts['user'].pk}/reset-2fa/").status_code == 302
    assert d.post(f"/setup/users/{world.b.accounts['user'].pk}/reset-2fa/").status_code == 404
    assert not Account.objects.get(mailbox="user@a.example").totp_enabled
    assert Account.objects.get(mailbox="user@b.example").totp_enabled
