"""Test zones for the sender-authentication integration tests, served by a real knotd."""

from __future__ import annotations

from pathlib import Path

from gateway_milter.auth.keystore import KeyStore


def _txt(value: str) -> str:
    """A TXT rdata in 250-character strings (RFC 1035: at most 255 per string)."""
    return "( " + " ".join(f'"{value[i:i + 250]}"' for i in range(0, len(value), 250)) + " )"


def build(keys_dir: Path) -> tuple[dict[str, str], KeyStore]:
    """Zones for example.test (sender), forwarder.test (ARC sealer), local.test (our domain),
    hostile.test (abuse) and the reverse zones; DKIM keys are generated into ``keys_dir``."""
    ks = KeyStore(keys_dir)
    sel1 = ks.generate("example.test", "sel1", bits=1024)
    ed = ks.generate("example.test", "ed", "ed25519-sha256")
    arc = ks.generate("forwarder.test", "arc", bits=1024)
    local = ks.generate("local.test", "bulwark1", bits=1024)
    soa = "@ IN SOA ns1.example.test. hostmaster.example.test. ( 1 3600 900 604800 300 )\n@ IN NS ns1.example.test.\n"
    hostile = [f"$ORIGIN hostile.test.\n$TTL 300\n{soa}"]
    big = "v=spf1 " + " ".join(f"ip4:198.18.{i // 256}.{i % 256}" for i in range(400)) + " -all"
    hostile.append(f"big IN TXT {_txt(big)}\n")  # ~8 KB: UDP truncates, TCP retry
    hostile.append('loop1 IN TXT "v=spf1 include:loop2.hostile.test -all"\n')
    hostile.append('loop2 IN TXT "v=spf1 include:loop1.hostile.test -all"\n')
    hostile.append('many IN TXT "v=spf1 ' + " ".join(f"a:h{i}.hostile.test" for i in range(12)) + ' -all"\n')
    hostile.append('voids IN TXT "v=spf1 a:n1.hostile.test a:n2.hostile.test a:n3.hostile.test -all"\n')
    for i in range(12):
        hostile.append(f"h{i} IN A 198.18.0.{i + 1}\n")
    for i in range(20):
        hostile.append(f"c{i} IN CNAME c{i + 1}.hostile.test.\n")
    hostile.append('c20 IN TXT "v=spf1 +all"\n')
    hostile.append("cloop1 IN CNAME cloop2.hostile.test.\ncloop2 IN CNAME cloop1.hostile.test.\n")
    hostile.append('two IN TXT "v=spf1 -all"\ntwo IN TXT "v=spf1 +all"\n')
    hostile.append(f"junk._domainkey IN TXT {_txt('v=DKIM1; k=rsa; p=' + 'A' * 6000)}\n")  # 6 KB of non-key
    hostile.append('_dmarc.two IN TXT "v=DMARC1; p=reject"\n_dmarc.two IN TXT "v=DMARC1; p=none"\n')
    zones = {
        "example.test": f"""$ORIGIN example.test.
$TTL 300
{soa}@ IN A 192.0.2.10
@ IN MX 10 mail.example.test.
@ IN TXT "v=spf1 ip4:192.0.2.0/28 -all"
ns1 IN A 127.0.0.1
mail IN A 192.0.2.10
mail IN TXT "v=spf1 a -all"
sel1._domainkey IN TXT {_txt(sel1)}
ed._domainkey IN TXT {_txt(ed)}
_dmarc IN TXT "v=DMARC1; p=reject; sp=quarantine; adkim=r; aspf=r; rua=mailto:dmarc@example.test"
news IN A 192.0.2.11
""",
        "forwarder.test": f"""$ORIGIN forwarder.test.
$TTL 300
{soa}@ IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
arc._domainkey IN TXT {_txt(arc)}
_dmarc IN TXT "v=DMARC1; p=none"
""",
        "local.test": f"""$ORIGIN local.test.
$TTL 300
{soa}@ IN MX 10 mx.local.test.
mx IN A 127.0.0.1
localhost IN A 127.0.0.1
@ IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
bulwark1._domainkey IN TXT {_txt(local)}
_dmarc IN TXT "v=DMARC1; p=reject"
""",
        "hostile.test": "".join(hostile),
        "2.0.192.in-addr.arpa": f"""$ORIGIN 2.0.192.in-addr.arpa.
$TTL 300
{soa}10 IN PTR mail.example.test.
11 IN PTR liar.example.test.
""",
        "0.0.127.in-addr.arpa": f"""$ORIGIN 0.0.127.in-addr.arpa.
$TTL 300
{soa}1 IN PTR localhost.local.test.
""",
    }
    return zones, ks
