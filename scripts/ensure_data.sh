#!/bin/sh
# Make sure Fashion-MNIST is on disk: install Debian's package when we are root,
# otherwise explain how. Honours DEEPSLIM_FASHION_MNIST for a custom location.
set -e
DIR="${DEEPSLIM_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}"
if [ -f "$DIR/t10k-labels-idx1-ubyte.gz" ] || [ -f "$DIR/t10k-labels-idx1-ubyte" ]; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 && [ -z "${DEEPSLIM_FASHION_MNIST:-}" ]; then
    echo "Fashion-MNIST not found in $DIR; installing Debian's dataset-fashion-mnist ..."
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null
    exit 0
fi
echo "Fashion-MNIST not found in $DIR." >&2
echo "Install it with: sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist" >&2
echo "or point DEEPSLIM_FASHION_MNIST (and --data-dir) at a folder holding the four *-ubyte.gz files." >&2
exit 1
