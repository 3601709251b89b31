"""The content path's modules compiled to C by mypyc, used only when built from exactly the
sources beside them (docs/decisions/0049-compiled-hot-path.md).

``scripts/compiled.py build`` compiles MODULES into ``<sys.prefix>/bulwark-compiled``
(the virtualenv: the extension modules are built for its interpreter), with the C sources of
NATIVE_MODULES compiled beside them, and a manifest holding each source file's SHA-256. On
import of ``gateway_milter``, :func:`install` compares those hashes with the sources in this
checkout: when every one matches, an import finder hands out the compiled modules; otherwise
(a source edited since the build, another interpreter, no build, or ``BULWARK_COMPILED=0``)
nothing changes and the same code runs as Python (a C module's Python twin: its ``.py``
beside it). Never a mix: the compiled modules call each other directly.

``scripts/compiled.py status`` says which is in use and why. ``build --if-needed`` takes a build
of the same sources from the machine's cache (:func:`cache_root`) before it compiles, and every
build it makes is kept there.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

# the modules of the content path's per-message work (message view, Bayes, the rules engine
# and its eval functions); the rest of the package stays Python
MODULES = tuple(f"gateway_milter.antispam.{n}" for n in (
    "bayes", "engine", "htmltext", "imageinfo", "matcher", "parseflags", "re2filter", "relays",
    "saeval", "sauris", "saview", "tokenizer", "urls", "wlbleval"))
# C sources of our own, compiled beside them (extension module name -> source under the root)
NATIVE_MODULES = {"gateway_milter.store._countertable": "gateway_milter/store/countertable.c",
                  "gateway_milter.antispam._metavm": "gateway_milter/antispam/metavm.c"}
FORMAT = 2  # (2: NATIVE_MODULES in the manifest)
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the directory holding gateway_milter/
ENV_SWITCH = "BULWARK_COMPILED"  # "0": never use a build

ACTIVE = False  # the compiled modules are the ones imported
REASON = "not checked"  # why (not)


def build_dir() -> Path:
    return Path(os.environ.get("BULWARK_COMPILED_DIR") or Path(sys.prefix) / "bulwark-compiled")


def source_of(module: str, root: Path = PACKAGE_ROOT) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _interpreter() -> dict[str, str]:
    return {"version": sys.version, "ext_suffix": str(sysconfig.get_config_var("EXT_SUFFIX") or "")}


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the built extension modules by their full names; everything else is left to the
    finders after it."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        f = self.files.get(fullname)
        if f is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(f))
        return importlib.util.spec_from_file_location(fullname, f, loader=loader)


def _built_from(entries: dict[str, dict[str, str]], source: Callable[[str], Path], where: Path,
                files: dict[str, Path]) -> str | None:
    """Each module's file into ``files`` when its source is the one it was built from; else why not."""
    for name, entry in entries.items():
        src = source(name)
        try:
            if _sha256(src) != entry["source_sha256"]:
                return f"{src.name} changed since the build"
        except OSError:
            return f"{src} is missing"
        files[name] = where / entry["file"]
    return None


def check(where: Path | None = None, root: Path = PACKAGE_ROOT) -> tuple[dict[str, Path] | None, str]:
    """(module name -> extension file, reason) when the build in ``where`` matches the sources
    under ``root``; (None, why not) otherwise."""
    where = where or build_dir()
    try:
        doc = json.loads((where / "manifest.json").read_text())
    except FileNotFoundError:
        return None, f"no build in {where}"
    except (OSError, ValueError) as e:
        return None, f"unreadable manifest in {where}: {e}"
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return None, "a build of another format"
    if doc.get("interpreter") != _interpreter():
        return None, "built for another interpreter"
    modules = doc.get("modules") or {}
    if sorted(modules) != sorted(MODULES):
        return None, "built for another set of modules"
    files: dict[str, Path] = {}
    why = _built_from(modules, lambda name: source_of(name, root), where, files)
    if why:
        return None, why
    native = doc.get("native") or {}
    if sorted(native) != sorted(NATIVE_MODULES):
        return None, "built for another set of C sources"
    why = _built_from(native, lambda name: root / NATIVE_MODULES[name], where, files)
    if why:
        return None, why
    for name, rel in (doc.get("support") or {}).items():
        files[name] = where / rel
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        return None, f"extension files missing: {', '.join(missing)}"
    return files, f"compiled modules from {where}"


def install() -> bool:
    """Called on import of ``gateway_milter``: puts the compiled modules first when they match."""
    global ACTIVE, REASON
    if ACTIVE:
        return True
    if os.environ.get(ENV_SWITCH, "") == "0":
        REASON = f"{ENV_SWITCH}=0"
        return False
    files, REASON = check()
    if files is None:
        return False
    if any(name in sys.modules for name in MODULES):  # imported as Python already: no mix
        REASON = "modules already imported as Python"
        return False
    sys.meta_path.insert(0, _Finder(files))
    ACTIVE = True
    return True


def status() -> str:
    return ("compiled" if ACTIVE else "Python") + f" ({REASON})"


def native(module: str) -> ModuleType | None:
    """One of NATIVE_MODULES when the build in use holds it (the finder :func:`install` puts
    first hands it out), else None: its Python twin then runs."""
    if module not in NATIVE_MODULES:
        raise KeyError(f"{module} is not one of NATIVE_MODULES")
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def cache_root() -> Path | None:
    """The machine's cache of builds, one directory per set of sources: ``BULWARK_COMPILED_CACHE``
    (``0`` turns it off), else ``bulwark/compiled`` under ``XDG_CACHE_HOME`` (``~/.cache``). A
    fresh checkout or virtualenv of sources built before on this machine takes the build from
    there instead of compiling again (about 90 s on 2 cores)."""
    d = os.environ.get("BULWARK_COMPILED_CACHE")
    if d == "0":
        return None
    if d:
        return Path(d)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bulwark" / "compiled"


def cache_key(root: Path = PACKAGE_ROOT) -> str:
    """What a build depends on: the format, the interpreter, mypyc's version and every source."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        mypy_version = version("mypy")
    except PackageNotFoundError:
        mypy_version = ""
    doc = {"format": FORMAT, "interpreter": _interpreter(), "mypy": mypy_version,
           "sources": {m: _sha256(source_of(m, root)) for m in MODULES},
           "native": {m: _sha256(root / src) for m, src in NATIVE_MODULES.items()}}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:24]


def _put(src: Path, out: Path) -> None:
    """Replaces ``out`` with a copy of the build in ``src`` (atomically for readers)."""
    stage = out.with_name(out.name + ".new")
    shutil.rmtree(stage, ignore_errors=True)
    shutil.copytree(src, stage)
    _swap(stage, out)


def _swap(stage: Path, out: Path) -> None:
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    stage.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def from_cache(out: Path | None = None, root: Path = PACKAGE_ROOT) -> Path | None:
    """The build for these sources from the machine's cache into ``out``; None when it has none."""
    cache = cache_root()
    if cache is None:
        return None
    entry = cache / cache_key(root)
    if check(entry, root)[0] is None:
        return None
    out = out or build_dir()
    _put(entry, out)
    os.utime(entry)  # (kept: the least recently used go first)
    return out


def to_cache(where: Path, root: Path = PACKAGE_ROOT, keep: int = 4) -> None:
    """Keeps a copy of the build in ``where`` in the machine's cache (the ``keep`` most recently
    used builds stay). A cache that cannot be written is only a warning."""
    cache = cache_root()
    if cache is None:
        return
    try:
        cache.mkdir(parents=True, exist_ok=True)
        _put(where, cache / cache_key(root))
        entries = sorted((d for d in cache.iterdir() if d.is_dir() and len(d.name) == 24),
                         key=lambda d: d.stat().st_mtime, reverse=True)
        for d in entries[keep:]:
            shutil.rmtree(d, ignore_errors=True)
    except OSError as e:
        print(f"warning: the build is not kept in {cache}: {e}", file=sys.stderr)


def compile_c(src: Path, out: Path, quiet: bool = True) -> None:
    """One C source into an extension module for this interpreter, with its own compiler
    (sysconfig's CC, as mypyc's build uses)."""
    import shlex

    cc = shlex.split(str(sysconfig.get_config_var("CC") or "cc"))
    cmd = [*cc, "-O2", "-fPIC", "-shared", "-Wall", f"-I{sysconfig.get_paths()['include']}",
           str(src), "-o", str(out)]
    _run(cmd, f"{src.name} did not compile", quiet)


def _run(cmd: list[str], failed: str, quiet: bool, cwd: Path | None = None) -> None:
    """A build step; a RuntimeError with the end of its output when it fails."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=quiet, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stdout or "")[-4000:] + (proc.stderr or "")[-4000:] if quiet else ""
        raise RuntimeError(f"{failed} (exit {proc.returncode})\n{detail}")


def build(out: Path | None = None, root: Path = PACKAGE_ROOT, quiet: bool = True) -> Path:
    """Compiles MODULES from the sources under ``root`` into ``out`` (replaced whole, atomically
    for readers: the manifest is written last)."""
    out = out or build_dir()
    with tempfile.TemporaryDirectory(prefix="bulwark-mypyc-") as tmp:
        work = Path(tmp)
        # a copy of the package's Python sources: mypyc writes its C files and extension modules
        # beside what it compiles, and the checkout stays as it is
        shutil.copytree(root / "gateway_milter", work / "gateway_milter",
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc", "migrations"))
        if (root / "mypy.ini").is_file():
            shutil.copy2(root / "mypy.ini", work / "mypy.ini")
        sources = [str(source_of(m, work).relative_to(work)) for m in MODULES]
        hashes = {m: _sha256(source_of(m, work)) for m in MODULES}
        _run([sys.executable, "-m", "mypyc", *sources], "mypyc failed", quiet, cwd=work)
        suffix = str(sysconfig.get_config_var("EXT_SUFFIX"))
        stage = out.with_name(out.name + ".new")
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        modules: dict[str, dict[str, str]] = {}
        for m in MODULES:
            built = work.joinpath(*m.split(".")).with_name(m.rsplit(".", 1)[1] + suffix)
            if not built.is_file():
                raise RuntimeError(f"mypyc built no {built.name}")
            rel = m + suffix
            shutil.copy2(built, stage / rel)
            modules[m] = {"file": rel, "source_sha256": hashes[m]}
        # mypyc's shared part: a top-level module named after the group (``<hash>__mypyc``)
        support = {}
        for f in work.glob(f"*__mypyc{suffix}"):
            shutil.copy2(f, stage / f.name)
            support[f.name[: -len(suffix)]] = f.name
        native: dict[str, dict[str, str]] = {}
        for m, src in NATIVE_MODULES.items():
            rel = m + suffix
            compile_c(root / src, stage / rel, quiet)
            native[m] = {"file": rel, "source_sha256": _sha256(root / src)}
        doc = {"format": FORMAT, "interpreter": _interpreter(), "modules": modules, "native": native,
               "support": support}
        (stage / "manifest.json").write_text(json.dumps(doc, indent=1))
        _swap(stage, out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["build"]:
        if "--if-needed" in args:
            files, reason = check()
            if files is not None:
                print(f"compiled modules up to date in {build_dir()}")
                return 0
            try:
                where = from_cache()
            except OSError as e:
                print(f"warning: the machine's cache of builds is unusable: {e}", file=sys.stderr)
                where = None
            if where is not None:
                print(f"compiled modules for these sources taken from {cache_root()} into {where}")
                return 0
        try:
            where = build(quiet="--verbose" not in args)
        except (RuntimeError, OSError) as e:
            print(f"compiled modules not built: {e}", file=sys.stderr)
            return 1
        files, reason = check(where)
        if files:
            to_cache(where)
        print(f"built {len(MODULES)} modules and {len(NATIVE_MODULES)} C module(s) into {where}: "
              f"{reason if files else 'NOT usable: ' + reason}")
        return 0 if files else 1
    if args[:1] == ["status"]:
        print(status())
        return 0
    print("usage: scripts/compiled.py build [--if-needed] [--verbose] | status", file=sys.stderr)
    return 2

