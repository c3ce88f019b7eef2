#!/usr/bin/env bash
# Type-checks the project with mypy, as pyproject.toml's [tool.mypy] configures it: strict for the
# domain and the rotation commands (keyrotation/), checked for the components, the policy pack, the
# wiring, the tests and the benchmark. Extra arguments go to mypy (e.g. a path to check only that).
#
#   bash scripts/typecheck.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/mypy ]; then
  echo "mypy is not installed in .venv: .venv/bin/pip install -r requirements-dev.txt" >&2
  exit 127
fi
exec .venv/bin/mypy --config-file pyproject.toml "$@"
