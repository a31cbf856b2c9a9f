#!/usr/bin/env bash
# Start receiver, worker(s) and Beat together (what `make run` does after migrating and
# loading the flows). Ctrl-C stops all three. Uses the environment's DATABASE_URL and
# CELERY_BROKER_URL, or the embedded defaults (SQLite, no server, sandbox Graph API).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"
PORT="${PORT:-8000}"
export PARLEY_PUBLIC_URL="${PARLEY_PUBLIC_URL:-http://127.0.0.1:$PORT}"
mkdir -p var

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$BIN/gunicorn" "webhook:create_app()" --bind "127.0.0.1:$PORT" --workers 2 --threads 4 --access-logfile - &
pids+=($!)
METRICS_PORT="${PARLEY_WORKER_METRICS_PORT:-9808}"
if [[ "${CELERY_BROKER_URL:-}" == redis* ]]; then
  # The production shape (docker-compose.yml): prefork for the engine, threads for sends.
  # Two workers on one host: each serves its metrics on a port of its own (0: none).
  SENDER_METRICS_PORT=$(( METRICS_PORT == 0 ? 0 : METRICS_PORT + 1 ))
  PARLEY_WORKER_METRICS_PORT="$METRICS_PORT" \
    "$BIN/celery" -A worker worker --loglevel INFO --concurrency "${WORKER_CONCURRENCY:-2}" -Q inbound,maintenance &
  pids+=($!)
  PARLEY_WORKER_METRICS_PORT="$SENDER_METRICS_PORT" \
    "$BIN/celery" -A worker worker -n "sender@%h" --loglevel INFO --pool threads --concurrency "${SENDER_THREADS:-16}" -Q outbound &
  pids+=($!)
else
  # The embedded broker (SQLite) suits one worker process for every queue.
  "$BIN/celery" -A worker worker --loglevel INFO --concurrency "${WORKER_CONCURRENCY:-2}" -Q inbound,outbound,maintenance &
  pids+=($!)
fi
"$BIN/celery" -A celery_beat beat --loglevel INFO --schedule var/celerybeat-schedule &
pids+=($!)

# Print the banner once the receiver answers and a worker is ready (its metrics port
# opens on worker_ready): a message sent before the worker has declared its queues on
# the embedded broker can be refused with 503.
ready() {
  "$BIN/python" - "$PORT" "$METRICS_PORT" <<'PY'
import sys, urllib.request
web, metrics = sys.argv[1], sys.argv[2]
urls = [f"http://127.0.0.1:{web}/healthz"] + ([f"http://127.0.0.1:{metrics}/metrics"] if metrics != "0" else [])
try:
    for url in urls:
        urllib.request.urlopen(url, timeout=1)
except OSError:
    sys.exit(1)
PY
}
for _ in $(seq 120); do ready && break; sleep 0.5; done
cat <<MSG

parley is running. Open the simulator and chat with your flows:

  $PARLEY_PUBLIC_URL/simulator/

  send a signed test message:  $BIN/flask --app webhook send-test "hi" --user 15550001111
  watch the replies:           $PARLEY_PUBLIC_URL/sandbox   (JSON: /sandbox/messages)
Ctrl-C stops everything.

MSG
wait -n "${pids[@]}"
