# PostgreSQL 15: a primary on 127.0.0.1:25432 and one streaming replica on 127.0.0.1:25433,
# data under $TIERKIT_SCRATCH/pg, for tierkit-replication's `postgres` tests.
#
# Exports
#   TIERKIT_PG_PRIMARY, TIERKIT_PG_REPLICA  connection strings (trust auth, user postgres)
#   TIERKIT_PG_BIN                          the server's bin directory (initdb, pg_ctl, ...)
#   TIERKIT_PG_PRIMARY_DATA                 the primary's data directory
# The failover test builds its own primary + replica on 25434/25435 from TIERKIT_PG_BIN, so it
# never destroys this shared pair. initdb refuses to run as root: as root, every server command
# runs as the `postgres` system user (`runuser`), which owns the scratch subdirectory.

_tk_pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ]; then echo "$d"; fi
  done | sort -V | tail -1
}

# Runs a server command as the postgres user when we are root.
_tk_pg_as() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  local bin
  bin="$(_tk_pg_bin)"
  if [ -z "$bin" ]; then
    # Debian's `postgresql` brings the server binaries under /usr/lib/postgresql/<v>/bin.
    tk_install /usr/lib/postgresql/15/bin/initdb postgresql
    bin="$(_tk_pg_bin)"
  fi
  if [ -z "$bin" ]; then
    echo "servers: postgres: no initdb under /usr/lib/postgresql/*/bin after installing" >&2
    return 1
  fi
  tk_require_free_port 25432 25433
  local root="$TIERKIT_SCRATCH/pg"
  mkdir -p "$root"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$root"; fi
  chmod 755 "$root"
  local primary="$root/primary" replica="$root/replica" log="$root/log"
  _tk_pg_as mkdir -p "$log"

  _tk_pg_as "$bin/initdb" -D "$primary" -U postgres --auth=trust --no-sync -E UTF8 \
    >"$root/initdb.out" 2>&1 || { cat "$root/initdb.out" >&2; return 1; }
  _tk_pg_as tee -a "$primary/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = 25432
unix_socket_directories = '$root'
wal_level = replica
max_wal_senders = 10
hot_standby = on
fsync = on
EOF
  _tk_pg_as tee "$primary/pg_hba.conf" >/dev/null <<EOF
local all all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
EOF
  tk_on_exit "_tk_pg_as '$bin/pg_ctl' -D '$primary' -m immediate stop"
  _tk_pg_as "$bin/pg_ctl" -D "$primary" -l "$log/primary.log" -w start >/dev/null \
    || { cat "$log/primary.log" >&2; return 1; }

  _tk_pg_as "$bin/pg_basebackup" -h 127.0.0.1 -p 25432 -U postgres -D "$replica" -R \
    -X stream --no-sync >/dev/null 2>&1 || { echo "servers: pg_basebackup failed" >&2; return 1; }
  _tk_pg_as tee -a "$replica/postgresql.conf" >/dev/null <<EOF
port = 25433
EOF
  tk_on_exit "_tk_pg_as '$bin/pg_ctl' -D '$replica' -m immediate stop"
  _tk_pg_as "$bin/pg_ctl" -D "$replica" -l "$log/replica.log" -w start >/dev/null \
    || { cat "$log/replica.log" >&2; return 1; }
  tk_wait_port 25432
  tk_wait_port 25433

  export TIERKIT_PG_PRIMARY="host=127.0.0.1 port=25432 user=postgres dbname=postgres"
  export TIERKIT_PG_REPLICA="host=127.0.0.1 port=25433 user=postgres dbname=postgres"
  export TIERKIT_PG_BIN="$bin"
  export TIERKIT_PG_PRIMARY_DATA="$primary"
  echo "servers: postgres $("$bin/postgres" --version | awk '{print $3}'): primary 25432, replica 25433 ($root)"
}
