"""A real mail stack on loopback for integration tests: a private Postfix instance wired to the
gateway milter (unix socket), a re-injection listener without milters, and an SMTP sink.

    with mail_stack(tmp) as stack:
        stack.import_policy({...})            # manage.py policy import, milter reloads
        stack.send(sender, [rcpts], message)  # -> (code, text) of the final reply
        stack.sink.wait_for(n)                # messages delivered to the sink
"""

from __future__ import annotations

import contextlib
import json
import os
import smtplib
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any

import yaml

from scripts.postfix_instance import write_instance
from tests.services import free_port, traversable_tmpdir, unbound_server, wait_until

ROOT = Path(__file__).resolve().parent.parent

@dataclass
class Delivered:
    mail_from: str
    rcpts: list[str]
    data: bytes
    # RFC 3461 RCPT parameters (NOTIFY=, ORCPT=) per recipient, from a sink that offers DSN
    rcpt_params: dict[str, list[str]] = field(default_factory=dict)

    @property
    def message(self) -> Any:
        return message_from_bytes(self.data)


@dataclass
class Sink:
    """aiosmtpd in a thread: a real SMTP server that records what Postfix delivers."""

    port: int
    messages: list[Delivered] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, n: int, timeout: float = 30.0) -> list[Delivered]:
        wait_until(lambda: len(self.messages) >= n, timeout=timeout, interval=0.05, what=f"{n} delivered message(s)")
        return list(self.messages)

    def find(self, needle: bytes) -> list[Delivered]:
        return [m for m in self.messages if needle in m.data]

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()


@contextlib.contextmanager
def smtp_sink(dsn: bool = False) -> Iterator[Sink]:
    """With *dsn* the sink offers DSN (Postfix then passes NOTIFY= and ORCPT= on) and records
    each recipient's parameters."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    port = free_port()
    sink = Sink(port)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            with sink._lock:
                sink.messages.append(Delivered(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content),
                                               dict(getattr(envelope, "rcpt_dsn", {}))))
            return "250 2.0.0 delivered to sink"

    class DsnHandler(Handler):
        async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                              responses: list[str]) -> list[str]:
            session.host_name = hostname
            return [*responses[:-1], "250-DSN", responses[-1]]

    class DsnSMTP(SMTP):  # type: ignore[misc]
        """aiosmtpd answers 555 to every RCPT parameter: RFC 3461's are taken off and kept."""

        async def smtp_RCPT(self, arg: str | None) -> None:
            words = (arg or "").split()
            params = [w for w in words[1:] if w.split("=", 1)[0].upper() in ("NOTIFY", "ORCPT")]
            before = len(self.envelope.rcpt_tos)
            await super().smtp_RCPT(" ".join(w for w in words if w not in params))
            if len(self.envelope.rcpt_tos) > before:
                self.envelope.__dict__.setdefault("rcpt_dsn", {})[self.envelope.rcpt_tos[-1]] = params

    class DsnController(Controller):  # type: ignore[misc]
        def factory(self) -> SMTP:
            return DsnSMTP(self.handler, **self.SMTP_kwargs)

    ctl = (DsnController(DsnHandler(), hostname="127.0.0.1", port=port, data_size_limit=100_000_000) if dsn
           else Controller(Handler(), hostname="127.0.0.1", port=port, data_size_limit=100_000_000))
    ctl.start()
    try:
        yield sink
    finally:
        ctl.stop()


class MailStack:
    def __init__(self, root: Path, env: dict[str, str], sink: Sink) -> None:
        self.root = root
        self.env = env
        self.sink = sink
        self.port = free_port()
        self.reinject_port = free_port()
        self.milter_sock = root / "milter" / "milter.sock"
        self.pf = root / "pf"
        self.milter: subprocess.Popen[bytes] | None = None

    # -- manage.py ----------------------------------------------------------------------------
    def manage(self, *args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=self.env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120, input=input.decode() if input else None)
        if check and p.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def import_policy(self, doc: dict[str, Any], wait: bool = True) -> None:
        f = self.root / "policy.yaml"
        f.write_text(yaml.safe_dump(doc))
        out = self.manage("policy", "import", str(f)).stdout
        version = int(out.strip().rsplit(" ", 1)[-1])
        if wait:
            self.wait_policy(version)

    def wait_policy(self, version: int, timeout: float = 10.0) -> None:
        # The worker logs every load; the control channel makes it immediate.
        assert self.milter is not None
        os.kill(self.milter.pid, 1)  # SIGHUP -> reload now
        wait_until(lambda: f"policy version {version} loaded" in self.milter_log(), timeout=timeout,
                   interval=0.05, what=f"policy version {version}")

    def milter_log(self) -> str:
        try:
            return (self.root / "milter" / "milter.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- processes ------------------------------------------------------------------------------
    def start_postfix(self) -> None:
        d = self.pf
        name = "bw" + "".join(c for c in d.parent.name if c.isalnum())[-8:].lower()
        write_instance(d, port=self.port, reinject=self.reinject_port, relay=self.sink.port,
                       milter=f"unix:{self.milter_sock}", name=name)
        for action in ("check", "start"):
            # postfix prints its errors only to a tty: run it under script(1) to see them
            p = subprocess.run(["script", "-qec", f"postfix -c {d / 'etc'} {action}", "/dev/null"],
                               capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(f"postfix {action} failed: {p.stdout}{p.stderr}")
        wait_until(lambda: smtplib.SMTP("127.0.0.1", self.port, timeout=2).quit(), timeout=20, what="postfix")

    def stop_postfix(self) -> None:
        subprocess.run(["postfix", "-c", str(self.pf / "etc"), "abort"], capture_output=True)

    def start_milter(self) -> None:
        (self.root / "milter").mkdir(exist_ok=True)
        os.chmod(self.root / "milter", 0o755)
        log = open(self.root / "milter" / "milter.log", "ab")  # noqa: SIM115
        self.milter = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "runmilter", "--socket",
                                        f"unix:{self.milter_sock}"], env=self.env, cwd=ROOT, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_until(lambda: self.milter_sock.exists() and "ready on" in self.milter_log(), timeout=30,
                   proc=self.milter, what="milter")

    def worker_pid(self) -> int:
        assert self.milter is not None
        out = subprocess.run(["pgrep", "-P", str(self.milter.pid), "-f", "gateway_milter.front.worker"],
                             capture_output=True, text=True).stdout.split()
        return int(out[0])

    def stop_milter(self) -> None:
        if self.milter is not None and self.milter.poll() is None:
            self.milter.terminate()
            try:
                self.milter.wait(20)
            except subprocess.TimeoutExpired:
                self.milter.kill()
                self.milter.wait()

    # -- SMTP ------------------------------------------------------------------------------------
    def send(self, sender: str, rcpts: list[str], data: bytes | str, port: int | None = None,
             rcpt_options: dict[str, list[str]] | None = None) -> tuple[int, str, dict[str, tuple[int, bytes]]]:
        """Send one message; returns (final code, final text, {refused rcpt: (code, text)}).
        ``rcpt_options``: ESMTP parameters of a recipient's RCPT TO (``NOTIFY=NEVER``)."""
        if isinstance(data, str):
            data = data.encode()
        with smtplib.SMTP("127.0.0.1", port or self.port, timeout=180) as s:
            s.ehlo("client.test")
            code, text = s.mail(sender)
            if code >= 400:
                return code, text.decode(errors="replace"), {}
            refused: dict[str, tuple[int, bytes]] = {}
            for r in rcpts:
                c, t = s.rcpt(r, (rcpt_options or {}).get(r, ()))
                if c >= 400:
                    refused[r] = (c, t)
            if len(refused) == len(rcpts):
                c, t = next(iter(refused.values()))
                return c, t.decode(errors="replace"), refused
            code, text = s.data(data)
            return code, text.decode(errors="replace"), refused

    def log_records(self) -> list[dict[str, Any]]:
        out = self.manage("msglog", "show", "--json", "--last", "1000").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def queue_ids(self) -> list[str]:
        p = subprocess.run(["postqueue", "-c", str(self.pf / "etc"), "-j"], capture_output=True, text=True)
        return [json.loads(line)["queue_id"] for line in p.stdout.splitlines() if line.strip()]


@contextlib.contextmanager
def mail_stack(extra_env: dict[str, str] | None = None, dns_data: list[str] | None = None,
               dns_stubs: dict[str, int] | None = None, sink_dsn: bool = False) -> Iterator[MailStack]:
    """The stack resolves through a real hermetic unbound: names in ``dns_data`` (local-data
    records) or ``dns_stubs`` (zone -> authoritative port) resolve, everything else is NXDOMAIN.
    ``sink_dsn``: the sink offers DSN and records RCPT parameters (``Delivered.rcpt_params``)."""
    with traversable_tmpdir("bulwark-it-") as root, smtp_sink(sink_dsn) as sink, \
            unbound_server(root / "dns", dns_data, dns_stubs) as dns:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        env.update({
            "GATEWAY_DATA_DIR": str(root / "var"),
            "GATEWAY_POLICY_POLL": "0.5",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PYTHONPATH": str(ROOT),
            "GATEWAY_DNS_SERVERS": f"127.0.0.1:{dns['port']}",
            "GATEWAY_DNS_TIMEOUT": "2",
        })
        env.update(extra_env or {})
        stack = MailStack(root, env, sink)
        env["GATEWAY_REINJECT_PORT"] = str(stack.reinject_port)
        if env.get("GATEWAY_DATABASE_URL", "").startswith("postgres"):
            _fresh_postgres_db(env, root.name)
        stack.manage("migrate", "-v0")
        stack.start_milter()
        stack.start_postfix()
        try:
            yield stack
        finally:
            stack.stop_postfix()
            stack.stop_milter()


def _fresh_postgres_db(env: dict[str, str], name: str) -> None:
    """Each stack gets its own database on the shared test PostgreSQL server."""
    from urllib.parse import urlparse

    import psycopg2

    u = urlparse(env["GATEWAY_DATABASE_URL"])
    db = "it_" + "".join(c for c in name.lower() if c.isalnum())[:40]
    conn = psycopg2.connect(host=u.hostname, port=u.port, user=u.username, dbname=u.path.lstrip("/") or "postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{db}"')
    conn.close()
    env["GATEWAY_DATABASE_URL"] = u._replace(path="/" + db).geturl()
