#!/usr/bin/env bash
# Puts the pinned Pulumi CLI and its Python language host where the project's commands find them,
# and prints that directory on stdout (everything else goes to stderr):
#
#   PATH="$(bash scripts/install-pulumi.sh):$PATH"
#
# 1. A `pulumi` already on PATH (or at $PULUMI_CLI) of the pinned version, with a
#    `pulumi-language-python` beside it or on PATH, is used as it is.
# 2. Else the copy built earlier into .pulumi-cli/<version>/bin (ignored by git) is used, or
#    the one another clone built into ~/.cache/key-rotation/pulumi-cli/<version>/bin.
# 3. Else both are built there from Pulumi's own Go modules (tools/pulumi/*/go.mod pin the versions
#    and go.sum their hashes): nothing is downloaded from anywhere but the Go module proxy.
# With neither Go nor a CLI of that version it says what to install and exits 127.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

cli_module=tools/pulumi/cli
host_module=tools/pulumi/language-python
# The one place the versions live: the build modules' go.mod files.
required() {  # required GO_MOD MODULE: the version GO_MOD requires of MODULE
  awk -v m="$2" '{ for (i = 1; i < NF; i++) if ($i == m) { print $(i + 1); exit } }' "$1"
}
version=$(required "$cli_module/go.mod" github.com/pulumi/pulumi/pkg/v3)
host_sdk=$(required "$host_module/go.mod" github.com/pulumi/pulumi/sdk/v3)
if [ -z "$version" ] || [ -z "$host_sdk" ]; then
  echo "tools/pulumi/*/go.mod: no version of github.com/pulumi/pulumi/pkg/v3 or sdk/v3 found" >&2
  exit 1
fi
bin="$root/.pulumi-cli/$version/bin"

say() { printf '%s\n' "$*" >&2; }

cli_version() { "$1" version 2>/dev/null | tr -d '[:space:]'; }

complete() {  # complete DIR: the CLI, the language host and the two Python entry points are there
  local dir=$1
  [ -x "$dir/pulumi" ] && [ -x "$dir/pulumi-language-python" ] \
    && [ -x "$dir/pulumi-language-python-exec" ] && [ -x "$dir/pulumi-resource-pulumi-python" ]
}

# 1. An existing CLI of the pinned version.
existing=${PULUMI_CLI:-$(command -v pulumi || true)}
if [ -n "$existing" ] && [ "$(cli_version "$existing")" = "$version" ]; then
  dir=$(cd "$(dirname "$existing")" && pwd)
  if [ -x "$dir/pulumi-language-python" ] || command -v pulumi-language-python >/dev/null 2>&1; then
    say "Using the Pulumi CLI $version at $existing."
    echo "$dir"
    exit 0
  fi
fi

# 2. The copy built before: in this project, or in the user's cache (another clone built it).
cache="${XDG_CACHE_HOME:-$HOME/.cache}/key-rotation/pulumi-cli/$version/bin"
if ! complete "$bin" && complete "$cache" && [ "$(cli_version "$cache/pulumi")" = "$version" ]; then
  mkdir -p "$bin"
  cp -p "$cache"/pulumi* "$bin/"
fi
if complete "$bin" && [ "$(cli_version "$bin/pulumi")" = "$version" ]; then
  echo "$bin"
  exit 0
fi

# 3. Build it.
if ! command -v go >/dev/null 2>&1; then
  found=""
  [ -n "$existing" ] && found=" (found $existing, version '$(cli_version "$existing")')"
  say "The Pulumi CLI $version is needed$found, and Go is not installed to build it."
  say "Either install Go >= $(awk '$1 == "go" {print $2; exit}' "$cli_module/go.mod") (https://go.dev/dl/; it reaches the Go module proxy)"
  say "and run this script again, or install the Pulumi CLI $version with its Python language host"
  say "(https://www.pulumi.com/docs/iac/download-install/) and put it on PATH or in \$PULUMI_CLI."
  exit 127
fi

say "Building the Pulumi CLI $version and the Python language host (sdk $host_sdk) from the Go"
say "module proxy into $bin: a few minutes the first time; Go's caches make later builds fast."
mkdir -p "$bin"
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
# Release builds stamp the version; without it `pulumi version` is empty and version checks fail.
(cd "$cli_module" && go build -trimpath -tags osusergo,grpcnotrace \
  -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
  -o "$bin/pulumi.tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi) >&2
(cd "$host_module" && go build -trimpath -tags osusergo \
  -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$host_sdk" \
  -o "$bin/pulumi-language-python.tmp" github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python) >&2

# The Python entry points the host and the engine run are files of the sdk/v3 module at the CLI's
# version (the module cache drops their exec bits).
sdk_dir=$(cd "$cli_module" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
install -m 0755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$bin/pulumi-language-python-exec"
install -m 0755 "$sdk_dir/python/dist/pulumi-resource-pulumi-python" "$bin/pulumi-resource-pulumi-python"
mv "$bin/pulumi-language-python.tmp" "$bin/pulumi-language-python"
mv "$bin/pulumi.tmp" "$bin/pulumi"

if [ "$(cli_version "$bin/pulumi")" != "$version" ]; then
  say "The CLI built into $bin reports version '$(cli_version "$bin/pulumi")', not $version."
  exit 1
fi
mkdir -p "$cache" && cp -p "$bin"/pulumi* "$cache/" 2>/dev/null || true
say "Installed the Pulumi CLI $version into $bin (and a copy in $cache for other clones)."
echo "$bin"
