"""``bayes train`` goes over a corpus twice (to find and order it, then to learn it) instead of
holding every message in memory: a 2 GB mbox needed more than 2 GB of memory. A message whose
bytes changed between the two readings (an mbox rewritten meanwhile) is not learned, and said."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import pytest
from django.core.management import call_command

from gateway_milter.pipeline.rawmessage import iter_message_refs
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import msg
from webadmin.management.commands import bayes as bayes_command

FROM_ = b"From sender@example.com Mon Jan  1 00:00:00 2024\n"


def mbox_of(path: Path, bodies: list[bytes]) -> None:
    path.write_bytes(b"\n".join(FROM_ + b for b in bodies))


def fixed(subject: str, body: str) -> bytes:
    """A message of fixed bytes (the helper's Message-ID varies with the hash seed)."""
    return (f"From: a@sender.test\nTo: bob@example.com\nSubject: {subject}\n"
            f"Message-ID: <{subject}@sender.test>\n\n{body}\n").encode()


def test_an_mbox_message_is_found_as_a_span_and_read_back_the_same(tmp_path: Path) -> None:
    one, two = msg("a", "first body"), msg("b", "second body")
    mbox_of(tmp_path / "box", [one, two])
    found = list(iter_message_refs(tmp_path / "box"))
    assert [raw for _, raw in found] == [one, two]
    assert all(ref.raw is None for ref, _ in found)  # not kept: read again from the file
    assert [ref.read() for ref, _ in found] == [one, two]


def test_finding_a_large_mbox_keeps_one_message_in_memory_at_a_time(tmp_path: Path) -> None:
    big = [msg(f"m{i}", f"word{i} " * 300_000) for i in range(10)]  # 10 messages of ~2 MB
    mbox_of(tmp_path / "box", big)
    tracemalloc.start()
    try:
        skipped = bayes_command._Skipped()
        found = bayes_command._collect([str(tmp_path / "box")], skipped=skipped)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(found) == 10 and skipped.empty == 0
    largest = max(len(b) for b in big)
    assert peak < 4 * largest, (peak, largest)  # (it was the whole file, 10 times one message)


@pytest.mark.django_db  # (the published policy's trust path)
def test_a_message_changed_between_the_two_readings_is_not_learned(tmp_path: Path, store: MemoryStore,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    box = tmp_path / "box"
    mbox_of(box, [fixed("win", "lottery winner prize"), fixed("cheap", "cheap pills")])
    collect = bayes_command._collect

    def collect_then_rewrite(paths: list[str], is_spam: bool = True, skipped=None):  # type: ignore[no-untyped-def]
        out = collect(paths, is_spam, skipped)
        mbox_of(box, [fixed("WIN", "lottery winner prize"), fixed("cheap", "cheap pills")])  # same sizes
        return out

    monkeypatch.setattr(bayes_command, "_collect", collect_then_rewrite)
    out = io.StringIO()
    call_command("bayes", "train", "--spam", str(box), stdout=out, stderr=io.StringIO())
    assert out.getvalue().strip() == ("learned 1 message(s), 0 already known, "
                                      "1 changed or gone since they were found not learned")


@pytest.mark.parametrize("lead", [b"\xef\xbb\xbf", b"\n", b"\r\n\n"])
def test_an_mbox_after_a_byte_order_mark_or_empty_lines_is_an_mbox(tmp_path: Path, lead: bytes) -> None:
    one, two = fixed("one", "first"), fixed("two", "second")
    (tmp_path / "box").write_bytes(lead + FROM_ + one + b"\n" + FROM_ + two)
    found = list(iter_message_refs(tmp_path / "box"))
    assert [raw for _, raw in found] == [one, two]  # (it was one message, the whole file)
    assert [ref.read() for ref, _ in found] == [one, two]


def test_a_message_file_is_read_whole(tmp_path: Path) -> None:
    one = fixed("one", "From here on, a body line\nand more")
    (tmp_path / "m.eml").write_bytes(one)
    assert [raw for _, raw in iter_message_refs(tmp_path / "m.eml")] == [one]


@pytest.mark.django_db
def test_forget_asks_for_paths_or_wipe_and_not_both(tmp_path: Path, store: MemoryStore) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--wipe"):
        call_command("bayes", "forget", stdout=io.StringIO(), stderr=io.StringIO())
    (tmp_path / "m.eml").write_bytes(fixed("x", "y"))
    with pytest.raises(CommandError, match="without --spam/--ham"):
        call_command("bayes", "forget", "--wipe", "--spam", str(tmp_path / "m.eml"), stdout=io.StringIO(),
                     stderr=io.StringIO())


def test_reading_back_keeps_few_files_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # bayes forget reads every message back in one pass: a maildir of 100,000 files must not
    # hold 100,000 files open (EMFILE)
    d = tmp_path / "many"
    d.mkdir()
    for i in range(60):
        (d / f"{i}.eml").write_bytes(fixed(f"m{i}", "body"))
    found = bayes_command._collect([str(d)])
    opened: list[object] = []
    real_open = open

    def counting_open(*args, **kw):  # type: ignore[no-untyped-def]
        fh = real_open(*args, **kw)
        opened.append(fh)
        return fh

    monkeypatch.setattr("builtins.open", counting_open)
    most = 0
    for _f, _raw in bayes_command._read(found):
        most = max(most, sum(1 for fh in opened if not fh.closed))  # type: ignore[attr-defined]
    assert len(opened) == 60 and most <= 16, most
