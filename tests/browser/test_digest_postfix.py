"""A user opens a digest link in real Chromium, confirms the release, and the message arrives
at the sink through real Postfix (quarantined by the real milter; re-injected through the
Postfix listener without milters)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.browser.conftest import shot
from tests.services import free_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.browser]

POLICY: dict[str, Any] = {
    "gateway": {"hostname": "mx.example.com"},
    "settings": {"antivirus": {"mode": "off"}},
    "domains": [{"name": "quarantined.example", "settings": {"lists": {"block_action": "quarantine"}}}],
    "lists": [{"list": "block", "kind": "sender", "value": "bad@quarantine.test", "domain": "quarantined.example"}],
}

SETUP_USER = """
import json
from django.core import mail
from quarantine.tasks import send_digests
from webadmin.services import do_save_account
do_save_account(None, username="erin@quarantined.example", role="user", mailbox="erin@quarantined.example")
from django.test.utils import setup_test_environment
setup_test_environment()  # locmem mail backend: the digest is read back, not sent
send_digests()
[m] = mail.outbox
print(json.dumps({"body": m.body}))
"""


def test_it_releases_from_a_digest_link_through_real_postfix(browser: Any) -> None:
    try:
        from tests.mailstack import mail_stack
    except ImportError:
        pytest.skip("tests/mailstack.py not present")
    if subprocess.run(["which", "postfix"], capture_output=True).returncode != 0:
        pytest.skip("postfix not installed")
    with mail_stack() as stack:
        stack.import_policy(POLICY)
        data = ("From: Bad <bad@quarantine.test>\r\nTo: erin@quarantined.example\r\nSubject: digest release e2e\r\n"
                "Message-ID: <digest-e2e@quarantine.test>\r\n\r\nHeld until Erin says so.\r\n")
        code, text, _ = stack.send("bad@quarantine.test", ["erin@quarantined.example"], data)
        assert code == 250, text
        time.sleep(1.0)
        assert not stack.sink.find(b"Subject: digest release e2e")
        stack.manage("msglog", "ingest")
        out = stack.manage("shell", "-c", SETUP_USER).stdout
        body = json.loads(out.strip().splitlines()[-1])["body"]
        release = next(line.split()[-1] for line in body.splitlines() if line.strip().startswith("Release:"))
        path = "/" + release.split("://", 1)[1].split("/", 1)[1]
        port = free_port()
        web = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", "--insecure",
                                f"127.0.0.1:{port}"], env=stack.env, cwd=stack.env["PYTHONPATH"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            import socket

            wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True, timeout=30,
                       what="web server")
            ctx = browser.new_context(viewport={"width": 390, "height": 844})
            page = ctx.new_page()
            page.goto(f"http://127.0.0.1:{port}{path}")
            assert page.locator("#digest-subject").inner_text() == "digest release e2e"
            time.sleep(1.0)
            assert not stack.sink.find(b"Subject: digest release e2e")  # the GET released nothing
            page.click("#confirm")
            page.locator("#digest-done").wait_for()
            shot(page, "digest-released-phone")
            wait_until(lambda: stack.sink.find(b"Subject: digest release e2e"), timeout=30, what="released message")
            [m] = stack.sink.find(b"Subject: digest release e2e")
            assert m.rcpts == ["erin@quarantined.example"]
            # A second confirmation does not deliver it again.
            page.goto(f"http://127.0.0.1:{port}{path}")
            assert page.locator("#confirm").count() == 0
            ctx.close()
        finally:
            web.terminate()
            web.wait(10)
