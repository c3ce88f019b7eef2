#!/usr/bin/env bash
# The property tests with random seeds and many examples (Hypothesis profile `long`), as the nightly
# job runs them. A counterexample is printed with its reproduction blob; pin it with @example.
# Usage: bash scripts/test-long.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt

HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest -m property -p no:cacheprovider "$@"
