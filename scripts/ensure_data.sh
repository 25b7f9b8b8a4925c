#!/bin/sh
# Make sure the data sets are on disk: install or fetch them when we are root, otherwise explain how.
# - Fashion-MNIST (Debian's dataset-fashion-mnist); DEEPSLIM_FASHION_MNIST for a custom location.
#   Required: missing, the script exits 1.
# - Debian's package descriptions (data set debian-descriptions: APT's English translation lists);
#   DEEPSLIM_DEBIAN_DESCRIPTIONS for a pre-extracted copy. Missing is only a note, since no test needs
#   them (a committed fixture serves the tests).
# Every apt-get update here asks for the English translations: in Docker images
# (Acquire::Languages "none") a plain update deletes the Translation-en lists.
set -e
status=0
DIR="${DEEPSLIM_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}"
if [ -f "$DIR/t10k-labels-idx1-ubyte.gz" ] || [ -f "$DIR/t10k-labels-idx1-ubyte" ]; then
    :
elif [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 && [ -z "${DEEPSLIM_FASHION_MNIST:-}" ]; then
    echo "Fashion-MNIST not found in $DIR; installing Debian's dataset-fashion-mnist ..."
    apt-get update -q -o Acquire::Languages=en >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null
else
    echo "Fashion-MNIST not found in $DIR." >&2
    echo "Install it with: sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist" >&2
    echo "or point DEEPSLIM_FASHION_MNIST (and --data-dir) at a folder holding the four *-ubyte.gz files." >&2
    status=1
fi

LISTS=/var/lib/apt/lists
if [ -n "${DEEPSLIM_DEBIAN_DESCRIPTIONS:-}" ]; then
    if [ ! -e "$DEEPSLIM_DEBIAN_DESCRIPTIONS" ]; then
        echo "note: DEEPSLIM_DEBIAN_DESCRIPTIONS=$DEEPSLIM_DEBIAN_DESCRIPTIONS does not exist" >&2
        echo "(a folder of *Translation-en* files, or a JSONL written by deepslim.data.debian.export_jsonl)." >&2
    fi
elif ls "$LISTS"/*_i18n_Translation-en* >/dev/null 2>&1; then
    :
elif [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Debian package descriptions not found in $LISTS; fetching APT's English translations ..."
    apt-get update -q -o Acquire::Languages=en >/dev/null || echo "note: apt-get update failed" >&2
else
    echo "note: Debian package descriptions (data set debian-descriptions) not found in $LISTS." >&2
    echo "Fetch them with: sudo apt-get update -o Acquire::Languages=en" >&2
    echo "or point DEEPSLIM_DEBIAN_DESCRIPTIONS (or --data-dir) at a pre-extracted copy (see docs/debian-descriptions.md)." >&2
fi
exit $status
