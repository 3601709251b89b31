"""The milter's allocator setting (docs/decisions/0067-huge-pages.md): the C library backs large
allocations with 2 MB pages. Its unit file, the run command and the benchmark start it with the
setting, and on this machine the setting does what it is there for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.antispam.helpers import bench_module

ROOT = Path(__file__).resolve().parents[2]
TUNABLE = "glibc.malloc.hugetlb=1"
THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def test_the_milter_starts_with_the_setting_everywhere_it_is_started() -> None:
    unit = (ROOT / "systemd" / "bulwark-milter.service").read_text().splitlines()
    assert f"Environment=GLIBC_TUNABLES={TUNABLE}" in unit
    # before the environment file, which may override it
    assert unit.index(f"Environment=GLIBC_TUNABLES={TUNABLE}") < unit.index("EnvironmentFile=/etc/bulwark/bulwark.env")
    for other in ("bulwark-web.service", "bulwark-worker.service", "bulwark-beat.service"):
        assert "GLIBC_TUNABLES" not in (ROOT / "systemd" / other).read_text(), other
    run = [ln for ln in (ROOT / "scripts" / "run.sh").read_text().splitlines() if "manage.py runmilter" in ln]
    assert len(run) == 1 and f"GLIBC_TUNABLES=${{GLIBC_TUNABLES:-{TUNABLE}}}" in run[0]
    assert bench_module().MALLOC_TUNABLE == TUNABLE


def _huge_kb(env: dict[str, str]) -> int:
    """AnonHugePages of a child Python that wrote 64 MB into one allocation."""
    code = ("b = bytearray(64 << 20)\n"
            "for i in range(0, len(b), 4096): b[i] = 1\n"
            "print(sum(int(ln.split()[1]) for ln in open('/proc/self/smaps') if ln.startswith('AnonHugePages:')))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60)
    return int(out.stdout)


@pytest.mark.skipif(not THP.exists() or "[never]" in THP.read_text(),
                    reason="transparent huge pages are off (or absent) on this kernel: the setting does nothing here")
def test_the_setting_backs_a_large_allocation_with_huge_pages() -> None:
    base = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    assert _huge_kb({**base, "GLIBC_TUNABLES": TUNABLE}) >= 32 * 1024
    if "[madvise]" in THP.read_text():  # (in "always" mode every process gets them anyway)
        assert _huge_kb(base) == 0
