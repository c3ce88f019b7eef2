#!/usr/bin/env bash
# Sets up everything the tests need from the project's own files, then runs ruff and pytest.
# Usage: bash scripts/test.sh [pytest arguments]
#
# The real-engine tests (tests/test_automation.py, test_real_engine.py, ...) need the pinned Pulumi
# CLI: scripts/install-pulumi.sh finds it or builds it from Pulumi's Go modules (minutes the first
# time, cached after). With neither Go nor a CLI those tests skip, saying why; in CI (CI=true), or
# when Go is there but the build fails, this script fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt

if bin=$(bash scripts/install-pulumi.sh); then
  export PATH="$bin:$PATH"
  export KEY_ROTATION_REQUIRE_PULUMI=1
else
  status=$?
  if [ "${CI:-}" = "true" ] || [ "$status" -ne 127 ]; then
    echo "scripts/test.sh: the Pulumi CLI could not be installed (scripts/install-pulumi.sh exited $status)." >&2
    exit 1
  fi
  echo "scripts/test.sh: no Pulumi CLI and no Go to build it: the real-engine tests will skip." >&2
fi

.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
