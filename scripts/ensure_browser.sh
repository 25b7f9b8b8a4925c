#!/bin/sh
# Headless Chromium renders the compression report in one test (tests/pipeline/test_report.py).
# Install Debian's package when we are root; otherwise say that the test will be skipped.
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium (headless report check) ..."
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null && exit 0
fi
echo "note: chromium is not installed; the headless report test will be skipped" >&2
echo "      (sudo apt-get install -y chromium to run it)" >&2
exit 0
