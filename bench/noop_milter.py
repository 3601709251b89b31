#!/usr/bin/env python3
"""The benchmark's baseline: a no-op pymilter milter that takes part in every stage of the
transaction a filter must see (connect, HELO, MAIL, RCPT, DATA, headers, body, end of message,
abort, close; connect answered without reply), as the reference milter in the shared Postfix
recipe does, and adds one header at end of message. It judges nothing.

With a second argument ``noreply`` it also asks for no replies to HELO, DATA, headers and body,
as Bulwark does (the ``noop-nr`` configuration of bench.py): the same protocol economy without
any work, to show how much of a difference is the protocol and how much the work."""

import os
import sys

import Milter


class NoopMilter(Milter.Base):
    @Milter.noreply
    def connect(self, hostname: str, family: int, hostaddr: object) -> int:
        return Milter.CONTINUE

    def hello(self, heloname: str) -> int:
        return Milter.CONTINUE

    def envfrom(self, mailfrom: str, *esmtp: str) -> int:
        return Milter.CONTINUE

    def envrcpt(self, to: str, *esmtp: str) -> int:
        return Milter.CONTINUE

    def data(self) -> int:  # avoids the NODATA Nagle stall (recipes/postfix.md 3.4)
        return Milter.CONTINUE

    def header(self, name: str, value: str) -> int:
        return Milter.CONTINUE

    def eoh(self) -> int:
        return Milter.CONTINUE

    def body(self, chunk: bytes) -> int:
        return Milter.CONTINUE

    def eom(self) -> int:
        self.addheader("X-Noop", "seen")
        return Milter.ACCEPT

    def abort(self) -> int:
        return Milter.CONTINUE

    def close(self) -> int:
        return Milter.CONTINUE


class NoReplyNoopMilter(NoopMilter):
    @Milter.noreply
    def hello(self, heloname: str) -> int:
        return Milter.CONTINUE

    @Milter.noreply
    def data(self) -> int:
        return Milter.CONTINUE

    @Milter.noreply
    def header(self, name: str, value: str) -> int:
        return Milter.CONTINUE

    @Milter.noreply
    def body(self, chunk: bytes) -> int:
        return Milter.CONTINUE


if __name__ == "__main__":
    os.umask(0)
    Milter.factory = NoReplyNoopMilter if sys.argv[2:] == ["noreply"] else NoopMilter
    Milter.set_flags(Milter.ADDHDRS)
    Milter.runmilter("noop", sys.argv[1], timeout=240)
