#!/usr/bin/env bash
# Runs every consumer as its own process (its own consumer group) and the read API, with
# readable logs prefixed by service. Ctrl-C (or SIGTERM) stops them all gracefully.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
export LOYALTY_LOG_FORMAT="${LOYALTY_LOG_FORMAT:-console}"
# module  name
SERVICES=(
  "services.checkout checkout"
  "services.lifecycle lifecycle"
  "services.refunds refunds"
  "services.enrichment enrichment"
  "services.api api"
)
pids=()
stop() { trap - INT TERM; echo "run.sh: stopping"; kill -TERM "${pids[@]}" 2>/dev/null || true; wait; exit 0; }
trap stop INT TERM
port=9101
for entry in "${SERVICES[@]}"; do
  read -r module name <<<"$entry"
  ( cd "$ROOT" && LOYALTY_METRICS_PORT=$port exec "$PY" -u -m "$module" 2>&1 | sed -u "s/^/[$name] /" ) &
  pids+=($!)
  if [ "$name" = api ]; then
    echo "run.sh: started $name ($module), metrics and health on its own port"
  else
    echo "run.sh: started $name ($module), metrics and health on 127.0.0.1:$port"
  fi
  port=$((port + 1))
done
echo "run.sh: read API on http://127.0.0.1:${LOYALTY_API_PORT:-8080} (docs at /docs, key dev-key-default)"
echo "run.sh: engine running. In another terminal: make demo"
wait
