#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests, on loopback only.
#   scripts/postgres-test.sh start DIR   creates and starts a cluster in DIR, prints its URL
#                                        (DIR: e.g. `mktemp -d`; as root, postgres must reach it)
#   scripts/postgres-test.sh stop DIR    stops it (DIR can then be deleted)
# Uses Debian's PostgreSQL (scripts/system-deps.sh installs it); PG_BIN overrides the bindir.
# PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user.
set -euo pipefail
action=${1:?usage: $0 start|stop DIR}
dir=${2:?usage: $0 start|stop DIR}

bindir=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
[ -x "$bindir/initdb" ] || { echo "PostgreSQL server binaries not found; run scripts/system-deps.sh" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case $action in
start)
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  as_owner test -w "$dir" || { echo "$dir must be reachable by the cluster's owner (e.g. use mktemp -d)" >&2; exit 1; }
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale >"$dir/initdb.log"
  # No Unix socket outside DIR, TCP on 127.0.0.1 only, durability off: it is thrown away.
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null
  echo "postgresql://postgres@127.0.0.1:$port/postgres"
  ;;
stop)
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  ;;
*)
  echo "usage: $0 start|stop DIR" >&2; exit 2
  ;;
esac
