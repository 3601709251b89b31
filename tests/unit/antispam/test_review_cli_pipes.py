"""A path that is a pipe (``bayes train --spam /dev/stdin`` fed by a mail filter,
``--spam <(zcat junk.mbox.gz)``, ``scan /dev/stdin``) is read once: the reader opened it to
look at its first 5 bytes, which drained the pipe into a buffer it then threw away, and opened
it again to read the message or the mbox, finding it empty: a message read as an empty file,
an mbox as no message at all."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.management import call_command

from gateway_milter.pipeline.rawmessage import iter_messages
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import msg

FROM_ = b"From a@sender.test Mon Jan  1 00:00:00 2024\n"


@pytest.fixture()
def pipe_of() -> Iterator[Callable[[bytes], Path]]:
    fds: list[int] = []

    def make(data: bytes) -> Path:
        r, w = os.pipe()
        fds.append(r)
        os.write(w, data)  # (small: it fits in the pipe's buffer)
        os.close(w)
        return Path(f"/dev/fd/{r}")

    yield make
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def test_a_message_from_a_pipe_is_read_whole(pipe_of: Callable[[bytes], Path]) -> None:
    one = msg("win", "lottery prize")
    assert [raw for _, raw in iter_messages(pipe_of(one))] == [one]


def test_an_mbox_from_a_pipe_gives_its_messages(pipe_of: Callable[[bytes], Path]) -> None:
    one, two = msg("win", "lottery prize"), msg("win again", "claim your prize")
    got = [raw for _, raw in iter_messages(pipe_of(FROM_ + one + b"\n" + FROM_ + two))]
    assert got == [one, two]


@pytest.mark.django_db  # (the published policy's trust path)
def test_bayes_train_learns_an_mbox_given_as_a_pipe(pipe_of: Callable[[bytes], Path], store: MemoryStore) -> None:
    data = FROM_ + msg("win", "lottery prize") + b"\n" + FROM_ + msg("win again", "claim your prize")
    out = io.StringIO()
    call_command("bayes", "train", "--spam", str(pipe_of(data)), stdout=out, stderr=io.StringIO())
    assert out.getvalue().strip() == "learned 2 message(s), 0 already known"
