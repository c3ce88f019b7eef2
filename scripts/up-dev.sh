#!/usr/bin/env bash
# Runs the dev stack for real: `pulumi up` against a local file backend, software keys, documents
# published as files under published/. No cloud account is needed.
#
# It installs what it needs from the project's own files: the Python packages into .venv, and the
# pinned Pulumi CLI with its Python language host (scripts/install-pulumi.sh: an existing `pulumi` of
# that version, else built from Pulumi's Go modules into .pulumi-cli/). Arguments go to `pulumi up`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt -r policy/requirements.txt

bin=$(bash scripts/install-pulumi.sh)
# The language host runs `python3` from PATH: the project's virtualenv comes first.
export PATH="$PWD/.venv/bin:$bin:$PATH"
export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$PWD/.pulumi-state}"
# The dev stack's dev-only passphrase: Pulumi.dev.yaml carries its salt. Staging and production
# use a KMS secrets provider.
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE:-key-rotation-dev}"
case "$PULUMI_BACKEND_URL" in
  file://*) mkdir -p "${PULUMI_BACKEND_URL#file://}" ;;
esac

pulumi stack select dev --non-interactive 2>/dev/null \
  || pulumi stack init dev --secrets-provider passphrase --non-interactive
pulumi up --stack dev --yes --non-interactive "$@"
pulumi stack output --stack dev --json
