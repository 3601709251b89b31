"""The compiled content path (gateway_milter/compiled.py): a build is used only when it was
made from exactly the sources in the checkout, for this interpreter; the test command runs
the suite on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from gateway_milter import compiled

SUFFIX = str(sysconfig.get_config_var("EXT_SUFFIX"))


def _tree(tmp: Path) -> tuple[Path, Path]:
    """A checkout holding the compiled modules' sources (copies), and a build dir for them."""
    root, where = tmp / "checkout", tmp / "build"
    where.mkdir()
    modules = {}
    for m in compiled.MODULES:
        src = compiled.source_of(m, root)
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(f"# {m}\n")
        (where / (m + SUFFIX)).write_bytes(b"\x7fELF")
        modules[m] = {"file": m + SUFFIX, "source_sha256": compiled._sha256(src)}
    native = {}
    for m, rel in compiled.NATIVE_MODULES.items():
        src = root / rel
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(f"/* {m} */\n")
        (where / (m + SUFFIX)).write_bytes(b"\x7fELF")
        native[m] = {"file": m + SUFFIX, "source_sha256": compiled._sha256(src)}
    (where / ("abc__mypyc" + SUFFIX)).write_bytes(b"\x7fELF")
    doc = {"format": compiled.FORMAT, "interpreter": compiled._interpreter(), "modules": modules,
           "native": native, "support": {"abc__mypyc": "abc__mypyc" + SUFFIX}}
    (where / "manifest.json").write_text(json.dumps(doc))
    return root, where


def test_a_build_of_the_same_sources_is_used(tmp_path: Path) -> None:
    root, where = _tree(tmp_path)
    files, reason = compiled.check(where, root)
    assert files is not None, reason
    assert files["gateway_milter.antispam.engine"] == where / ("gateway_milter.antispam.engine" + SUFFIX)
    assert files["abc__mypyc"] == where / ("abc__mypyc" + SUFFIX)  # mypyc's shared part
    table = "gateway_milter.store._countertable"  # our own C source
    assert files[table] == where / (table + SUFFIX)
    spec = compiled._Finder(files).find_spec("gateway_milter.antispam.engine")
    assert spec is not None and spec.origin == str(where / ("gateway_milter.antispam.engine" + SUFFIX))
    assert compiled._Finder(files).find_spec("gateway_milter.layers.rules") is None  # the rest: Python


def test_an_edited_source_leaves_every_module_to_python(tmp_path: Path) -> None:
    root, where = _tree(tmp_path)
    src = compiled.source_of("gateway_milter.antispam.saeval", root)
    src.write_text(src.read_text() + "x = 1\n")
    files, reason = compiled.check(where, root)
    assert files is None and reason == "saeval.py changed since the build"


def test_an_edited_c_source_leaves_every_module_to_python(tmp_path: Path) -> None:
    root, where = _tree(tmp_path)
    src = root / compiled.NATIVE_MODULES["gateway_milter.store._countertable"]
    src.write_text(src.read_text() + "/* edited */\n")
    files, reason = compiled.check(where, root)
    assert files is None and reason == "countertable.c changed since the build"


@pytest.mark.parametrize("damage, expected", [
    ("no manifest", "no build in"),
    ("other interpreter", "built for another interpreter"),
    ("other modules", "built for another set of modules"),
    ("no C module", "built for another set of C sources"),
    ("missing file", "extension files missing"),
    ("bad manifest", "unreadable manifest"),
    ("missing source", "is missing"),
])
def test_a_build_that_does_not_fit_is_not_used(tmp_path: Path, damage: str, expected: str) -> None:
    root, where = _tree(tmp_path)
    manifest = where / "manifest.json"
    doc = json.loads(manifest.read_text())
    if damage == "no manifest":
        manifest.unlink()
    elif damage == "other interpreter":
        doc["interpreter"]["version"] = "3.12.0"
        manifest.write_text(json.dumps(doc))
    elif damage == "other modules":
        del doc["modules"]["gateway_milter.antispam.urls"]
        manifest.write_text(json.dumps(doc))
    elif damage == "no C module":  # (a build of the format before, say)
        del doc["native"]
        manifest.write_text(json.dumps(doc))
    elif damage == "missing file":
        (where / ("gateway_milter.antispam.bayes" + SUFFIX)).unlink()
    elif damage == "bad manifest":
        manifest.write_text("{not json")
    elif damage == "missing source":
        compiled.source_of("gateway_milter.antispam.bayes", root).unlink()
    files, reason = compiled.check(where, root)
    assert files is None
    assert expected in reason


def _status_in_child(**env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("BULWARK_COMPILED", "BULWARK_COMPILED_DIR")}
    out = subprocess.run([sys.executable, "-c", "from gateway_milter import compiled; print(compiled.status())"],
                         cwd=compiled.PACKAGE_ROOT, env={**base, **env}, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def test_the_switch_turns_the_build_off() -> None:
    assert _status_in_child(BULWARK_COMPILED="0") == "Python (BULWARK_COMPILED=0)"


def test_a_build_elsewhere_is_found_through_the_environment(tmp_path: Path) -> None:
    assert _status_in_child(BULWARK_COMPILED_DIR=str(tmp_path)) == f"Python (no build in {tmp_path})"


@pytest.mark.skipif(os.environ.get("BULWARK_REQUIRE_COMPILED") != "1",
                    reason="the test command (scripts/test.sh) builds the compiled modules and sets "
                           "BULWARK_REQUIRE_COMPILED=1; a plain pytest run may be on Python")
def test_the_suite_runs_on_the_compiled_modules() -> None:
    import gateway_milter.antispam.engine as engine
    import gateway_milter.antispam.saview as saview

    assert compiled.ACTIVE, compiled.REASON
    from gateway_milter.store import countertable

    assert str(engine.__file__).endswith(SUFFIX) and str(saview.__file__).endswith(SUFFIX)
    assert countertable.NATIVE and countertable.CounterTable is not countertable.PyCounterTable
    from gateway_milter.antispam import metavm

    assert metavm.NATIVE  # (tests/unit/antispam/test_metavm.py skips without it)
    assert _status_in_child().startswith("compiled (")


def test_the_machines_cache_gives_a_build_of_the_same_sources_only(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root, where = _tree(tmp_path)
    monkeypatch.setenv("BULWARK_COMPILED_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "venv" / "bulwark-compiled"
    out.parent.mkdir()
    assert compiled.from_cache(out, root) is None  # nothing kept yet
    compiled.to_cache(where, root)
    assert compiled.from_cache(out, root) == out
    files, reason = compiled.check(out, root)
    assert files is not None and files["abc__mypyc"].parent == out, reason
    # an edited source has another key: the cache has no build for it
    src = compiled.source_of("gateway_milter.antispam.tokenizer", root)
    src.write_text(src.read_text() + "x = 1\n")
    assert compiled.from_cache(tmp_path / "other", root) is None
    # a build kept under the key of other sources (tampered with) is checked, not trusted
    kept = tmp_path / "cache" / compiled.cache_key(root)
    import shutil

    shutil.copytree(where, kept)
    assert compiled.from_cache(tmp_path / "other", root) is None


def test_the_cache_keeps_the_most_recently_used_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, where = _tree(tmp_path)
    monkeypatch.setenv("BULWARK_COMPILED_CACHE", str(tmp_path / "cache"))
    for i in range(6):
        src = compiled.source_of("gateway_milter.antispam.urls", root)
        src.write_text(f"# version {i}\n")
        compiled.to_cache(where, root, keep=4)  # (the manifest's hashes are not checked when kept)
        os.utime(tmp_path / "cache" / compiled.cache_key(root), (1000 + i, 1000 + i))
    assert len(list((tmp_path / "cache").iterdir())) == 4
    monkeypatch.setenv("BULWARK_COMPILED_CACHE", "0")
    assert compiled.cache_root() is None and compiled.from_cache(tmp_path / "x", root) is None


def test_native_hands_out_only_the_listed_c_modules() -> None:
    with pytest.raises(KeyError):
        compiled.native("gateway_milter.store.memory")
    for name in compiled.NATIVE_MODULES:  # the build's module while it is in use, else None
        got = compiled.native(name)
        assert (got is not None) == compiled.ACTIVE
        assert got is None or got.__name__ == name
