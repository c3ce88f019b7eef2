#!/usr/bin/env bash
# Runs the dev stack for real: `pulumi up` against a local file backend, software keys, documents
# published as files under published/. No cloud account is needed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v pulumi >/dev/null 2>&1; then
  cat >&2 <<'MSG'
The Pulumi CLI is not installed. Install it (https://www.pulumi.com/docs/iac/download-install/),
for example with `curl -fsSL https://get.pulumi.com | sh` or `brew install pulumi/tap/pulumi`,
then run this script again. (The tests do not need it: bash scripts/test.sh)
MSG
  exit 127
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt

mkdir -p .pulumi-state
export PULUMI_BACKEND_URL="file://$PWD/.pulumi-state"
# A passphrase for the dev stack's secrets only; staging and production use a KMS secrets provider.
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE:-key-rotation-dev}"
pulumi stack select dev 2>/dev/null || pulumi stack init dev --secrets-provider passphrase
pulumi up --stack dev --yes "$@"
pulumi stack output --stack dev --json
