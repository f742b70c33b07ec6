#!/usr/bin/env bash
# The release binary's footprint (issue 20, item 4): its size, and its cold start to ready — from
# exec to the first 200 from /readyz, which comes after its first successful list of Canaries —
# against `serin sim serve` on 127.0.0.1, five runs. Prints a report for docs/performance.md.
# Needs kubectl (scripts/test.sh installs it) and curl. SERIN_BIN=path measures that binary.
set -euo pipefail
cd "$(dirname "$0")/.."

# SERIN_BIN measures another build (e.g. an older one kept aside) without building.
bin=${SERIN_BIN:-target/release/serin}
[ -n "${SERIN_BIN:-}" ] || cargo build --release --bin serin --quiet
bytes=$(stat -c %s "$bin")
printf 'binary: %s bytes (%s MiB), %s\n' "$bytes" "$(awk "BEGIN{printf \"%.1f\", $bytes/1048576}")" "$("$bin" --version)"

tmp=$(mktemp -d)
sim_pid=""
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
"$bin" sim serve --port 0 --kubeconfig-out "$tmp/kubeconfig" >/dev/null 2>&1 &
sim_pid=$!
for _ in $(seq 200); do [ -s "$tmp/kubeconfig" ] && break; sleep 0.05; done
"$bin" crds | kubectl --kubeconfig "$tmp/kubeconfig" apply --server-side -f - >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for run in 1 2 3 4 5; do
  port=$(free_port)
  start=$(date +%s%N)
  KUBECONFIG="$tmp/kubeconfig" "$bin" controller --metrics-addr "127.0.0.1:$port" \
    --log-format text >"$tmp/controller.log" 2>&1 &
  pid=$!
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { echo "controller exited:"; cat "$tmp/controller.log"; exit 1; }
    sleep 0.005
  done
  end=$(date +%s%N)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "cold start to ready, run $run: $(( (end - start) / 1000000 )) ms"
done
