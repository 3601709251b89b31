"""A small real SMTP server (RFC 5321 subset: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT)
that records what it receives; stands in for the re-injection listener in Django tests."""

from __future__ import annotations

import socketserver
import threading
from dataclasses import dataclass, field


@dataclass
class Envelope:
    mail_from: str = ""
    rcpt_tos: list[str] = field(default_factory=list)
    content: bytes = b""


class SmtpSink:
    def __init__(self, known: set[str] | None = None) -> None:
        """``known``: when given, RCPT TO of any other address is refused with 550 (a mail
        server that knows its users, for recipient callouts)."""
        self.received: list[Envelope] = []
        self.known = known
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")
                self.wfile.flush()

            def handle(self) -> None:
                env = Envelope()
                self.reply("220 sink ESMTP")
                while True:
                    raw = self.rfile.readline(4096)
                    if not raw:
                        return
                    cmd = raw.decode("latin-1").strip()
                    verb = cmd[:4].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 sink")
                    elif verb == "MAIL":
                        env = Envelope(mail_from=cmd[10:].strip().strip("<>").split(">")[0])
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        addr = cmd[8:].strip().strip("<>").split(">")[0].lower()
                        if sink.known is not None and addr not in sink.known:
                            self.reply("550 5.1.1 no such user")
                        else:
                            env.rcpt_tos.append(addr)
                            self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 go on")
                        lines = []
                        while True:
                            line = self.rfile.readline(65536)
                            if not line or line in (b".\r\n", b".\n"):
                                break
                            lines.append(line[1:] if line.startswith(b"..") else line)
                        env.content = b"".join(lines)
                        sink.received.append(env)
                        self.reply("250 queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("250 OK")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SmtpSink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
