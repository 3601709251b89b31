"""Security → Train Bayes (webadmin/training.py): a mailbox uploaded from the web admin or the
API (an mbox, a message, a zip of them) is learned in the background into a scope the
administrator holds, with its progress on a page of its own; bad and hostile uploads get their
reason; nobody sees another account's training."""

from __future__ import annotations

import io
import threading
import time
import zipfile
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.store.memory import MemoryStore
from tests.django.conftest import World, page_when_done
from webadmin import training


def _msg(i: int, word: str = "offer") -> bytes:
    return (f"From: Sender {i} <s{i}@sender.test>\nTo: user@a.example\nSubject: {word} number {i}\n"
            f"Message-ID: <t{i}.{word}@sender.test>\nDate: Mon, 30 Nov 2026 10:00:00 +0000\n\n"
            f"Cheap {word} {i} for you, click now.\n").encode()


def _mbox(msgs: list[bytes]) -> bytes:
    return b"".join(b"From MAILER-DAEMON Mon Nov 30 10:00:00 2026\n" + m + b"\n" for m in msgs)


def _zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


def _train(c: Client, data: bytes, label: str = "spam", scope: str = "global", name: str = "mail.mbox") -> Any:
    return c.post("/security/antispam/train/", {"file": SimpleUploadedFile(name, data), "label": label, "scope": scope})


def _finish(c: Client, location: str) -> str:
    return page_when_done(c, location, "training")


def test_an_mbox_is_learned_with_its_progress_and_again_changes_nothing(world: World, store: MemoryStore) -> None:
    c = world.client("global_admin")
    data = _mbox([_msg(i) for i in range(130)])
    r = _train(c, data)
    assert r.status_code == 302 and r["Location"].startswith("/security/antispam/train/")
    page = _finish(c, r["Location"])
    assert "130 of 130 messages (100 %): 130 learned, 0 already known." in page and 'id="train-done"' in page
    assert 'value="100"' in page  # the progress bar
    assert BayesClassifier(store).stats("global")["spam_learned"] == 130
    assert "global has now learned 130 spam and 0 ham; Bayes does not read it yet: needs 200 of each class." in page
    assert not list(training.jobs_dir().glob("*.upload"))  # the upload is gone once learned
    form = c.get("/security/antispam/train/").content.decode()
    assert "global — 130 spam, 0 ham learned; not read yet: needs 200 of each class" in form
    assert "dom:b.example — 0 spam, 0 ham learned; not read yet: needs 200 of each class" in form
    page = _finish(c, _train(c, data)["Location"])
    assert "0 learned, 130 already known" in page
    assert BayesClassifier(store).stats("global")["spam_learned"] == 130


def test_a_zip_of_messages_and_mboxes_is_learned_in_a_domain_scope(world: World, store: MemoryStore) -> None:
    c = world.client("global_admin")
    data = _zip({"Junk/1.eml": _msg(1, "hello"), "Junk/2.eml": _msg(2, "hello"), "Junk/more.mbox":
                 _mbox([_msg(3, "hello"), _msg(4, "hello")]), "__MACOSX/._1.eml": b"\x00junk", "Junk/.DS_Store": b"x",
                 "Junk/empty.eml": b"", "Junk/": b""})
    page = _finish(c, _train(c, data, "ham", "dom:a.example", "export.zip")["Location"])
    assert "4 of 4 messages (100 %): 4 learned, 0 already known, 1 skipped" in page
    assert BayesClassifier(store).stats("dom:a.example")["ham_learned"] == 4
    assert BayesClassifier(store).stats("global")["ham_learned"] == 0


def test_a_zips_files_that_are_not_mail_are_skipped_not_learned(world: World, store: MemoryStore) -> None:
    c = world.client("global_admin")
    data = _zip({"Junk/1.eml": _msg(1, "hello"), "Junk/README.txt": b"Exported by MailClient 9.\nUnread: 4\n",
                 "Junk/index.csv": b"id,subject\n1,hello\n", "Junk/2.eml": _msg(2, "hello")})
    page = _finish(c, _train(c, data, "ham", "global", "export.zip")["Location"])
    assert "2 of 2 messages (100 %): 2 learned, 0 already known, 2 skipped" in page
    assert BayesClassifier(store).stats("global")["ham_learned"] == 2


@pytest.mark.parametrize(("data", "says"), [
    (b"just some text, no headers\n", "This is not a message, an mbox file or a zip of them."),
    (b"PK\x03\x04 not really a zip", "The zip cannot be read"),
    (_zip({"notes.txt": b""}), "No message in the file."),
])
def test_a_file_that_holds_no_message_fails_with_the_reason(world: World, data: bytes, says: str) -> None:
    c = world.client("global_admin")
    page = _finish(c, _train(c, data)["Location"])
    assert 'id="train-failed"' in page and says in page
    assert not list(training.jobs_dir().glob("*.upload"))


def test_the_upload_and_its_spool_are_the_gateways_alone(world: World, store: MemoryStore,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    modes: list[int] = []
    real = training.messages_of

    def spy(path: Any, spool: training.Spool) -> None:
        modes.extend([path.stat().st_mode & 0o777, spool.path.stat().st_mode & 0o777])
        real(path, spool)

    monkeypatch.setattr(training, "messages_of", spy)
    c = world.client("global_admin")
    assert "1 learned" in _finish(c, _train(c, _msg(1), name="one.eml")["Location"])
    assert modes == [0o600, 0o600]


def test_bounds_on_hostile_uploads(world: World, store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    c = world.client("global_admin")
    monkeypatch.setattr(training, "MAX_MESSAGES", 3)
    page = _finish(c, _train(c, _mbox([_msg(i) for i in range(5)]))["Location"])
    assert "More than 3 messages: split the file." in page
    monkeypatch.setattr(training, "MAX_MEMBERS", 2)
    page = _finish(c, _train(c, _zip({f"{i}.eml": _msg(i) for i in range(3)}), name="x.zip")["Location"])
    assert "The zip has more than 2 files." in page
    monkeypatch.setattr(training, "MAX_MEMBERS", 100)
    monkeypatch.setattr(training, "MAX_UNZIPPED", 500)  # the bytes read count, not the headers' sizes
    page = _finish(c, _train(c, _zip({f"{i}.eml": _msg(i) for i in range(3)}), name="x.zip")["Location"])
    assert "The zip holds more than 0 MB." in page
    assert not list(training.jobs_dir().glob("*.spool")) and not list(training.jobs_dir().glob("*.upload"))
    monkeypatch.setattr(training, "MAX_UPLOAD", 1000)
    r = _train(c, _mbox([_msg(i) for i in range(20)]))
    assert r.status_code == 400 and "larger than 0 MB" in r.content.decode()
    assert BayesClassifier(store).stats("global")["spam_learned"] == 0


def test_bad_form_input_is_refused_with_its_reason(world: World) -> None:
    c = world.client("global_admin")
    r = _train(c, _msg(1), label="maybe")
    assert r.status_code == 400 and "Choose spam or ham." in r.content.decode()
    r = c.post("/security/antispam/train/", {"label": "spam", "scope": "global"})
    assert r.status_code == 400 and "Choose a file" in r.content.decode()
    r = _train(c, _msg(1), scope="dom:nowhere.example")
    assert r.status_code == 400 and "is not a scope you may train" in r.content.decode()


def test_a_domain_admin_trains_their_domains_only_and_sees_their_own_trainings(world: World,
                                                                               store: MemoryStore) -> None:
    c = world.client("domain_admin", "a")
    form = c.get("/security/antispam/train/").content.decode()
    assert '<option value="dom:a.example"' in form and 'value="global"' not in form and "dom:b.example" not in form
    for scope in ("global", "dom:b.example"):
        r = _train(c, _msg(1), scope=scope)
        assert r.status_code == 400 and "is not a scope you may train" in r.content.decode()
    r = _train(c, _msg(1), scope="dom:a.example", name="one.eml")
    page = _finish(c, r["Location"])
    assert "1 of 1 messages (100 %): 1 learned" in page
    assert BayesClassifier(store).stats("dom:a.example")["spam_learned"] == 1
    assert world.client("domain_admin", "b").get(r["Location"]).status_code == 404
    assert world.client("global_admin").get(r["Location"]).status_code == 404  # (anyone else's)
    assert world.client("user", "a").get("/security/antispam/train/").status_code == 404
    assert c.get("/security/antispam/train/AAAAAAAAAAAAAAAAAAAAAA/").status_code == 404


def test_the_api_trains_and_reports_progress(world: World, store: MemoryStore,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    c = world.client("global_admin")
    r = c.post("/api/antispam/train/", {"file": SimpleUploadedFile("s.mbox", _mbox([_msg(i) for i in range(3)])),
                                        "label": "spam", "scope": "global"})
    assert r.status_code == 202, r.content
    url = r.json()["url"]
    for _ in range(400):
        job = c.get(url).json()
        if job["state"] != "running":
            break
        time.sleep(0.05)
    assert (job["state"], job["total"], job["done"], job["percent"], job["learned"]) == ("done", 3, 3, 100, 3)
    assert "owner" not in job and "actor" not in job
    assert world.client("domain_admin", "a").get(url).status_code == 404
    r = c.post("/api/antispam/train/", {"label": "spam", "scope": "global"})
    assert r.status_code == 400 and "file" in r.json()
    r = c.post("/api/antispam/train/", {"file": SimpleUploadedFile("s.eml", _msg(1)), "label": "spam",
                                        "scope": "dom:b.example"}, HTTP_ACCEPT="application/json")
    assert r.status_code == 202  # a global administrator holds every domain's scope
    while c.get(r.json()["url"]).json()["state"] == "running":  # (its thread releases the slot it took)
        time.sleep(0.05)
    busy = threading.BoundedSemaphore(1)
    busy.acquire()
    monkeypatch.setattr(training, "_running", busy)
    r = c.post("/api/antispam/train/", {"file": SimpleUploadedFile("s.eml", _msg(2)), "label": "spam",
                                        "scope": "global"})
    assert r.status_code == 503 and "A training is running" in r.json()["detail"]
