#!/usr/bin/env bash
# The Debian packages the tests need, installed only when missing (idempotent):
#   softhsm2                  a real PKCS#11 token for backend pkcs11 (tests/test_pkcs11.py)
#   openssl                   OpenSSL 3: SM2 keys and signatures (tests/test_profiles.py)
#   libengine-gost-openssl    OpenSSL's GOST engine: GOST R 34.10-2012 keys and signatures
set -euo pipefail

missing=()
[ -e /usr/lib/softhsm/libsofthsm2.so ] && command -v softhsm2-util >/dev/null 2>&1 || missing+=(softhsm2)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
[ -e /usr/lib/x86_64-linux-gnu/engines-3/gost.so ] || [ -e /usr/lib/aarch64-linux-gnu/engines-3/gost.so ] \
  || missing+=(libengine-gost-openssl)

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-packages.sh: missing ${missing[*]} and no apt-get to install them" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "install-system-packages.sh: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
