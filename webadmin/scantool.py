"""Security → Scan a message: an administrator pastes or uploads a message and sees what the
gateway would do with it now (``manage.py scan`` in the browser): the verdict, the score, every
symbol with its points, and the layers' trace.

The scan runs in scan mode (nothing learned, logged, stored or delivered) in a thread of the web
process, so that a first scan, which builds the rule set (10-20 s of CPU), or slow DNS answers
never hold a request: the form answers at once with the scan's page, which reloads itself
until the result is there. State and result are a small JSON file per scan under
``$GATEWAY_DATA_DIR/scans/`` (shared by the web server's processes; a poll may reach another
worker than the one scanning), readable only by the account that started it and removed after
SCAN_KEEP_S.

Network checks (SPF, DKIM, DMARC, ARC, DNS lists, reverse DNS, callback verification, VBR) are
off unless asked for: a pasted message's DNS answers are today's, not those it was sent with,
and a gateway in a closed network would wait for every lookup's timeout.
"""

from __future__ import annotations

import copy
import ipaddress
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway_milter.mime.headers import addresses
from gateway_milter.policy.snapshot import PolicySnapshot
from webadmin.addressing import is_mailbox
from webadmin.errors import FieldError
from webadmin.jobfiles import JobFiles

log = logging.getLogger("bulwark.scan")

MAX_MESSAGE = 5 * 1024 * 1024  # bytes a scanned message may have
MAX_RECIPIENTS = 20
PREFILL_MESSAGE = 2 * 1024 * 1024  # "Change and scan" puts a message this small back in the text area
SCAN_KEEP_S = 3600  # a scan's file is removed this long after it started
SCAN_TIMEOUT_S = 300  # a scan still "running" after this long is reported as failed
MAX_RUNNING = 2  # scans running at once in one web process
NETWORK_LAYERS = ("arc", "callback", "dkim", "dmarc", "dnsbl", "rdns", "spf", "uribl", "vbr")
_running = threading.BoundedSemaphore(MAX_RUNNING)
JOBS = JobFiles("scans", SCAN_KEEP_S, ("eml",))


class ScanError(FieldError):
    """Bad input for a scan: the message says which field and why."""


class ScanBusy(ScanError):
    """This process already runs its most scans at once: try again in a moment (the API's 503)."""


@dataclass(frozen=True)
class ScanRequest:
    raw: bytes
    ip: str | None = None
    helo: str = ""
    sender: str | None = None  # None: taken from the message, as manage.py scan does
    recipients: tuple[str, ...] = ()
    auth: str = ""
    network: bool = False


def scans_dir() -> Path:
    return JOBS.dir()


def parse_request(raw: bytes, *, ip: str = "", helo: str = "", sender: str = "", recipients: str = "",
                  auth: str = "", network: bool = False, domains: frozenset[str] | None = None) -> ScanRequest:
    """Check a scan's input. ``domains``: the domains a domain administrator administers; every
    recipient must be in one (the policy applied is the recipients' domain's), and one of them
    is the default recipient. None: a global administrator (any recipient)."""
    if not raw.strip():
        raise ScanError("message", "Paste a message or choose a file.")
    if len(raw) > MAX_MESSAGE:
        raise ScanError("message", f"The message is larger than {MAX_MESSAGE // (1024 * 1024)} MB.")
    ip = ip.strip()
    if ip:
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            raise ScanError("ip", f"{ip[:60]!r} is not an IPv4 or IPv6 address.") from None
    helo = helo.strip()
    if len(helo) > 255 or any(c.isspace() for c in helo):
        raise ScanError("helo", "A HELO name is one word of at most 255 characters.")
    sender = sender.strip()
    # "<>" is the null sender of a bounce, as manage.py scan --from '<>' (the backscatter layer
    # judges only such mail); empty: the message's Return-Path or From, as before
    null_sender = sender == "<>"
    sender = "" if null_sender else sender.removeprefix("<").removesuffix(">")
    if sender and not is_mailbox(sender):
        raise ScanError("sender", f"{sender[:80]!r} is not an email address.")
    rcpts = tuple(dict.fromkeys(r.strip().lower() for r in re.split(r"[\s,;]+", recipients) if r.strip()))
    if len(rcpts) > MAX_RECIPIENTS:
        raise ScanError("recipients", f"At most {MAX_RECIPIENTS} recipients.")
    for r in rcpts:
        if not is_mailbox(r):
            raise ScanError("recipients", f"{r[:80]!r} is not an email address.")
    if domains is not None:
        if not domains:
            raise ScanError("recipients", "You administer no domain.")
        outside = [r for r in rcpts if r.rpartition("@")[2] not in domains]
        if outside:
            raise ScanError("recipients", f"{outside[0]} is not in a domain you administer.")
        if not rcpts:
            # the message's own To/Cc when they are the administrator's, else the domain's postmaster
            header = _header_recipients(raw)
            rcpts = tuple(r for r in header if r.rpartition("@")[2] in domains) or (f"postmaster@{min(domains)}",)
    auth = auth.strip()
    if len(auth) > 255:
        raise ScanError("auth", "At most 255 characters.")
    if domains is not None:
        _check_sender_domain(raw, sender, auth, ip, domains)
    return ScanRequest(raw, ip or None, helo, "" if null_sender else (sender or None), rcpts, auth, network)


def _check_sender_domain(raw: bytes, sender: str, auth: str, ip: str, domains: frozenset[str]) -> None:
    """An authenticated or trusted-network message is judged by its sender's domain (pipeline/
    transaction.py): a domain administrator's scan may not be judged by another local domain's
    policy (its settings and Sieve scripts would show in the result)."""
    from gateway_milter.pipeline.rawmessage import split_message
    from webadmin.management.commands.scan import guess_sender
    from webadmin.services import current_snapshot

    snapshot = current_snapshot()
    if not auth and not (ip and snapshot.is_trusted_ip(ipaddress.ip_address(ip))):
        return  # judged by the recipients' domain, which is theirs
    envelope = sender or guess_sender(split_message(raw)[0])
    dom = snapshot.canonical_domain(envelope.rpartition("@")[2]) if "@" in envelope else None
    if dom is not None and dom not in domains:
        raise ScanError("sender", f"{envelope[:80]} is in {dom}, a domain you do not administer: an authenticated "
                                  "or trusted-network message is judged by its sender's domain.")


def _header_recipients(raw: bytes) -> tuple[str, ...]:
    from gateway_milter.pipeline.rawmessage import split_message

    headers, _ = split_message(raw)
    values = [v for n, v in headers if n.lower() in ("to", "cc")]
    return tuple(a.lower() for _, a in addresses(values) if a)


# -- running ----------------------------------------------------------------------------------------
def start(req: ScanRequest, owner: int) -> str:
    """Start a scan in the background; returns its token. Raises ScanBusy when this process
    already runs MAX_RUNNING scans."""
    from webadmin.services import current_snapshot

    if not _running.acquire(blocking=False):
        raise ScanBusy("message", "Other scans are running; try again in a moment.")
    try:
        snapshot = current_snapshot()  # (read here: the thread needs no database connection)
        JOBS.clean()
        token = JOBS.new_token()
        # the message itself, for "Learn as spam / ham" and "Scan again" from the result
        # (removed with the scan)
        raw_path = scans_dir() / f"{token}.eml"
        fd = os.open(raw_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(req.raw)
        _write(token, {"state": "running", **_about(req, owner, time.time())})
        threading.Thread(target=_run, args=(token, req, owner, snapshot), daemon=True,
                         name=f"scan-{token[:6]}").start()
    except BaseException:
        _running.release()
        raise
    return token


def _about(req: ScanRequest, owner: int, started: float) -> dict[str, Any]:
    """What a scan's file says besides its state and result: whose it is, when it started, and
    the request's settings (``request``, for "Scan again" and "Change and scan")."""
    return {"owner": owner, "started": started, "network": req.network, "size": len(req.raw),
            "request": {"ip": req.ip or "", "helo": req.helo, "sender": "<>" if req.sender == "" else req.sender or "",
                        "recipients": list(req.recipients), "auth": req.auth, "network": req.network}}


def _run(token: str, req: ScanRequest, owner: int, snapshot: PolicySnapshot) -> None:
    started = time.time()
    try:
        rec = scan(req, snapshot)
        doc = {"state": "done", "result": _result(rec)}
    except Exception as e:  # (the page says it; the log has the traceback)
        log.exception("scan %s failed", token[:6])
        doc = {"state": "error", "error": f"{type(e).__name__}: {str(e)[:300]}"}
    finally:
        _running.release()
    try:
        _write(token, {**doc, **_about(req, owner, started), "took_s": round(time.time() - started, 2)})
    except OSError:  # (the data directory went away: nobody is left to read it)
        log.warning("scan %s: result not written", token[:6], exc_info=True)


def again(token: str, owner: int, domains: frozenset[str] | None) -> ScanRequest | None:
    """The request of ``owner``'s finished (or failed) scan, to run it again: its stored message
    and settings, checked again (a domain administrator's recipients must still be in their
    ``domains``; None: a global administrator). None when there is no such scan or it is still
    running; ScanError when its input no longer passes."""
    doc = read(token, owner)
    if doc is None or doc.get("state") == "running":
        return None
    try:
        raw = (scans_dir() / f"{token}.eml").read_bytes()
    except OSError:
        return None
    return parse_request(raw, **_request_fields(doc), domains=domains)


def form_values(token: str, owner: int) -> dict[str, Any] | None:
    """The scan form filled in from ``owner``'s scan ("Change and scan"): its settings, and the
    message as text when it is UTF-8 of at most PREFILL_MESSAGE bytes (else empty: choose the file
    again). None when there is no such scan."""
    doc = read(token, owner)
    if doc is None:
        return None
    values: dict[str, Any] = _request_fields(doc)
    try:
        raw = (scans_dir() / f"{token}.eml").read_bytes()
    except OSError:
        raw = b""
    try:
        text = raw.decode("utf-8") if len(raw) <= PREFILL_MESSAGE else ""
    except UnicodeDecodeError:
        text = ""
    return {**values, "message": text, "message_left_out": bool(raw) and not text}


def _request_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """parse_request's keyword arguments from a scan's stored ``request`` (a scan file written
    before requests were stored: the network switch alone)."""
    req = doc.get("request")
    if not isinstance(req, dict):
        req = {}
    out: dict[str, Any] = {k: str(req.get(k) or "") for k in ("ip", "helo", "sender", "auth")}
    rcpts = req.get("recipients")
    out["recipients"] = " ".join(str(r) for r in rcpts) if isinstance(rcpts, list) else ""
    out["network"] = bool(req.get("network", doc.get("network", False)))
    return out


def scan(req: ScanRequest, snapshot: PolicySnapshot) -> dict[str, Any]:
    """One message through the pipeline in scan mode, with the policy ``snapshot`` (network
    layers off unless ``req.network``): manage.py scan's record."""
    from gateway_milter.pipeline.transaction import Gateway
    from gateway_milter.policy.provider import StaticPolicyProvider
    from webadmin.management.commands.scan import _NoLog, _NoStore, scan_one

    if not req.network:
        snapshot = PolicySnapshot(without_network_layers(snapshot.doc), snapshot.version)
    gw = Gateway(StaticPolicyProvider(snapshot), _NoStore(), _NoLog())
    return scan_one(gw, req.raw, ip=req.ip, helo=req.helo, sender=req.sender, rcpts=list(req.recipients),
                    auth=req.auth)


def without_network_layers(doc: dict[str, Any]) -> dict[str, Any]:
    """The policy document with the layers that ask the network off, globally and in every domain."""
    out = copy.deepcopy(doc)
    settings = out.setdefault("settings", {})
    for lid in NETWORK_LAYERS:
        settings[lid] = {**(settings.get(lid) or {}), "mode": "off"}
    for d in out.get("domains") or []:
        ds = d.get("settings") or {}
        for lid in NETWORK_LAYERS:
            if lid in ds:
                ds[lid] = {**ds[lid], "mode": "off"}
    return out


def _result(rec: dict[str, Any]) -> dict[str, Any]:
    return {"action": rec.get("action"), "score": rec.get("score"), "reason": rec.get("reason") or "",
            "direction": rec.get("direction") or "",
            "symbols": [{k: s.get(k) for k in ("name", "score", "points", "detail", "layer")} for s in rec.get("symbols") or []],
            "trace": [{k: t.get(k) for k in ("source", "event", "detail", "ms")} for t in rec.get("trace") or []],
            "recipients": [{k: r.get(k) for k in ("address", "action", "reply")} for r in rec.get("recipients") or []],
            "ms": rec.get("ms")}


# -- the files --------------------------------------------------------------------------------------
def read(token: str, owner: int) -> dict[str, Any] | None:
    """The scan's state and result, or None (no such scan, expired, or another account's)."""
    doc = JOBS.owned(token, owner)
    if doc is None:
        return None
    if doc.get("state") == "running" and time.time() - float(doc.get("started") or 0) > SCAN_TIMEOUT_S:
        # its thread is gone (the web server's worker restarted) or stuck: say so, stop reloading
        return {**doc, "state": "error", "error": f"the scan did not finish within {SCAN_TIMEOUT_S} s "
                                                  "(the web server may have restarted); scan it again"}
    return doc


def _write(token: str, doc: dict[str, Any]) -> None:
    JOBS.write(token, doc)


def finished(token: str, owner: int) -> tuple[dict[str, Any], Path] | None:
    """A finished scan of ``owner`` and its message's file (for learning from it), or None."""
    doc = read(token, owner)
    if doc is None or doc.get("state") != "done":
        return None
    p = scans_dir() / f"{token}.eml"
    return (doc, p) if p.is_file() else None


def learn_scopes(is_global: bool, domains: frozenset[str], result: dict[str, Any],
                 local_domains: Mapping[str, str]) -> list[str]:
    """The Bayes scopes a scanned message is learned in: a global administrator's, the global
    scope and its local recipients' domains; a domain administrator's, their recipients'
    domains only (never the global model every tenant reads). ``local_domains``: each local
    name, alias domains' too, to its domain's (the scope the milter reads for it)."""
    doms = {str(r.get("address") or "").rpartition("@")[2].lower() for r in result.get("recipients") or []}
    doms = {local_domains[d] for d in doms if d in local_domains}
    if is_global:
        return ["global"] + [f"dom:{d}" for d in sorted(doms)]
    return [f"dom:{d}" for d in sorted(doms & set(domains))]


def learn(token: str, doc: dict[str, Any], path: Path, label: str, p: Any, actor: str) -> list[str]:
    """Queue Bayes training of the scanned message (``bayes.train_message`` with its stored copy)
    in :func:`learn_scopes`; returns them. ScanError when there is none or it cannot be queued."""
    from config.celery import app
    from webadmin.services import current_snapshot

    local = {name: dp.name for name, dp in current_snapshot().domains.items()}
    scopes = learn_scopes(p.is_global, p.domains, doc.get("result") or {}, local)
    if not scopes:
        raise ScanError("label", "None of the message's recipients is in a domain you administer: "
                                 "nothing to learn in.")
    try:
        app.loader.import_default_modules()  # (the embedded setup runs the task here)
        app.signature("bayes.train_message", kwargs={"label": label, "paths": [str(path)],
                                                      "scopes": scopes}).apply_async()
    except Exception as e:  # noqa: BLE001 - the caller says it; nothing was learned
        raise ScanError("label", f"The training could not be queued: {e}") from None
    _write(token, {**doc, "learned": label, "learned_scopes": scopes})
    logging.getLogger("bulwark.antispam").info("%s queued %s training of a scanned message in %s", actor, label,
                                               ", ".join(scopes))
    return scopes
