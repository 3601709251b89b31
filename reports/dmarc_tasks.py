"""Celery task ``dmarc.send_aggregate_reports``: DMARC aggregate reports (RFC 7489 section 7.2).

Thin and idempotent: for every finished day (before today, UTC) with data under
``GATEWAY_DATA_DIR/dmarc/``, one gzipped appendix C report per policy domain is mailed to its
verified ``rua`` addresses; ``<day>.sent`` records the domains done, so a re-run (or a crash
half way) never mails a report twice. Days older than ``keep_days`` are deleted once sent.
Scheduled daily by the beat entry ``dmarc-reports`` (config/settings.py); running it more
often is harmless.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

from celery import shared_task

log = logging.getLogger("bulwark.dmarc")


def _identity() -> tuple[str, str]:
    from gateway_milter import envconfig

    host = envconfig.env_str("GATEWAY_HOSTNAME", "bulwark.localdomain")
    org = envconfig.env_str("GATEWAY_DMARC_ORG", host)
    sender = envconfig.env_str("GATEWAY_DMARC_REPORT_FROM", f"dmarc-reports@{host}")
    return org, sender


def _sent(folder: Path, day: str) -> set[str]:
    try:
        return set(json.loads((folder / f"{day}.sent").read_text()))
    except (OSError, ValueError):
        return set()


def _mark(folder: Path, day: str, done: set[str]) -> None:
    tmp = folder / f".{day}.sent.tmp"
    tmp.write_text(json.dumps(sorted(done)))
    tmp.replace(folder / f"{day}.sent")


@shared_task(name="dmarc.send_aggregate_reports")
def send_aggregate_reports(day: str | None = None, keep_days: int = 7) -> int:
    """Send the reports of ``day`` (YYYY-MM-DD) or of every finished day; returns mails sent."""
    from django.core.mail import EmailMessage

    from gateway_milter.auth import dmarcreport
    from gateway_milter.layers.dmarc import report_dir

    folder = report_dir()
    if not folder.is_dir():
        return 0
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    days = [day] if day else sorted(p.stem for p in folder.glob("????-??-??.jsonl"))
    org, sender = _identity()
    sent_mails = 0
    for d in days:
        path = folder / f"{d}.jsonl"
        if d >= today or not path.exists():
            continue
        done = _sent(folder, d)
        for domain, rep in sorted(dmarcreport.aggregate(path, d).items()):
            if domain in done:
                continue
            xml = dmarcreport.report_xml(rep, org, sender)
            attachment = dmarcreport.gzipped(xml)
            for addr, limit in dmarcreport.verified_destinations(rep):
                if limit is not None and len(attachment) > limit:
                    log.info("DMARC report for %s to %s skipped: %d bytes over its limit", domain, addr,
                             len(attachment))
                    continue
                mail = EmailMessage(dmarcreport.report_subject(org, rep, org), f"DMARC aggregate report for {domain}.\n",
                                    sender, [addr])
                mail.attach(dmarcreport.report_filename(org, rep), attachment, "application/gzip")
                mail.send()
                sent_mails += 1
            done.add(domain)
            _mark(folder, d, done)
        if d < (dt.datetime.now(dt.UTC) - dt.timedelta(days=keep_days)).strftime("%Y-%m-%d"):
            path.unlink(missing_ok=True)
    return sent_mails
