#!/usr/bin/env bash
# The run command: sets everything up and runs the gateway on this machine, in the foreground:
#   web admin     http://127.0.0.1:8000/   (GATEWAY_WEB_BIND to change)
#   milter        unix:var/run/milter.sock
#   worker        embedded scheduler (Celery when GATEWAY_REDIS_URL is set)
#   Postfix       127.0.0.1:2525 -> milter -> demo mailbox (var/mailbox/, an smtp-sink on :2526)
#                 127.0.0.1:10026 re-injection listener without milters (quarantine release)
# Stop with Ctrl-C. Nothing outside this checkout is configured (the system Postfix is untouched).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/install-deps.sh

export GATEWAY_DATA_DIR=${GATEWAY_DATA_DIR:-$here/var}
export GATEWAY_MILTER_SOCKET=${GATEWAY_MILTER_SOCKET:-unix:$GATEWAY_DATA_DIR/run/milter.sock}
export GATEWAY_REINJECT_PORT=${GATEWAY_REINJECT_PORT:-10026}
export GATEWAY_POSTFIX_CONFIG_DIR=${GATEWAY_POSTFIX_CONFIG_DIR:-$GATEWAY_DATA_DIR/postfix/etc}  # (the queue page's postqueue -c)
web_bind=${GATEWAY_WEB_BIND:-127.0.0.1:8000}
smtp_port=${GATEWAY_SMTP_PORT:-2525}
sink_port=${GATEWAY_SINK_PORT:-2526}
py=.venv/bin/python
mkdir -p "$GATEWAY_DATA_DIR"/{run,log,mailbox}
chmod 755 "$GATEWAY_DATA_DIR" "$GATEWAY_DATA_DIR/run"
chown postfix "$GATEWAY_DATA_DIR/mailbox"

# ClamAV: use a local clamd when a signature database exists; otherwise start without it.
av_flag=()
if [ -z "${GATEWAY_CLAMD:-}" ]; then
  if ls /var/lib/clamav/*.c[vl]d >/dev/null 2>&1 && command -v clamd >/dev/null; then
    mkdir -p /run/clamav && chown clamav /run/clamav 2>/dev/null || true
    pgrep -x clamd >/dev/null || clamd
    export GATEWAY_CLAMD=unix:/run/clamav/clamd.ctl
  else
    echo "note: no ClamAV signature database in /var/lib/clamav (run freshclam when online);"
    echo "      the antivirus layer starts switched off."
    av_flag=(--no-antivirus)
  fi
fi

"$py" manage.py bootstrap "${av_flag[@]}" > "$GATEWAY_DATA_DIR/log/bootstrap.log"
"$py" manage.py collectstatic --noinput -v0

# A private Postfix instance wired to the milter (scripts/postfix_instance.py).
pf="$GATEWAY_DATA_DIR/postfix"
sock=${GATEWAY_MILTER_SOCKET#unix:}
"$py" scripts/postfix_instance.py "$pf" --port "$smtp_port" --reinject "$GATEWAY_REINJECT_PORT" \
    --relay "$sink_port" --milter "unix:$sock" --log "$GATEWAY_DATA_DIR/log/postfix.log" >/dev/null

pids=()
cleanup() {
  echo; echo "stopping..."
  postfix -c "$pf/etc" stop >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

smtp-sink -u postfix -d "$GATEWAY_DATA_DIR/mailbox/%Y%m%d-%H%M%S." "127.0.0.1:$sink_port" 100 \
    >> "$GATEWAY_DATA_DIR/log/mailbox.log" 2>&1 & pids+=($!)
GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1} "$py" manage.py runmilter --socket "$GATEWAY_MILTER_SOCKET" >> "$GATEWAY_DATA_DIR/log/milter.log" 2>&1 & pids+=($!)
"$py" manage.py runworker >> "$GATEWAY_DATA_DIR/log/worker.log" 2>&1 & pids+=($!)
.venv/bin/gunicorn config.wsgi:application --bind "$web_bind" --workers 2 --access-logfile - \
    >> "$GATEWAY_DATA_DIR/log/web.log" 2>&1 & pids+=($!)
for _ in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.1; done
postfix -c "$pf/etc" check >/dev/null 2>&1 || script -qec "postfix -c $pf/etc check" /dev/null
postfix -c "$pf/etc" start >/dev/null 2>&1 || postfix -c "$pf/etc" reload >/dev/null 2>&1

cat <<TXT

Bulwark is running.
  web admin:  http://$web_bind/     $(tail -1 "$GATEWAY_DATA_DIR/log/bootstrap.log")
              (administrators use two-factor login: the first login shows a QR code for an
              authenticator app; Setup → Gateway settings can turn the requirement off)
  send mail:  swaks --server 127.0.0.1:$smtp_port --from alice@outside.test --to bob@example.test --header "Subject: hello"
  refused:    swaks --server 127.0.0.1:$smtp_port --from eve@blocked.example --to bob@example.test
  delivered:  ls $GATEWAY_DATA_DIR/mailbox/      message log: .venv/bin/python manage.py msglog show
  logs:       $GATEWAY_DATA_DIR/log/
Press Ctrl-C to stop.
TXT
wait
