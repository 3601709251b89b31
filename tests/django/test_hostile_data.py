"""Hostile message data (script in the subject, attachment file name and HTML body) is inert in
every page, the preview, the digest mails and the CSV exports."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from django.core import mail

from tests.django.conftest import HOSTILE_FILENAME, World

class _ActiveContent(HTMLParser):
    """Collects everything in a page that a browser would run or load from elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and a.get("src") != "/static/bulwark/app.js":
            self.found.append(f"<script {a}>")
        for k, v in attrs:
            if k.startswith("on"):
                self.found.append(f"<{tag} {k}={v}>")
            if k in ("href", "src", "action") and v and v.strip().lower().startswith(("javascript:", "http://evil",
                                                                                     "http://tracker")):
                self.found.append(f"<{tag} {k}={v}>")
        if tag in ("iframe", "img", "object", "embed") and a.get("src", "").startswith("http"):
            self.found.append(f"<{tag} src={a['src']}>")


def _assert_inert(body: bytes, where: str) -> None:
    p = _ActiveContent()
    p.feed(body.decode("utf-8", "replace"))
    assert not p.found, f"{where}: active content {p.found}"


def test_it_renders_hostile_data_inert_in_every_page(world: World) -> None:
    a = world.a
    pages = ["/messages/quarantine/", f"/messages/quarantine/{a.qmessage.pk}/", "/logging/log/",
             f"/logging/log/{a.message.pk}/", "/dashboard/", "/reports/", "/api/quarantine/", "/api/messages/",
             f"/api/messages/{a.message.pk}/"]
    for role in ("global_admin", "domain_admin", "user"):
        c = world.client(role)
        for url in pages:
            r = c.get(url, HTTP_ACCEPT="application/json" if url.startswith("/api/") else "text/html")
            if r.status_code == 404:
                continue
            assert r.status_code == 200, (role, url)
            if url.startswith("/api/"):
                assert r["Content-Type"] == "application/json"  # data, never markup
            else:
                _assert_inert(r.content, f"{role} {url}")
    # The escaped forms are there: the data is shown, not dropped.
    r = world.client("global_admin").get(f"/messages/quarantine/{a.qmessage.pk}/")
    assert b"&lt;script&gt;alert(&quot;subj&quot;)&lt;/script&gt;" in r.content
    assert b"&lt;img src=x onerror=alert(1)&gt;.exe" in r.content


def test_it_sanitises_the_preview_and_blocks_remote_content(world: World) -> None:
    r = world.client("user").get(f"/messages/quarantine/{world.a.qmessage.pk}/preview/")
    assert r.status_code == 200
    _assert_inert(r.content, "preview")
    assert b"<b>friend</b>" in r.content  # harmless formatting survives
    assert b"http://tracker.invalid" not in r.content and b"evil.invalid" not in r.content
    csp = r["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp
    assert r["X-Frame-Options"] == "SAMEORIGIN"
    page = world.client("user").get(f"/messages/quarantine/{world.a.qmessage.pk}/")
    assert re.search(rb'<iframe class="preview" sandbox=""', page.content)


def test_it_neutralises_hostile_cells_in_csv_exports(world: World) -> None:
    from reports.models import MessageLog

    MessageLog.objects.filter(pk=world.a.message.pk).update(subject='=HYPERLINK("http://evil.invalid","x")')
    r = world.client("global_admin").get("/logging/log/export.csv")
    body = b"".join(r.streaming_content)
    assert r["Content-Type"].startswith("text/csv")
    assert r["Content-Disposition"].startswith("attachment")
    assert b"'=HYPERLINK" in body and b",=HYPERLINK" not in body
    r = world.client("global_admin").get("/setup/users/export.csv")
    assert b"user@a.example" in b"".join(r.streaming_content)


def test_it_escapes_hostile_data_in_digest_mails(world: World) -> None:
    from quarantine.tasks import send_digests

    assert send_digests() == 2
    assert len(mail.outbox) == 2
    m = next(x for x in mail.outbox if x.to == ["user@a.example"])
    html = m.alternatives[0][0].encode()
    _assert_inert(html, "digest html")
    assert b"&lt;script&gt;" in html
    assert world.b.marker not in m.body and world.b.marker.encode() not in html
    assert HOSTILE_FILENAME not in m.body  # attachments are not listed in digests


@pytest.mark.parametrize("charset", [b"idna", b'"utf-8\x00"', b"punycode", b"no-such-charset"])
def test_the_preview_reads_a_text_whose_charset_the_codecs_refuse(charset: bytes) -> None:
    """A codec that takes no "replace" (idna), or a NUL in the charset's name: the preview said
    "cannot read the message body"; the text is now shown as UTF-8, as for an unknown charset."""
    from quarantine.preview import view_message

    raw = (b"From: a@b.example\nSubject: x\nMIME-Version: 1.0\nContent-Type: text/plain; charset=" + charset
           + b"\nContent-Transfer-Encoding: 8bit\n\nGr\xfc\xdfe aus Bonn\n")
    v = view_message(raw)
    assert v.error == "" and v.text == "Gr\ufffd\ufffde aus Bonn\n"


@pytest.mark.parametrize("disposition", [b"attachment; filename*0=x.exe; filename*" + b"9" * 5000 + b"=y",
                                         b"attachment; filename*=idna''%ff%fe.exe"])
def test_the_preview_lists_a_part_whose_headers_the_standard_library_cannot_read(disposition: bytes) -> None:
    """The preview stopped at such a part ("cannot read the message body") and listed nothing
    after it; a top-level Content-Type of that kind stopped the parse ("cannot parse the
    message", no headers shown)."""
    from quarantine.preview import view_message

    raw = (b"From: a@b.example\nSubject: x\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=XX\n\n"
           b"--XX\nContent-Type: text/plain\n\nhello\n--XX\nContent-Type: application/octet-stream\n"
           b"Content-Disposition: " + disposition + b"\n\nAAAA\n--XX\nContent-Type: image/png; name=b.png\n\nPNG\n--XX--\n")
    v = view_message(raw)
    assert v.error == "" and v.text.strip() == "hello"
    names = [a["filename"] for a in v.attachments]
    assert len(names) == 2 and names[0].endswith(("x.exe", "\ufffd\ufffd.exe")) and names[1] == "b.png"
    top = b"From: a@b.example\nSubject: x\nMIME-Version: 1.0\nContent-Type: text/plain; charset*=idna''%ff\n\nhello\n"
    v = view_message(top)
    assert v.error == "" and ("Subject", "x") in v.headers
