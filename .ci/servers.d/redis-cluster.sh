# A 3-master Redis Cluster on loopback (clients on 127.0.0.1:27001-27003, the cluster bus on
# port + 10, 27011-27013: the default, port + 10000, does not exist), no replicas, no
# persistence, for tierkit-shard's `redis` integration tests and `sharded_users --redis`, which
# starts masters of its own on the next two ports, 27004-27005 (buses 27014-27015): they must be
# free too, and whatever listens there at exit is the example's and is stopped.
# Each node's cluster config (nodes.conf) is on tmpfs when /dev/shm is writable: a node rewrites
# and fsyncs it on every slot it gains or loses, and a rebalance moves thousands of slots (the
# example's rebalances took half the time on the 2-core VM).
# Exports TIERKIT_REDIS_CLUSTER="127.0.0.1:27001,127.0.0.1:27002,127.0.0.1:27003".
start_redis_cluster() {
  tk_install redis-server redis-server redis-tools
  local dir="$TIERKIT_SCRATCH/redis-cluster" conf port ports=(27001 27002 27003) i
  mkdir -p "$dir"
  tk_require_free_port "${ports[@]}" 27011 27012 27013 27004 27005 27014 27015
  conf="$dir"
  if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    conf="$(mktemp -d /dev/shm/tierkit-redis-cluster.XXXXXX)"
    tk_on_exit "rm -rf '$conf'"
  fi
  for port in 27004 27005; do tk_on_exit "redis-cli -h 127.0.0.1 -p $port shutdown nosave"; done
  for port in "${ports[@]}"; do
    redis-server --cluster-enabled yes --cluster-config-file "$conf/nodes-$port.conf" \
      --cluster-port $((port + 10)) --dir "$dir" --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
      --daemonize yes --pidfile "$dir/redis-$port.pid" --logfile "$dir/redis-$port.log"
    tk_on_exit "redis-cli -h 127.0.0.1 -p $port shutdown nosave"
  done
  for port in "${ports[@]}"; do tk_wait_port "$port"; done
  redis-cli --cluster create 127.0.0.1:27001 127.0.0.1:27002 127.0.0.1:27003 \
    --cluster-replicas 0 --cluster-yes >"$dir/create.log" 2>&1 || {
    cat "$dir/create.log" >&2
    return 1
  }
  # Every node must agree the cluster is up before tests start.
  for ((i = 0; i < 300; i++)); do
    local ok=0
    for port in "${ports[@]}"; do
      if redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; then
        ok=$((ok + 1))
      fi
    done
    if [ "$ok" -eq "${#ports[@]}" ]; then break; fi
    sleep 0.1
  done
  if [ "$ok" -ne "${#ports[@]}" ]; then
    echo "servers: redis cluster did not reach cluster_state:ok" >&2
    return 1
  fi
  export TIERKIT_REDIS_CLUSTER="127.0.0.1:27001,127.0.0.1:27002,127.0.0.1:27003"
  echo "servers: redis cluster up on $TIERKIT_REDIS_CLUSTER"
}
