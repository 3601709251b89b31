"""What each layer setting means, as the layer's doc page says it: the web admin's settings
forms show it under each field, so that the page and docs/layers/<id>.md cannot say different
things (tests/django/test_layer_setting_help.py holds every setting to a row of its page).

A doc page lists its settings in a Markdown table whose header is ``| setting | default |
meaning |``; a row's first cell names one setting or several (``| `netmask_v4`, `netmask_v6` |
...``), its third cell is the meaning. Markdown marks are taken off; the text is plain (the
templates escape it like any other text)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "layers"
_NAME = re.compile(r"`([a-z][a-z0-9_]*)`")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


def _plain(cell: str) -> str:
    text = _LINK.sub(r"\1", cell.replace("\\|", "|"))
    return re.sub(r"\s+", " ", text.replace("**", "").replace("`", "")).strip()


def _cells(line: str) -> list[str]:
    # a cell may hold an escaped bar (\|)
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def parse_settings_table(text: str) -> dict[str, str]:
    """setting name -> meaning, from every ``| setting | default | meaning |`` table of a page."""
    out: dict[str, str] = {}
    in_table = False
    for line in text.splitlines():
        if not line.lstrip().startswith("|"):
            in_table = False
            continue
        cells = _cells(line)
        if [c.lower() for c in cells[:3]] == ["setting", "default", "meaning"]:
            in_table = True
            continue
        if not in_table or set(line.replace("|", "").strip()) <= set("-: "):
            continue
        if len(cells) >= 3 and cells[2]:
            for name in _NAME.findall(cells[0]):
                out.setdefault(name, _plain(cells[2]))
    return out


@lru_cache(maxsize=64)
def _read(path: Path, mtime: float) -> dict[str, str]:
    return parse_settings_table(path.read_text(encoding="utf-8"))


def setting_help(layer_id: str) -> dict[str, str]:
    """The meanings of a layer's settings; empty when its page is not there (a deployment
    without docs/)."""
    if not re.fullmatch(r"[a-z]+", layer_id):
        return {}
    path = DOCS / f"{layer_id}.md"
    try:
        return _read(path, path.stat().st_mtime)
    except OSError:
        return {}
