"""Office documents with VBA or XLM macros (OLE2 / MS-CFB and OOXML / ECMA-376), via oletools.

Only parts whose detected type is an Office format are probed: olevba is slow on large files
and pointless on anything else.
"""

from __future__ import annotations

import io
import logging

from gateway_milter.mime.detect import is_office

log = logging.getLogger("bulwark.mime")

MAX_PROBE_BYTES = 30 * 1024 * 1024
OLE_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")


class MacroProbeError(Exception):
    """oletools could not read the document (corrupt or encrypted)."""


def has_macros(data: bytes, detected: str) -> bool:
    """True when the document carries VBA or Excel 4 (XLM) macros.

    A document oletools cannot read raises :class:`MacroProbeError` only through
    :func:`probe`; this convenience form answers False for non-Office content.
    """
    if not is_office(detected):
        return False
    try:
        return probe(data)
    except MacroProbeError:
        return False


def probe(data: bytes) -> bool:
    if len(data) > MAX_PROBE_BYTES:
        raise MacroProbeError("document too large to probe")
    try:
        from oletools.olevba import VBA_Parser
    except ImportError as e:  # pragma: no cover - oletools is a runtime dependency
        raise MacroProbeError(f"oletools missing: {e}") from None
    encrypted = False
    if data[:8] == OLE_MAGIC:  # password-protected OOXML and legacy Office files are OLE2
        try:
            import olefile
            from oletools.crypto import is_encrypted

            ole = olefile.OleFileIO(io.BytesIO(data))
            try:
                encrypted = bool(is_encrypted(ole))
            finally:
                ole.close()
        except Exception:  # noqa: BLE001 - an unreadable container is handled by VBA_Parser below
            encrypted = False
    if encrypted:
        # password-protected Office files hide their macros; they cannot be judged
        raise MacroProbeError("encrypted document")
    parser = None
    try:
        parser = VBA_Parser("attachment", data=data)
        return bool(parser.detect_vba_macros()) or bool(getattr(parser, "detect_xlm_macros", lambda: False)())
    except Exception as e:  # noqa: BLE001 - oletools raises many kinds on odd input
        raise MacroProbeError(str(e)[:200]) from None
    finally:
        if parser is not None:
            try:
                parser.close()
            except Exception:
                log.debug("olevba close failed", exc_info=True)
