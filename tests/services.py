"""Real services for the integration tiers, each started on free loopback ports in a private
directory and stopped afterwards: PostgreSQL, Redis, clamd, knotd, rbldnsd, Postfix, smtp-sink.

Nothing here is a fake: every helper starts the real daemon from Debian's packages.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared; tests call pytest.skip when it is absent."""
    return SHARED.joinpath(*parts)


def free_port(udp_too: bool = False) -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            if not udp_too:
                return int(port)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                    return int(port)
                except OSError:
                    continue
    raise RuntimeError("no free port")


def wait_until(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.02,
               proc: subprocess.Popen[bytes] | None = None, what: str = "service") -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited early with rc={proc.returncode}")
        try:
            if check():
                return time.monotonic() - t0
        except Exception:  # noqa: BLE001
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout}s")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def traversable_tmpdir(prefix: str) -> Iterator[Path]:
    """A 0755 directory: servers that drop to another user (postgres, rbldns) can read it."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def start(cmd: list[Any], log: Path, **kw: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(c) for c in cmd], stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, **kw)


EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


@contextlib.contextmanager
def clamd_server(workdir: Path, extra_db: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    db = workdir / "db"
    db.mkdir(parents=True, exist_ok=True)
    (db / "test.ndb").write_text(
        f"Test.EICAR.NDB:0:*:{EICAR.hex()}\n"
        "Test.ClamExe.NDB:0:*:434c414d657373616765426f7841\n")
    (db / "test.hdb").write_text("44d88612fea8a8f36de82e1278abb02f:68:Test.EICAR.HDB\n")
    for name, text in (extra_db or {}).items():
        (db / name).write_text(text)
    port, sock = free_port(), workdir / "clamd.sock"
    conf = workdir / "clamd.conf"
    conf.write_text(f"""Foreground yes
LocalSocket {sock}
LocalSocketMode 666
TCPSocket {port}
TCPAddr 127.0.0.1
DatabaseDirectory {db}
LogFile {workdir}/clamd.log
PidFile {workdir}/clamd.pid
ScanArchive yes
AlertEncrypted yes
StreamMaxLength 25M
SelfCheck 0
Bytecode no
""")
    proc = start(["clamd", "-c", conf], workdir / "clamd.out")

    def ping() -> bool:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1)
            s.connect(str(sock))
            s.sendall(b"zPING\0")
            return s.recv(16) == b"PONG\0"

    took = wait_until(ping, proc=proc, what="clamd")
    try:
        yield {"port": port, "socket": str(sock), "startup_s": took, "proc": proc, "conf": str(conf)}
    finally:
        stop(proc)


@contextlib.contextmanager
def knot_server(workdir: Path, zones: dict[str, str]) -> Iterator[dict[str, Any]]:
    """zones: {'example.test': '<zone file text>', ...}"""
    (workdir / "zones").mkdir(parents=True, exist_ok=True)
    (workdir / "run").mkdir(exist_ok=True)
    (workdir / "db").mkdir(exist_ok=True)
    for name, text in zones.items():
        (workdir / "zones" / f"{name}.zone").write_text(text)
    port = free_port(udp_too=True)
    conf = workdir / "knot.conf"
    conf.write_text(f"""server:
    rundir: "{workdir}/run"
    listen: [ 127.0.0.1@{port} ]
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{workdir}/db"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "{workdir}/zones"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
""" + "".join(f"  - domain: {z}\n" for z in zones))
    proc = start(["knotd", "-c", conf], workdir / "knotd.out")
    import dns.message
    import dns.query

    first = next(iter(zones))
    took = wait_until(lambda: dns.query.udp(dns.message.make_query(first, "SOA"), "127.0.0.1", port=port,
                                            timeout=0.2).answer, proc=proc, what="knotd")
    try:
        yield {"port": port, "startup_s": took, "conf": str(conf), "dir": workdir}
    finally:
        stop(proc)


@contextlib.contextmanager
def rbldnsd_server(datasets: dict[tuple[str, str], str]) -> Iterator[dict[str, Any]]:
    """datasets: {('bl.test', 'ip4set'): '<data>', ('uribl.test', 'dnset'): '<data>'}"""
    with traversable_tmpdir("rbldnsd-") as workdir:
        specs = []
        for (zone, kind), text in datasets.items():
            f = workdir / f"{zone}.{kind}"
            f.write_text(text)
            os.chmod(f, 0o644)
            specs.append(f"{zone}:{kind}:{f.name}")
        port = free_port(udp_too=True)
        cmd: list[Any] = ["rbldnsd", "-n", "-b", f"127.0.0.1/{port}", "-w", workdir, "-c", "1s"]
        if os.geteuid() == 0:
            cmd[1:1] = ["-u", "rbldns"]
        proc = start(cmd + specs, workdir / "rbldnsd.out")
        import dns.message
        import dns.query

        zone0 = next(iter(datasets))[0]
        took = wait_until(lambda: dns.query.udp(dns.message.make_query(zone0, "SOA"), "127.0.0.1", port=port,
                                                timeout=0.2).rcode() == 0, proc=proc, what="rbldnsd")
        try:
            yield {"port": port, "startup_s": took, "dir": workdir}
        finally:
            stop(proc)


@contextlib.contextmanager
def postgres_server(run_as: str = "postgres") -> Iterator[dict[str, Any]]:
    with traversable_tmpdir("pgtest-") as workdir:
        pgbin = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))[-1]
        kw: dict[str, Any] = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam(run_as)
            os.chown(workdir, pw.pw_uid, pw.pw_gid)
            kw = dict(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[],
                      env={"PATH": os.environ["PATH"], "HOME": str(workdir)})
        data, port = workdir / "data", free_port()
        subprocess.run([pgbin / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                        "--locale=C.UTF-8", "--no-sync"], check=True, stdout=subprocess.DEVNULL, cwd=workdir, **kw)
        proc = start([pgbin / "postgres", "-D", data, "-p", str(port), "-k", str(workdir),
                      "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                      "-c", "full_page_writes=off"], workdir / "postgres.log", cwd=workdir, **kw)
        import psycopg2

        took = wait_until(lambda: psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                                                   connect_timeout=1).close() or True, proc=proc, what="postgres")
        try:
            yield {"host": "127.0.0.1", "port": port, "user": "postgres", "startup_s": took,
                   "url": f"postgres://postgres@127.0.0.1:{port}/postgres"}
        finally:
            stop(proc, signal.SIGINT)


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[dict[str, Any]]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                  "--dir", workdir, "--daemonize", "no"], workdir / "redis.log")
    import redis

    took = wait_until(lambda: redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5).ping(), proc=proc,
                      what="redis")
    try:
        yield {"host": "127.0.0.1", "port": port, "startup_s": took, "url": f"redis://127.0.0.1:{port}/0"}
    finally:
        stop(proc)


@contextlib.contextmanager
def unbound_server(workdir: Path, local_data: list[str] | None = None,
                   stubs: dict[str, int] | None = None) -> Iterator[dict[str, Any]]:
    """A hermetic resolver: every name not given in ``local_data`` (unbound local-data lines,
    e.g. ``"mail.example.test. 300 IN A 192.0.2.25"``) or delegated in ``stubs`` (zone ->
    port of an authoritative server on 127.0.0.1) answers NXDOMAIN at once."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port(udp_too=True)
    lines = [
        "server:",
        f"    interface: 127.0.0.1@{port}",
        f"    port: {port}",
        "    do-ip6: no",
        "    do-daemonize: no",
        '    username: ""',
        '    chroot: ""',
        f'    directory: "{workdir}"',
        '    pidfile: ""',
        "    use-syslog: no",
        "    verbosity: 0",
        "    num-threads: 1",
        "    access-control: 127.0.0.0/8 allow",
        "    do-not-query-localhost: no",
        '    module-config: "iterator"',
        "    cache-max-ttl: 0",
        "    cache-max-negative-ttl: 0",
        '    local-zone: "." static',
    ]
    zones: set[str] = set()
    for rr in local_data or []:
        name = rr.split()[0].rstrip(".") + "."
        zone = name.split(".", 1)[1] if name.count(".") > 1 else name
        zones.add(zone)
    for z in sorted(zones | set(stubs or {})):
        lines.append(f'    local-zone: "{z.rstrip(".")}." transparent')
    for z in stubs or {}:
        lines.append(f'    domain-insecure: "{z.rstrip(".")}."')
    for rr in local_data or []:
        lines.append(f'    local-data: "{rr}"')
    for z, p in (stubs or {}).items():
        lines += ["stub-zone:", f'    name: "{z.rstrip(".")}."', f"    stub-addr: 127.0.0.1@{p}"]
    lines += ["remote-control:", "    control-enable: no"]
    conf = workdir / "unbound.conf"
    conf.write_text("\n".join(lines) + "\n")
    proc = start(["unbound", "-d", "-c", conf], workdir / "unbound.out")
    import dns.message
    import dns.query

    took = wait_until(lambda: dns.query.udp(dns.message.make_query("probe.invalid", "A"), "127.0.0.1", port=port,
                                            timeout=0.2).rcode() in (0, 3), proc=proc, what="unbound")
    try:
        yield {"port": port, "startup_s": took, "conf": str(conf)}
    finally:
        stop(proc)
