#!/bin/sh
# PostgreSQL for the shared-storage test of `deepslim auto` (tests/auto/test_storage.py): Debian's
# server, installed when we are root and it is missing, a throwaway cluster in /tmp started on port
# 55432 (trust auth, loopback only). Prints the URL the test reads from DEEPSLIM_TEST_POSTGRES;
# prints nothing (and says why on stderr) when it cannot, and the test is then skipped.
PORT=${DEEPSLIM_PG_PORT:-55432}
DIR=${DEEPSLIM_PG_DIR:-/tmp/deepslim-postgres}
URL="postgresql://postgres@127.0.0.1:$PORT/postgres"
bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
if [ -z "$(bindir)" ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's postgresql (shared study storage test) ..." >&2
    apt-get update -q >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1
fi
BIN=$(bindir)
if [ -z "$BIN" ]; then
    echo "note: PostgreSQL is not installed; the shared-storage test will be skipped (apt-get install postgresql)" >&2
    exit 0
fi
# initdb and postgres refuse to run as root: run them as the package's postgres user
if [ "$(id -u)" = "0" ]; then AS="runuser -u postgres --"; else AS=""; fi
if [ -f "$DIR/postmaster.pid" ] && $AS "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
    echo "$URL"; exit 0
fi
if [ ! -f "$DIR/PG_VERSION" ]; then
    rm -rf "$DIR"; mkdir -p "$DIR"
    [ "$(id -u)" = "0" ] && chown postgres "$DIR"
    $AS "$BIN/initdb" -D "$DIR" -U postgres --auth=trust >/dev/null 2>&1 || {
        echo "note: initdb failed; the shared-storage test will be skipped" >&2; exit 0; }
fi
if $AS "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w -o "-p $PORT -k /tmp -c listen_addresses=127.0.0.1" start >/dev/null 2>&1; then
    echo "$URL"
else
    echo "note: PostgreSQL did not start (see $DIR/server.log); the shared-storage test will be skipped" >&2
fi
exit 0
