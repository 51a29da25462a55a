#!/usr/bin/env bash
# The viewer's browser tests need Debian's Chromium (/usr/bin/chromium); Playwright (setup.py's dev extra) drives it.
# Installs it with apt-get when it is missing and this user can (root, or passwordless sudo); otherwise says how and
# goes on (the browser tests then skip with that reason, except in CI, where they fail).
set -uo pipefail
if [ -n "${TTSCALE_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "browser: no apt-get here; install Chromium yourself and set TTSCALE_CHROMIUM=/path/to/chromium for the viewer tests" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "browser: Chromium is missing and installing it needs root: sudo apt-get install -y chromium" >&2; exit 0; fi
fi
t0=$(date +%s)
echo "browser: installing Debian's chromium for the viewer tests (apt-get, about a minute)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q --no-install-recommends chromium >/tmp/ttscale-browser-apt.log 2>&1; then
  $SUDO apt-get update -q >>/tmp/ttscale-browser-apt.log 2>&1
  $SUDO apt-get install -y -q --no-install-recommends chromium >>/tmp/ttscale-browser-apt.log 2>&1 \
    || { echo "browser: apt-get install chromium failed (log: /tmp/ttscale-browser-apt.log)" >&2; exit 0; }
fi
echo "browser: $(chromium --version 2>/dev/null) installed in $(( $(date +%s) - t0 )) s" >&2
