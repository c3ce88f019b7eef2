#!/usr/bin/env bash
# Sets up everything the tests need from the project's own files, then runs ruff, mypy and pytest.
# Usage: bash scripts/test.sh [pytest arguments]
#
# The real-engine tests (tests/test_automation.py, test_real_engine.py, ...) need the pinned Pulumi
# CLI: scripts/install-pulumi.sh finds it or builds it from Pulumi's Go modules (minutes the first
# time, cached after). With neither Go nor a CLI those tests skip, saying why; in CI (CI=true), or
# when Go is there but the build fails, this script fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use: SoftHSM2 (a real PKCS#11 token for backend pkcs11), OpenSSL 3
# (SM2 signatures) and its GOST engine. Installed only when missing.
bash scripts/install-system-packages.sh

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt

# The real Mermaid parser the timeline tests run (tools/mermaid, versions pinned by its
# package-lock.json): installed from the npm registry once, offline after that.
if command -v npm >/dev/null 2>&1; then
  if [ ! -f tools/mermaid/node_modules/.package-lock.json ] \
      || [ tools/mermaid/package-lock.json -nt tools/mermaid/node_modules/.package-lock.json ]; then
    npm ci --prefix tools/mermaid --no-audit --no-fund --loglevel=error
  fi
  export KEY_ROTATION_REQUIRE_MERMAID=1
elif [ "${CI:-}" = "true" ]; then
  echo "scripts/test.sh: npm (Node.js 18+) is needed for the Mermaid parser (tools/mermaid)." >&2
  exit 1
else
  echo "scripts/test.sh: no npm: the tests that parse the timeline's Mermaid block will skip." >&2
fi

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
# Types (pyproject.toml [tool.mypy]: strict for keyrotation/, checked for the rest).
bash scripts/typecheck.sh
.venv/bin/python -m pytest "$@"
