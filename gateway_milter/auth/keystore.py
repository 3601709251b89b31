"""DKIM signing keys per domain and selector, as files under ``GATEWAY_DATA_DIR/dkim``.

Layout: ``dkim/<domain>/<selector>.key`` (PEM PKCS#8 for RSA, base64 seed for Ed25519 as
dkimpy expects; mode 0600, directory 0700), ``<selector>.dns`` (the TXT record to publish),
and ``active`` (the selector used for signing). Rotation uses two selectors (RFC 6376
section 3.1 recommends selectors for this): ``rotate`` writes a fresh key under the
inactive one and prints its record; ``activate`` switches once DNS serves it; the old key
stays published until the operator removes it. Domains and selectors are validated before
they reach a path (no message-derived name is trusted).
"""

from __future__ import annotations

import base64
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from gateway_milter import envconfig

DOMAIN_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$")
SELECTOR_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
DEFAULT_SELECTORS = ("bulwark1", "bulwark2")


class KeyStoreError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class SigningKey:
    domain: str
    selector: str
    algorithm: str  # rsa-sha256 | ed25519-sha256
    private: bytes  # as dkimpy's sign() takes it


def _check(domain: str, selector: str | None = None) -> tuple[str, str | None]:
    d = domain.strip().lower().rstrip(".")
    try:
        d = d.encode("idna").decode("ascii")
    except UnicodeError:
        raise KeyStoreError(f"{domain!r} is not a domain name") from None
    if not DOMAIN_RE.match(d):
        raise KeyStoreError(f"{domain!r} is not a domain name")
    if selector is not None and not SELECTOR_RE.match(selector):
        raise KeyStoreError(f"{selector!r} is not a valid selector (letters, digits, '-', '_')")
    return d, selector


class KeyStore:
    def __init__(self, base: Path | None = None) -> None:
        if base is None:
            base = envconfig.data_dir() / "dkim"
        self.base = base
        self._cache: dict[tuple[str, str], tuple[float, SigningKey]] = {}
        self._lock = threading.Lock()

    def _dir(self, domain: str, create: bool = False) -> Path:
        d, _ = _check(domain)
        p = self.base / d
        if create:
            self.base.mkdir(parents=True, exist_ok=True, mode=0o700)
            p.mkdir(exist_ok=True, mode=0o700)
            os.chmod(p, 0o700)
        return p

    # -- generation and rotation ---------------------------------------------------------------
    def generate(self, domain: str, selector: str, algorithm: str = "rsa-sha256", bits: int = 2048,
                 overwrite: bool = False) -> str:
        """Create a key; returns the DNS TXT record value to publish."""
        d, _ = _check(domain, selector)
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

        if algorithm == "rsa-sha256":
            if bits not in (1024, 2048, 3072, 4096):
                raise KeyStoreError("RSA keys must be 1024, 2048, 3072 or 4096 bits")
            key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
            private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption())
            pub = key.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
            record = "v=DKIM1; k=rsa; p=" + base64.b64encode(pub).decode()
        elif algorithm == "ed25519-sha256":
            ek = ed25519.Ed25519PrivateKey.generate()
            seed = ek.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
            private = base64.b64encode(seed) + b"\n"
            pub = ek.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            record = "v=DKIM1; k=ed25519; p=" + base64.b64encode(pub).decode()
        else:
            raise KeyStoreError("algorithm must be rsa-sha256 or ed25519-sha256")
        folder = self._dir(d, create=True)
        keyfile = folder / f"{selector}.key"
        if keyfile.exists() and not overwrite:
            raise KeyStoreError(f"a key for {selector}._domainkey.{d} exists (use rotation)")
        tmp = folder / f".{selector}.key.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private)
        os.chmod(tmp, 0o600)
        os.replace(tmp, keyfile)
        (folder / f"{selector}.dns").write_text(record + "\n")
        if not (folder / "active").exists():
            self.activate(d, selector)
        return record

    def rotate(self, domain: str, algorithm: str = "rsa-sha256", bits: int = 2048,
               selectors: tuple[str, str] = DEFAULT_SELECTORS) -> tuple[str, str]:
        """New key under the inactive selector of the pair; returns (selector, record)."""
        d, _ = _check(domain)
        active = self.active_selector(d)
        nxt = selectors[1] if active == selectors[0] else selectors[0]
        return nxt, self.generate(d, nxt, algorithm, bits, overwrite=True)

    def activate(self, domain: str, selector: str) -> None:
        d, _ = _check(domain, selector)
        folder = self._dir(d, create=True)
        if not (folder / f"{selector}.key").exists():
            raise KeyStoreError(f"no key for {selector}._domainkey.{d}")
        tmp = folder / ".active.tmp"
        tmp.write_text(selector + "\n")
        os.replace(tmp, folder / "active")

    # -- reading -------------------------------------------------------------------------------
    def active_selector(self, domain: str) -> str | None:
        p = self._dir(domain) / "active"
        try:
            s = p.read_text().strip()
        except OSError:
            return None
        return s if SELECTOR_RE.match(s) else None

    def selectors(self, domain: str) -> list[str]:
        folder = self._dir(domain)
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.key") if SELECTOR_RE.match(p.stem))

    def domains(self) -> list[str]:
        if not self.base.is_dir():
            return []
        return sorted(p.name for p in self.base.iterdir() if p.is_dir() and DOMAIN_RE.match(p.name))

    def dns_record(self, domain: str, selector: str) -> str:
        d, _ = _check(domain, selector)
        try:
            return (self._dir(d) / f"{selector}.dns").read_text().strip()
        except OSError:
            raise KeyStoreError(f"no key for {selector}._domainkey.{d}") from None

    def signing_key(self, domain: str, selector: str | None = None) -> SigningKey | None:
        """The key to sign with (cached; reloaded when the file changes), or None."""
        d, _ = _check(domain)
        sel = selector or self.active_selector(d)
        if not sel:
            return None
        _check(d, sel)
        path = self._dir(d) / f"{sel}.key"
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        with self._lock:
            hit = self._cache.get((d, sel))
            if hit and hit[0] == mtime:
                return hit[1]
        data = path.read_bytes()
        algo = "rsa-sha256" if data.lstrip().startswith(b"-----BEGIN") else "ed25519-sha256"
        key = SigningKey(d, sel, algo, data)
        with self._lock:
            self._cache[(d, sel)] = (mtime, key)
        return key


def zone_lines(domain: str, selector: str, record: str) -> str:
    """The record as a zone-file line, split in 250-character strings (TXT strings are at
    most 255 bytes, RFC 1035 section 3.3)."""
    chunks = [record[i:i + 250] for i in range(0, len(record), 250)]
    body = "\n\t".join(f'"{c}"' for c in chunks)
    return f"{selector}._domainkey.{domain}. IN TXT ( {body} )"


_default: KeyStore | None = None


def get_keystore() -> KeyStore:
    global _default
    if _default is None:
        _default = KeyStore()
    return _default


def set_keystore(store: KeyStore | None) -> None:
    global _default
    _default = store
