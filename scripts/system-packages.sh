#!/usr/bin/env bash
# The Debian packages the test suite drives for real (no test is skipped without them):
#   chromium      the review page's browser test (Playwright on Debian's chromium; no browser download)
#   redis-server  the jobs queue's networked broker, two workers on one Redis
#   prometheus    promtool: `tunesmith ops rules` output checked and unit-tested by Prometheus itself
# Installs the missing ones with apt-get when it can (root, or sudo without a password); otherwise stops with the
# one command to run.
set -euo pipefail
declare -A BINARY=([chromium]=chromium [redis-server]=redis-server [prometheus]=promtool)
missing=()
for pkg in "${!BINARY[@]}"; do
  command -v "${BINARY[$pkg]}" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
IFS=$'\n' missing=($(sort <<<"${missing[*]}")); unset IFS
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo"
else
  echo "make test needs Debian packages that are missing: run  sudo apt-get install -y --no-install-recommends ${missing[*]}  then make test again" >&2
  exit 1
fi
echo "installing Debian packages the tests need: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for pkg in "${missing[@]}"; do
  command -v "${BINARY[$pkg]}" >/dev/null 2>&1 || { echo "apt-get installed $pkg but ${BINARY[$pkg]} is not on PATH" >&2; exit 1; }
done
