# The cache's remote tier (tierkit-cache, feature `redis`): three standalone redis-server
# processes on 127.0.0.1:56379-56381, no persistence. Tests that kill, pause or restart a node
# start their own extra servers on 56382-56389 and leave these three alone.
start_redis() {
  tk_install redis-server redis-server redis-tools
  local port dir
  for port in 56379 56380 56381; do
    dir="$TIERKIT_SCRATCH/redis-$port"
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --daemonize yes --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log"
    tk_on_exit "redis-cli -p $port shutdown nosave"
  done
  for port in 56379 56380 56381; do tk_wait_port "$port"; done
  export TIERKIT_REDIS_NODES="127.0.0.1:56379,127.0.0.1:56380,127.0.0.1:56381"
}
