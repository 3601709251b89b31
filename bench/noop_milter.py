#!/usr/bin/env python3
"""A no-op pymilter milter (the benchmark's baseline): every callback returns CONTINUE and the
end of message adds one header, as the gateway does at minimum."""

import sys

import Milter


class NoopMilter(Milter.Base):
    def data(self) -> int:  # avoids the NODATA Nagle stall (recipes/postfix.md 3.4)
        return Milter.CONTINUE

    def header(self, name: str, value: str) -> int:
        return Milter.CONTINUE

    def body(self, chunk: bytes) -> int:
        return Milter.CONTINUE

    def eom(self) -> int:
        self.addheader("X-Noop", "seen")
        return Milter.ACCEPT


if __name__ == "__main__":
    import os

    os.umask(0)
    Milter.factory = NoopMilter
    Milter.set_flags(Milter.ADDHDRS)
    Milter.runmilter("noop", sys.argv[1], timeout=240)
