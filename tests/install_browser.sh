#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver (Debian's chromium and chromium-driver) for
# tests/test_serve_browser.py, only if they are missing. Where they cannot be installed (no
# apt-get, not root and no password-less sudo) it says so and exits 0: the browser test then
# skips with that reason, except on CI, where it fails.
set -euo pipefail

if command -v chromedriver >/dev/null 2>&1 \
    && { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser.sh: no apt-get here; install Chromium and chromedriver yourself" >&2
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "install_browser.sh: not root; run: sudo apt-get install chromium chromium-driver" >&2
    exit 0
fi
echo "install_browser.sh: installing chromium and chromium-driver" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null
