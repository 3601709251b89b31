#!/usr/bin/env bash
# Installs the Debian packages and the Python virtualenv Bulwark needs (idempotent).
# Usage: scripts/install-deps.sh [--test]   (--test adds the services the test tiers start)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
want_test=0
[ "${1:-}" = "--test" ] && want_test=1
export DEBIAN_FRONTEND=noninteractive

# runtime: the MTA, libmilter for pymilter, libmagic for file types, SpamAssassin's rule set,
# ClamAV (clamd needs a signature database: freshclam, when the host is online)
pkgs=(postfix swaks libmilter-dev python3-venv python3-dev build-essential libmagic1 spamassassin clamav-daemon)
if [ "$want_test" = 1 ]; then
  pkgs+=(clamav clamav-daemon clamdscan knot knot-dnsutils rbldnsd unbound
         dovecot-core dovecot-sieve redis-server postgresql
         zip unzip p7zip-full libarchive-tools libmagic1 chromium chromium-driver fonts-liberation
         spamassassin)
else
  pkgs+=(redis-server)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  echo "postfix postfix/mailname string bulwark.localdomain" | debconf-set-selections
  apt-get -o DPkg::Lock::Timeout=600 update -q
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
fi

venv="${GATEWAY_VENV:-$here/.venv}"
# The virtualenv is made from Debian's own interpreter (python3-venv and python3-dev above are
# its packages), not from whichever python3 comes first on PATH: Debian builds it with
# profile-guided and link-time optimisation and links the interpreter into the executable, and
# the content path takes about 9 % less CPU on it than on a plain source build with a shared
# libpython, such as pyenv's (docs/decisions/0063-debian-python.md). GATEWAY_PYTHON names
# another Python 3.11 to use instead. A virtualenv made from a different interpreter is made
# again (with its requirements and compiled modules).
py_base="${GATEWAY_PYTHON:-/usr/bin/python3}"
[ -x "$py_base" ] || py_base=$(command -v python3)
py_real=$(readlink -f "$py_base")
if [ -x "$venv/bin/python" ]; then
  venv_exe=$(sed -n 's/^executable *= *//p' "$venv/pyvenv.cfg" 2>/dev/null)
  venv_real=$(readlink -f "${venv_exe:-$venv/bin/python}")
  if [ "$venv_real" != "$py_real" ] && [ -f "$venv/pyvenv.cfg" ]; then
    echo "the virtualenv at $venv was made from ${venv_real:-another interpreter}; making it again from $py_real"
    rm -rf "$venv"
  fi
fi
if [ ! -x "$venv/bin/python" ]; then
  "$py_base" -m venv "$venv"
fi
stamp="$venv/.requirements.sha"
req_sha=$(cat "$here/requirements.txt" "$here/requirements-dev.txt" 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$req_sha" ]; then
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r "$here/requirements.txt" -r "$here/requirements-dev.txt"
  echo "$req_sha" > "$stamp"
fi
# the content path's modules compiled to C by mypyc (gateway_milter/compiled.py, ADR 0049), about
# a minute on 2 cores, again only when one of their sources changed; without them the same
# code runs as Python. The test command needs them: the suite runs on the code the gateway runs.
if ! "$venv/bin/python" "$here/scripts/compiled.py" build --if-needed; then
  [ "$want_test" = 1 ] && exit 1
  echo "warning: compiled modules not built; the gateway runs them as Python" >&2
fi
echo "dependencies ready: venv at $venv"
