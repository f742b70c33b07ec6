#!/usr/bin/env bash
# The project's one test command (README "Run the tests"; .ci/run calls exactly this).
# Installs what the tests need when it is missing, then runs format, lint and every test target.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*"; }

need_apt=()
# kubectl drives the embedded API server in the sim tests, as a user would.
command -v kubectl >/dev/null 2>&1 || need_apt+=(kubectl)
# A real Prometheus (and promtool to backfill its data) answers the metric tests. Its system
# service is never used: each test starts its own process on 127.0.0.1.
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || need_apt+=(prometheus)
# A real graphite-web (with whisper's tools to write its data) answers the Graphite provider's
# tests; each test starts its own Django server on 127.0.0.1.
{ command -v django-admin && command -v whisper-create; } >/dev/null 2>&1 \
  && dpkg -s graphite-web >/dev/null 2>&1 || need_apt+=(graphite-web)
# openssl makes self-signed certificates and serves TLS for the certificate-verification tests.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# Headless Chromium is the real browser the dashboard's tests drive over the DevTools protocol
# (tests/common/browser.rs runs `chromium` from PATH, so nothing about it is exported here).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Helm's own engine for the chart tests: the PyPI package helm-sdkpy (a binding of Helm's Go
# library). It declares Python >= 3.12 but runs on 3.11, hence --ignore-requires-python.
HELM_VENV=target/helm-venv
HELM_SDKPY_VERSION=0.1.32
if ! "$HELM_VENV/bin/python" -c 'import helm_sdkpy' >/dev/null 2>&1; then
  log "installing helm-sdkpy $HELM_SDKPY_VERSION into $HELM_VENV (pip)"
  python3 -m venv "$HELM_VENV"
  "$HELM_VENV/bin/pip" install -q --disable-pip-version-check --ignore-requires-python \
    "helm-sdkpy==$HELM_SDKPY_VERSION"
fi
export SERIN_HELM_PYTHON="$PWD/$HELM_VENV/bin/python"

# A real AWS-API server for the CloudWatch provider's tests: moto in server mode (it verifies
# SigV4 signatures when IAM auth is on), with boto3 for the test's setup script.
MOTO_VENV=target/moto-venv
MOTO_VERSION=5.2.1
if ! "$MOTO_VENV/bin/python" -c 'import moto.server, boto3' >/dev/null 2>&1; then
  log "installing moto[server] $MOTO_VERSION into $MOTO_VENV (pip)"
  python3 -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
export SERIN_MOTO_VENV="$PWD/$MOTO_VENV"

# A from-scratch build gains nothing from incremental caches, and they doubled the disk it used.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
log "disk before the build: $(df -h --output=avail . | tail -1 | tr -d ' ') free"

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

log "cargo test --all-targets"
cargo test --all-targets
log "disk after the tests: $(df -h --output=avail . | tail -1 | tr -d ' ') free; target/ is $(du -sh target | cut -f1)"
