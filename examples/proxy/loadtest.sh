#!/usr/bin/env bash
# The tierkit proxy (examples/proxy), HAProxy and nginx side by side under wrk, on loopback.
#
#   examples/proxy/loadtest.sh            # full run: 20 s per front end and scenario (~5 min)
#   examples/proxy/loadtest.sh --smoke    # 3 s each (~1 min): CI; fails if the tierkit proxy
#                                         # answers any error in scenario 1
#   examples/proxy/loadtest.sh --out FILE # also write the Markdown table to FILE
#
# Topology: four backends (the proxy example in --backend mode, 1 ms per answer) on ports
# 28001-28004; one front end at a time: tierkit (28010, least latency, 2 retries; also with
# --retries 0 in scenario 3), HAProxy (28011, `balance leastconn`, `option httpchk`), nginx
# (28012, `least_conn`; open-source nginx has passive checks only). wrk: 2 threads, 64
# connections, keep-alive. Each front end gets 2 worker threads/processes.
#
# Scenarios: (1) four equal backends; (2) backend 4 answers 20 ms slower; (3) backend 2 is
# killed (SIGKILL) at 30% of the run and restarted at 60%.
#
# Everything listens on 127.0.0.1 only, wrk runs are bounded by `timeout`, and every process
# started here is stopped on exit (trap). HAProxy, nginx and wrk are installed with apt-get if
# missing; nginx and HAProxy get their config, pid and log files in a scratch directory.
set -euo pipefail
cd "$(dirname "$0")/../.."

SMOKE=0
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --out) OUT="$2"; shift ;;
    *) echo "usage: $0 [--smoke] [--out FILE]" >&2; exit 2 ;;
  esac
  shift
done

DUR=20
if [ "$SMOKE" = 1 ]; then DUR=3; fi
CONNS=64
WRK_THREADS=2
BASE_DELAY=1   # ms per answer
SLOW_EXTRA=20  # ms, scenario 2
BACKEND_PORTS=(28001 28002 28003 28004)
PORT_TIERKIT=28010
PORT_HAPROXY=28011
PORT_NGINX=28012
VICTIM=1       # index into BACKEND_PORTS: 28002

# --- install what is missing --------------------------------------------------------------
apt_updated=""
need() {
  local cmd="$1"; shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ -z "$apt_updated" ]; then $sudo apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
need wrk wrk
need haproxy haproxy
need nginx nginx
PATH="$PATH:/usr/sbin:/sbin"

cargo build --release --example proxy
PROXY="$PWD/target/release/examples/proxy"

# --- processes and cleanup ----------------------------------------------------------------
SCRATCH="$(mktemp -d /tmp/tierkit-loadtest.XXXXXX)"
declare -A BACKEND_PID=()
FRONT_PID=""

stop_pid() {
  local pid="$1"
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$FRONT_PID"
  for i in "${!BACKEND_PID[@]}"; do stop_pid "${BACKEND_PID[$i]}"; done
  rm -rf "$SCRATCH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {
  local port="$1"
  for _ in $(seq 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "loadtest: nothing listens on 127.0.0.1:$port" >&2
  return 1
}

port_free() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    echo "loadtest: port $1 is already in use (ports 28001-28012 must be free)" >&2
    exit 1
  fi
}
for p in "${BACKEND_PORTS[@]}" $PORT_TIERKIT $PORT_HAPROXY $PORT_NGINX; do port_free "$p"; done

start_backend() {  # index delay_ms
  local i="$1" delay="$2" port="${BACKEND_PORTS[$1]}"
  "$PROXY" --backend "$port" --delay "$delay" 2>>"$SCRATCH/backend-$port.log" &
  BACKEND_PID[$i]=$!
  wait_port "$port"
}
stop_backend() { stop_pid "${BACKEND_PID[$1]:-}"; BACKEND_PID[$1]=""; }
kill_backend() { kill -9 "${BACKEND_PID[$1]}" 2>/dev/null || true; wait "${BACKEND_PID[$1]}" 2>/dev/null || true; BACKEND_PID[$1]=""; }

start_backends() {  # delay of backend 4
  local i
  for i in 0 1 2 3; do stop_backend "$i"; done
  for i in 0 1 2; do start_backend "$i" "$BASE_DELAY"; done
  start_backend 3 "$1"
}

BACKEND_LIST="$(printf '127.0.0.1:%s,' "${BACKEND_PORTS[@]}")"
BACKEND_LIST="${BACKEND_LIST%,}"

write_haproxy() {
  {
    cat <<CFG
global
    maxconn 4096
    nbthread 2
defaults
    mode http
    timeout connect 500ms
    timeout client 30s
    timeout server 2s
    retries 2
    option redispatch 1
    retry-on conn-failure empty-response response-timeout 500 502 503 504
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:$PORT_HAPROXY
    default_backend be
backend be
    balance leastconn
    option httpchk GET /healthz
    default-server check inter 500 fall 2 rise 2
CFG
    local n=1 p
    for p in "${BACKEND_PORTS[@]}"; do echo "    server b$n 127.0.0.1:$p"; n=$((n + 1)); done
  } >"$SCRATCH/haproxy.cfg"
}

write_nginx() {
  mkdir -p "$SCRATCH/nginx"
  {
    cat <<CFG
worker_processes 2;
pid $SCRATCH/nginx/nginx.pid;
error_log $SCRATCH/nginx/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $SCRATCH/nginx/body;
    proxy_temp_path $SCRATCH/nginx/proxy;
    fastcgi_temp_path $SCRATCH/nginx/fastcgi;
    uwsgi_temp_path $SCRATCH/nginx/uwsgi;
    scgi_temp_path $SCRATCH/nginx/scgi;
    upstream backends {
        least_conn;
CFG
    local p
    for p in "${BACKEND_PORTS[@]}"; do echo "        server 127.0.0.1:$p max_fails=1 fail_timeout=2s;"; done
    cat <<CFG
        keepalive 256;
    }
    server {
        listen 127.0.0.1:$PORT_NGINX;
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 500ms;
            proxy_read_timeout 2s;
            proxy_next_upstream error timeout http_500 http_502 http_503 http_504;
            proxy_next_upstream_tries 3;
        }
    }
}
CFG
  } >"$SCRATCH/nginx/nginx.conf"
}

start_front() {  # name
  case "$1" in
    tierkit)
      "$PROXY" --listen "$PORT_TIERKIT" --backends "$BACKEND_LIST" 2>>"$SCRATCH/tierkit.log" &
      FRONT_PID=$!; FRONT_PORT=$PORT_TIERKIT ;;
    tierkit-no-retry)
      "$PROXY" --listen "$PORT_TIERKIT" --backends "$BACKEND_LIST" --retries 0 2>>"$SCRATCH/tierkit.log" &
      FRONT_PID=$!; FRONT_PORT=$PORT_TIERKIT ;;
    haproxy)
      write_haproxy
      haproxy -db -f "$SCRATCH/haproxy.cfg" >>"$SCRATCH/haproxy.log" 2>&1 &
      FRONT_PID=$!; FRONT_PORT=$PORT_HAPROXY ;;
    nginx)
      write_nginx
      nginx -p "$SCRATCH/nginx" -e "$SCRATCH/nginx/error.log" -c "$SCRATCH/nginx/nginx.conf" \
        -g 'daemon off;' >>"$SCRATCH/nginx.log" 2>&1 &
      FRONT_PID=$!; FRONT_PORT=$PORT_NGINX ;;
  esac
  if ! wait_port "$FRONT_PORT"; then
    echo "loadtest: $1 did not start; its log:" >&2
    cat "$SCRATCH"/*.log "$SCRATCH"/nginx/error.log 2>/dev/null | tail -n 20 >&2
    exit 1
  fi
  # Let health checks see every backend once (HAProxy: first check within 500 ms).
  sleep 1
}
stop_front() { stop_pid "$FRONT_PID"; FRONT_PID=""; }

cat >"$SCRATCH/stats.lua" <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("TKSTATS %d %d %d %d %d %d\n",
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout))
end
LUA

ROWS=()
declare -A RESULT=()
fmt_ms() { awk -v us="$1" 'BEGIN { printf "%.2f ms", us / 1000 }'; }

# run_wrk scenario front: one wrk run against the running front end; scenario 3 kills and
# restarts the victim backend during it.
run_wrk() {
  local scenario="$1" front="$2" log="$SCRATCH/wrk-$1-$2.txt"
  timeout $((DUR + 30)) wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DUR}s" --timeout 5s \
    -s "$SCRATCH/stats.lua" "http://127.0.0.1:$FRONT_PORT/" >"$log" 2>&1 &
  local wrk_pid=$!
  if [ "$scenario" = 3 ]; then
    sleep "$(awk -v d="$DUR" 'BEGIN { print d * 0.3 }')"
    if [ "$front" = tierkit ] || [ "$front" = tierkit-no-retry ]; then
      # The victim's requests in flight just before the kill, as the tierkit proxy counts them.
      RESULT["3/$front/victim_in_flight"]="$(curl -s "127.0.0.1:$PORT_TIERKIT/_tierkit/stats" |
        awk -v v="127.0.0.1:${BACKEND_PORTS[$VICTIM]}" '$1 == v { for (i = 1; i < NF; i++) if ($i == "in_flight") print $(i + 1) }')"
    fi
    kill_backend "$VICTIM"
    sleep "$(awk -v d="$DUR" 'BEGIN { print d * 0.3 }')"
    start_backend "$VICTIM" "$BASE_DELAY"
  fi
  wait "$wrk_pid" || { echo "loadtest: wrk failed:"; cat "$log"; exit 1; }
  local stats non2xx
  stats="$(grep '^TKSTATS' "$log" || true)"
  [ -n "$stats" ] || { echo "loadtest: no stats from wrk:"; cat "$log"; exit 1; }
  non2xx="$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$log")"
  non2xx="${non2xx:-0}"
  # shellcheck disable=SC2086
  set -- $stats
  local p50="$2" p99="$3" p999="$4" reqs="$5" dur_us="$6" sockerr="$7"
  local rps
  rps="$(awk -v r="$reqs" -v d="$dur_us" 'BEGIN { printf "%.0f", r / (d / 1e6) }')"
  RESULT["$scenario/$front/p99"]="$p99"
  RESULT["$scenario/$front/rps"]="$rps"
  RESULT["$scenario/$front/bad"]=$((non2xx + sockerr))
  ROWS+=("| $scenario | $front | $(fmt_ms "$p50") | $(fmt_ms "$p99") | $(fmt_ms "$p999") | $rps | $non2xx | $sockerr |")
  echo "  scenario $scenario, $front: p50 $(fmt_ms "$p50"), p99 $(fmt_ms "$p99"), p99.9 $(fmt_ms "$p999"), $rps req/s, non-2xx $non2xx, socket errors $sockerr"
}

scenario() {  # number slow_delay fronts...
  local n="$1" slow="$2"; shift 2
  echo "scenario $n"
  start_backends "$slow"
  local f
  for f in "$@"; do
    start_front "$f"
    run_wrk "$n" "$f"
    if [ "$f" = tierkit ] || [ "$f" = tierkit-no-retry ]; then
      curl -s "127.0.0.1:$PORT_TIERKIT/_tierkit/stats" >"$SCRATCH/tierkit-stats-$n-$f.txt" 2>/dev/null || true
      sed 's/^/    /' "$SCRATCH/tierkit-stats-$n-$f.txt" 2>/dev/null || true
    fi
    stop_front
  done
}

START=$(date +%s)
scenario 1 "$BASE_DELAY" tierkit haproxy nginx
scenario 2 $((BASE_DELAY + SLOW_EXTRA)) tierkit haproxy nginx
scenario 3 "$BASE_DELAY" tierkit tierkit-no-retry haproxy nginx
ELAPSED=$(($(date +%s) - START))

TABLE="$(
  echo "wrk -t$WRK_THREADS -c$CONNS -d${DUR}s, 4 backends ($BASE_DELAY ms per answer; scenario 2: one +$SLOW_EXTRA ms; scenario 3: one killed at 30% and restarted at 60%), run took ${ELAPSED}s"
  echo
  echo "| scenario | front end | p50 | p99 | p99.9 | req/s | non-2xx | socket errors |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
)"

goal() { if [ "$1" = 1 ]; then echo "met"; else echo "**not met**"; fi; }
g2=$(awk -v t="${RESULT[2/tierkit/p99]}" -v h="${RESULT[2/haproxy/p99]}" -v n="${RESULT[2/nginx/p99]}" 'BEGIN { print (t < h && t < n) ? 1 : 0 }')
g1=$(awk -v t="${RESULT[1/tierkit/rps]}" -v n="${RESULT[1/nginx/rps]}" 'BEGIN { print (t >= 0.8 * n) ? 1 : 0 }')
g3=$([ "${RESULT[3/tierkit/bad]}" = 0 ] && echo 1 || echo 0)
ratio=$(awk -v t="${RESULT[1/tierkit/rps]}" -v n="${RESULT[1/nginx/rps]}" 'BEGIN { printf "%.2f", t / n }')
GOALS="$(
  echo "- scenario 2, tierkit p99 below HAProxy's and nginx's: $(goal "$g2")"
  echo "- scenario 1, tierkit req/s >= 0.8x nginx's: $(goal "$g1") (${ratio}x)"
  echo "- scenario 3, 0 non-2xx and socket errors with retries: $(goal "$g3") (${RESULT[3/tierkit/bad]}); without retries: ${RESULT[3/tierkit-no-retry/bad]} (the killed backend had ${RESULT[3/tierkit-no-retry/victim_in_flight]:-?} requests in flight just before the kill)"
)"

echo
echo "$TABLE"
echo
echo "$GOALS"
if [ -n "$OUT" ]; then printf '%s\n\n%s\n' "$TABLE" "$GOALS" >"$OUT"; fi

if [ "$SMOKE" = 1 ]; then
  if [ "${RESULT[1/tierkit/bad]}" != 0 ] || [ "${RESULT[1/tierkit/rps]}" = 0 ]; then
    echo "loadtest --smoke: FAILED: the tierkit proxy answered ${RESULT[1/tierkit/bad]} errors in scenario 1" >&2
    exit 1
  fi
  echo "loadtest --smoke: the tierkit proxy served scenario 1 with no errors; HAProxy and nginx ran through the same script"
fi
