"""Security → Train Bayes refuses a file over MAX_UPLOAD, but Django had already written every
byte of it to a temporary file before the view could look at its size (uploaded files do not
count toward DATA_UPLOAD_MAX_MEMORY_SIZE): an upload of any size filled the disk first. The
upload handler now keeps at most the bound while receiving, and the view still answers 400."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.django.conftest import World
from webadmin import training

pytestmark = pytest.mark.django_db


def test_it_never_keeps_more_than_the_bound_of_an_upload(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training, "MAX_UPLOAD", 1024 * 1024)
    kept: list[int] = []
    real_start = training.start

    def spy(upload: Any, *args: Any, **kwargs: Any) -> str:
        kept.append(os.path.getsize(upload.temporary_file_path()) if hasattr(upload, "temporary_file_path")
                    else len(upload.read()))
        upload.seek(0)
        return real_start(upload, *args, **kwargs)

    monkeypatch.setattr(training, "start", spy)
    body = b"From: a@b.test\nSubject: x\n\n" + b"x" * (4 * 1024 * 1024)  # (over the 2.5 MB kept in memory)
    c = world.client("global_admin")
    r = c.post("/security/antispam/train/", {"label": "spam", "scope": "global",
                                             "file": SimpleUploadedFile("big.eml", body)})
    assert r.status_code == 400 and "larger than 1 MB" in r.content.decode()
    assert kept and kept[0] <= 1024 * 1024 + 1, kept
    # the API too
    r = c.post("/api/antispam/train/", {"label": "spam", "scope": "global",
                                        "file": SimpleUploadedFile("big.eml", body)})
    assert r.status_code == 400 and "file" in r.json()
    assert len(kept) == 2 and kept[1] <= 1024 * 1024 + 1, kept


def test_a_file_within_the_bound_is_taken_whole(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bytes] = []
    monkeypatch.setattr(training, "start", lambda upload, *a, **k: seen.append(upload.read()) or "x" * 22)
    body = b"From: a@b.test\nSubject: x\n\n" + b"y" * (3 * 1024 * 1024)
    world.client("global_admin").post("/security/antispam/train/", {"label": "spam", "scope": "global",
                                                                     "file": SimpleUploadedFile("m.eml", body)})
    assert seen == [body]
