"""True content type by content (libmagic through python-magic), with type families used for
mismatch detection between the declared name/type and the bytes.

libmagic handles are not thread-safe, and libmilter runs one thread per connection: each
thread gets its own handle. Only the first ``SNIFF_BYTES`` are examined, which bounds the cost.
"""

from __future__ import annotations

import threading

import magic

SNIFF_BYTES = 64 * 1024
_local = threading.local()


def _handle() -> magic.Magic:
    h = getattr(_local, "magic", None)
    if h is None:
        h = _local.magic = magic.Magic(mime=True)
    return h


# Bytes that never occur in text (C0 controls other than tab, LF, FF, CR, ESC).
_NON_TEXT = bytes(b for b in range(32) if b not in (9, 10, 12, 13, 27))
TEXT_SNIFF_BYTES = 1024


def looks_like_text(data: bytes) -> bool:
    head = data[:4096]
    return bool(head) and len(head.translate(None, _NON_TEXT)) == len(head)


def detect_type(data: bytes) -> str:
    """``type/subtype`` of the content (``application/octet-stream`` when unknown).

    libmagic's soft rules cost milliseconds on long text (regex rules scan the buffer); what
    identifies a script or a markup type is at its start, so text is sniffed on its first KB.
    """
    if not data:
        return "application/x-empty"
    sniff = data[:TEXT_SNIFF_BYTES] if looks_like_text(data) else data[:SNIFF_BYTES]
    try:
        t = str(_handle().from_buffer(sniff))
    except Exception:  # noqa: BLE001 - libmagic errors on odd input; the type is then unknown
        t = ""
    return _archive_signature(data, t.split(";", 1)[0].strip().lower() or "application/octet-stream")


# Containers built on zip that libmagic names by what they hold (OOXML and ODF documents, APKs
# under application/vnd.*; JARs, EPUBs, XPIs)
_ZIP_FAMILY = frozenset({"application/zip", "application/x-zip-compressed", "application/java-archive",
                         "application/epub+zip", "application/x-xpinstall"})
_SIGNATURES = ((b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"), (b"Rar!\x1a\x07", "application/x-rar"),
               (b"\x1f\x8b\x08", "application/gzip"), (b"\xfd7zXZ\x00", "application/x-xz"))


def _archive_signature(data: bytes, detected: str) -> str:
    """An archive's own signature at offset 0 over libmagic's reading of later bytes. libmagic
    weighs some rules above the zip one: a zip with 0x55AA at offset 510 (1 in 65,536 by chance,
    or on purpose) reads as a "DOS/MBR boot sector", application/octet-stream, and its members
    would go uninspected."""
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        if detected in _ZIP_FAMILY or detected.startswith("application/vnd."):
            return detected
        return "application/zip"
    if detected == "application/octet-stream":
        for sig, kind in _SIGNATURES:
            if data.startswith(sig):
                return kind
    return detected


EXECUTABLE_TYPES = frozenset({
    "application/x-dosexec", "application/x-msdownload", "application/x-executable",
    "application/x-sharedlib", "application/x-pie-executable", "application/x-mach-binary",
    "application/x-msi", "application/x-ms-shortcut", "application/vnd.microsoft.portable-executable",
    "application/x-elf", "application/java-archive", "application/x-java-applet",
})
SCRIPT_TYPES = frozenset({
    "text/x-shellscript", "text/x-msdos-batch", "text/x-python", "text/x-perl", "text/x-php",
    "application/x-shellscript", "text/javascript", "application/javascript", "text/x-vbscript",
    "application/hta", "text/x-powershell",
})
ARCHIVE_TYPES = {
    "application/zip": "zip",
    "application/x-zip-compressed": "zip",
    "application/x-7z-compressed": "7z",
    "application/x-tar": "tar",
    "application/gzip": "gzip",
    "application/x-gzip": "gzip",
    "application/x-bzip2": "bzip2",
    "application/x-xz": "xz",
    "application/x-rar": "rar",
    "application/vnd.rar": "rar",
    "application/x-rar-compressed": "rar",
}
OFFICE_OLE_TYPES = frozenset({
    "application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
    "application/x-ole-storage", "application/cdfv2", "application/vnd.ms-office",
    "application/vnd.ms-outlook",
    "application/encrypted",  # libmagic's name for a password-protected Office (CDF) file
})
OFFICE_OOXML_PREFIX = "application/vnd.openxmlformats-officedocument."
OFFICE_MACRO_OOXML = frozenset({
    "application/vnd.ms-word.document.macroenabled.12", "application/vnd.ms-excel.sheet.macroenabled.12",
    "application/vnd.ms-powerpoint.presentation.macroenabled.12",
})

# What an extension promises; a detected type outside the family is a mismatch.
EXTENSION_FAMILIES: dict[str, tuple[str, ...]] = {
    "pdf": ("application/pdf",),
    "jpg": ("image/jpeg",), "jpeg": ("image/jpeg",), "png": ("image/png",), "gif": ("image/gif",),
    "txt": ("text/",), "csv": ("text/", "application/csv"),
    "html": ("text/html", "text/xml", "text/plain"), "htm": ("text/html", "text/xml", "text/plain"),
    "doc": tuple(OFFICE_OLE_TYPES), "xls": tuple(OFFICE_OLE_TYPES), "ppt": tuple(OFFICE_OLE_TYPES),
    "docx": (OFFICE_OOXML_PREFIX, "application/zip", "application/vnd.ms-word", *OFFICE_MACRO_OOXML),
    "xlsx": (OFFICE_OOXML_PREFIX, "application/zip", "application/vnd.ms-excel", *OFFICE_MACRO_OOXML),
    "pptx": (OFFICE_OOXML_PREFIX, "application/zip", "application/vnd.ms-powerpoint", *OFFICE_MACRO_OOXML),
    "zip": ("application/zip", "application/x-zip-compressed"),
    "7z": ("application/x-7z-compressed",),
    "gz": ("application/gzip", "application/x-gzip"), "tgz": ("application/gzip", "application/x-gzip"),
    "mp3": ("audio/",), "mp4": ("video/",), "wav": ("audio/",),
}


def is_executable(detected: str) -> bool:
    return detected in EXECUTABLE_TYPES


def is_script(detected: str) -> bool:
    return detected in SCRIPT_TYPES


def archive_kind(detected: str) -> str | None:
    return ARCHIVE_TYPES.get(detected)


def is_office(detected: str) -> bool:
    return (detected in OFFICE_OLE_TYPES or detected.startswith(OFFICE_OOXML_PREFIX)
            or detected in OFFICE_MACRO_OOXML)


def mismatches(extension: str, detected: str) -> bool:
    """True when a known extension promises one family and the content is another, or when
    a harmless-looking extension hides an executable."""
    fam = EXTENSION_FAMILIES.get(extension.lower())
    if fam is None:
        return False
    if detected in ("application/octet-stream", "application/x-empty"):
        # libmagic knows nothing: only a mismatch for formats it always recognises
        return extension.lower() in ("pdf", "png", "gif", "jpg", "jpeg", "zip", "7z", "gz")
    return not any(detected.startswith(f) for f in fam)
