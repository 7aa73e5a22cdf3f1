# Sourced, not run. Starts the real engines the tests use, each on loopback ports in one scratch
# directory, and stops them all when the sourcing shell exits.
#
#   source .ci/servers.sh && tk_start_servers     # then run tests; the EXIT trap stops them
#
# Each engine is one file in .ci/servers.d/ (postgres.sh, redis.sh, ...). A file defines a
# function `start_<name>` that installs what it needs with `tk_install`, starts its processes,
# registers their shutdown with `tk_on_exit`, and exports the variables its tests read
# (e.g. TIERKIT_PG_PRIMARY). Tests that find their variable unset fail and name this script.
# Set TIERKIT_SERVERS="postgres redis" to start only some of them.

TIERKIT_SCRATCH="${TIERKIT_SCRATCH:-$(mktemp -d /tmp/tierkit-servers.XXXXXX)}"
export TIERKIT_SCRATCH
chmod 755 "$TIERKIT_SCRATCH"
_tk_cleanups=()

# Register a shell command to run at exit (run in reverse order of registration).
tk_on_exit() { _tk_cleanups+=("$1"); }

_tk_stop_all() {
  local i
  for ((i = ${#_tk_cleanups[@]} - 1; i >= 0; i--)); do
    eval "${_tk_cleanups[i]}" >/dev/null 2>&1 || true
  done
  rm -rf "$TIERKIT_SCRATCH"
}
trap _tk_stop_all EXIT
trap 'exit 130' INT TERM

_tk_apt_updated=""
# tk_install COMMAND PACKAGE...: install Debian packages unless COMMAND is already on PATH.
tk_install() {
  local cmd="$1"; shift
  if command -v "$cmd" >/dev/null 2>&1; then return 0; fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  if [ -z "$_tk_apt_updated" ]; then $sudo apt-get update -qq; _tk_apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# tk_wait_port PORT [SECONDS]: wait until 127.0.0.1:PORT accepts a TCP connection.
tk_wait_port() {
  local port="$1" limit="${2:-30}" i
  for ((i = 0; i < limit * 10; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "servers: nothing listens on 127.0.0.1:$port after ${limit}s" >&2
  return 1
}

# tk_require_free_port PORT...: fail (naming the port) when something already listens there:
# starting next to it would "succeed", and the exit handler would then stop the other server.
tk_require_free_port() {
  local port
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "servers: 127.0.0.1:$port is already in use; stop what listens there first" >&2
      return 1
    fi
  done
}

# Start every engine in .ci/servers.d (or those named in TIERKIT_SERVERS).
tk_start_servers() {
  local dir f name
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/servers.d"
  for f in "$dir"/*.sh; do
    [ -e "$f" ] || continue
    name="$(basename "$f" .sh)"
    if [ -n "${TIERKIT_SERVERS:-}" ] && [[ " $TIERKIT_SERVERS " != *" $name "* ]]; then continue; fi
    # shellcheck source=/dev/null
    source "$f"
    echo "servers: starting $name"
    "start_${name//-/_}"
  done
}
