#!/usr/bin/env python3
"""Write a private, self-contained Postfix instance wired to the Bulwark milter.

One template for the run command, the integration tests and the benchmark: an smtpd on
127.0.0.1:PORT with the milter, a re-injection smtpd on 127.0.0.1:REINJECT without milters, and
delivery of everything to [127.0.0.1]:RELAY. Nothing outside DIR is touched (the system Postfix
in /etc/postfix stays as it is). Start with ``postfix -c DIR/etc start`` as root.

    python3 scripts/postfix_instance.py DIR --port 2525 --reinject 10026 --relay 2526 \\
        --milter unix:/path/milter.sock [--name bulwark] [--log FILE]
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

MAIN_CF = """compatibility_level = 3.6
queue_directory = {d}/spool
data_directory = {d}/data
multi_instance_name = {name}
syslog_name = postfix-{name}
maillog_file = {log}
maillog_file_prefixes = /var, /dev/stdout, {logdir}
myhostname = {hostname}
mydomain = test.invalid
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [127.0.0.1]:{relay}
smtp_dns_support_level = disabled
smtp_host_lookup = native
maximal_queue_lifetime = 1h
bounce_queue_lifetime = 1h
queue_run_delay = 30s
message_size_limit = 80000000
biff = no
smtpd_milters = {milter}
non_smtpd_milters =
milter_default_action = tempfail
milter_protocol = 6
milter_connect_timeout = 10s
milter_command_timeout = 30s
milter_content_timeout = 120s
milter_mail_macros = i {{auth_type}} {{auth_authen}} {{auth_author}} {{mail_addr}} {{mail_host}} {{mail_mailer}}
"""

MASTER_CF = """127.0.0.1:{port} inet n - n - - smtpd
127.0.0.1:{reinject} inet n - n - - smtpd -o smtpd_milters= -o receive_override_options=no_milters
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def write_instance(d: Path, *, port: int, reinject: int, relay: int, milter: str, name: str = "bulwark",
                   log: Path | None = None, hostname: str = "") -> Path:
    """Create DIR/etc (main.cf, master.cf), DIR/spool and DIR/data; return the config dir."""
    d = Path(d).resolve()
    for sub in ("etc", "spool", "data"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    subprocess.run(["chown", "postfix:postfix", str(d / "data")], check=True)
    log = Path(log) if log else d / "maillog"
    (d / "etc" / "main.cf").write_text(MAIN_CF.format(
        d=d, name=name, log=log, logdir=log.parent, relay=relay, milter=milter,
        hostname=hostname or f"mx-{name}.test.invalid"))
    (d / "etc" / "master.cf").write_text(MASTER_CF.format(port=port, reinject=reinject))
    return d / "etc"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--reinject", type=int, required=True)
    ap.add_argument("--relay", type=int, required=True)
    ap.add_argument("--milter", required=True)
    ap.add_argument("--name", default="bulwark")
    ap.add_argument("--hostname", default="bulwark.localdomain")
    ap.add_argument("--log", type=Path)
    a = ap.parse_args()
    print(write_instance(a.dir, port=a.port, reinject=a.reinject, relay=a.relay, milter=a.milter, name=a.name,
                         log=a.log, hostname=a.hostname))


if __name__ == "__main__":
    main()
