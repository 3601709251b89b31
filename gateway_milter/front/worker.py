"""The milter worker process: libmilter's threads, the policy poller and the log ingester.

Started by the supervisor (``manage.py runmilter``). libmilter owns SIGTERM/SIGINT/SIGHUP in
this process (its signal thread stops the milter cleanly on each), so policy reloads arrive as
a line ``reload`` on standard input from the supervisor instead of as a signal.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time

log = logging.getLogger("bulwark.worker")


def _nodelay_listener(port: int, tries: int = 100) -> None:
    """libmilter never sets TCP_NODELAY; accepted sockets inherit it from the listening
    socket on Linux, so set it there (avoids a 40 ms Nagle/delayed-ACK stall per message)."""
    for _ in range(tries):
        time.sleep(0.05)
        for fd in os.listdir("/proc/self/fd"):
            try:
                s = socket.socket(fileno=int(fd))
            except OSError:
                continue
            try:
                if s.family in (socket.AF_INET, socket.AF_INET6) and s.type == socket.SOCK_STREAM \
                        and s.getsockname()[1] == port and s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    return
            except OSError:
                pass
            finally:
                s.detach()


def _control_reader(provider: object) -> None:
    for line in sys.stdin:
        if line.strip() == "reload":
            log.info("reload requested")
            provider.request_reload()  # type: ignore[attr-defined]


def _warm_up(gateway: object) -> None:
    """Build the heuristic rule engines (seconds of CPU for the Debian rule set) in the
    background at start, with the published settings, so the first message does not wait:
    one for each rule set the global and per-domain settings name, as many as a process keeps."""
    try:
        from gateway_milter.antispam.engine import MAX_ENGINES
        from gateway_milter.layers import rules

        snap = gateway.policy.current()  # type: ignore[attr-defined]
        # only where the rules layer is on: its build is seconds of CPU a lists-only gateway
        # does not need (the layer's prefetch warms up later if a policy turns it on)
        seen: set[tuple[object, ...]] = set()
        for domain in (None, *snap.domains):
            settings = snap.settings_for("rules", domain)
            key = rules.rule_set_of(settings)
            if settings.enabled and key not in seen and len(seen) < MAX_ENGINES:
                seen.add(key)
                rules.warm_up(settings)
    except Exception:
        log.exception("rules warm-up failed")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bulwark-milter-worker")
    ap.add_argument("--socket", required=True)
    ap.add_argument("--timeout", type=int, default=600)
    args = ap.parse_args(argv)

    # libmilter's signal thread sigwait()s for these; every other thread must block them, or
    # the kernel may deliver SIGTERM to a Python thread and kill the process without a clean
    # stop. Threads inherit the mask, so block before any thread exists.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import Milter
    from django.conf import settings

    from gateway_milter import compiled
    from gateway_milter.adapters.django_store import build_gateway, write_log_batch
    from gateway_milter.front.milter import BulwarkMilter
    from gateway_milter.store import default_store
    from gateway_milter.store.msglog import JournalIngestor

    config = settings.GATEWAY
    gateway = build_gateway(config)
    gateway.policy.start()
    _warm_up(gateway)
    gateway.log_sink.start()
    ingestor = JournalIngestor(config.journal_dir, write_log_batch)
    if config.milter_ingest:
        ingestor.start(interval=3.0)  # larger batches: less CPU per record on the milter host
    threading.Thread(target=_control_reader, args=(gateway.policy,), daemon=True, name="control").start()

    BulwarkMilter.gateway = gateway
    Milter.factory = BulwarkMilter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.ADDRCPT | Milter.ADDRCPT_PAR | Milter.DELRCPT
                     | Milter.CHGBODY | Milter.CHGFROM | Milter.QUARANTINE)
    sock = args.socket
    if sock.startswith("inet:") or sock.startswith("inet6:"):
        port = int(sock.split(":", 1)[1].split("@")[0])
        threading.Thread(target=_nodelay_listener, args=(port,), daemon=True).start()
    else:
        os.umask(0o000)  # the MTA (user postfix) must be able to connect to the unix socket
    warn = getattr(default_store(), "persistence_warning", None)
    if warn is not None and (text := warn()):
        log.warning("%s", text)
    log.info("bulwark milter listening on %s (policy version %s; content path: %s)", sock,
             gateway.policy.current().version, compiled.status())
    print(f"bulwark milter ready on {sock}", flush=True)
    try:
        Milter.runmilter("bulwark", sock, timeout=args.timeout)
    finally:
        log.info("milter stopped; flushing the message log and the Bayes autolearn queue")
        from gateway_milter.antispam.learner import learner

        bl = learner()
        if not bl.flush(timeout=10.0):
            log.warning("bayes autolearn: the store did not take the last batch within 10 s")
        st = bl.stats
        log.info("bayes autolearn: %d queued, %d learned in %d batches, %d dropped (queue full), %d failed",
                 st.queued, st.learned, st.batches, st.dropped_full, st.failed)
        gateway.policy.stop()
        gateway.log_sink.close()
        if config.milter_ingest:
            ingestor.stop()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=os.environ.get("GATEWAY_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
