"""A message's identity for idempotent training (``message_digest``): without a Message-ID,
messages of the same subject and text that carry different attachments are different messages;
with one, the Message-ID and the text decide, as before."""

from __future__ import annotations

from gateway_milter.antispam.bayes import BayesClassifier, message_digest
from gateway_milter.antispam.saview import message_view
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx


def _multipart(boundary: str, attachment_name: str, payload: str, message_id: str = "") -> bytes:
    mid = f"Message-ID: {message_id}\r\n" if message_id else ""
    return (f"From: Alice <alice@sender.test>\r\nTo: bob@example.com\r\nSubject: Your document\r\n{mid}"
            f"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
            f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
            f"--{boundary}\r\nContent-Type: application/octet-stream; name=\"{attachment_name}\"\r\n"
            f"Content-Disposition: attachment; filename=\"{attachment_name}\"\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{payload}\r\n--{boundary}--\r\n").encode()


def test_two_messages_without_message_id_that_differ_in_attachments_are_two_messages() -> None:
    bc = BayesClassifier(MemoryStore(), 1)
    invoice = message_view(make_ctx(_multipart("b1", "invoice.pdf.exe", "TVqQAAMAAAAEAAAA")))
    photos = message_view(make_ctx(_multipart("b2", "holiday-photos.jpg", "/9j/4AAQSkZJRgAB")))
    assert message_digest(invoice) != message_digest(photos)
    assert bc.learn(invoice, True)
    assert bc.learn(photos, False), "a different message taken for a correction of the first"
    st = bc.stats()
    assert (st["spam_learned"], st["ham_learned"]) == (1, 1)


def test_a_message_id_and_the_text_still_decide_when_there_is_one() -> None:
    a = message_view(make_ctx(_multipart("b1", "invoice.pdf.exe", "TVqQAAMAAAAEAAAA", "<1@sender.test>")))
    b = message_view(make_ctx(_multipart("b2", "holiday-photos.jpg", "/9j/4AAQSkZJRgAB", "<1@sender.test>")))
    assert message_digest(a) == message_digest(b)
