# The cache's remote tier (tierkit-cache, feature `redis`): three standalone redis-server
# processes on 127.0.0.1:26379-26381, no persistence. Tests that kill, pause or restart a node
# start their own extra servers on 26382-26389 and leave these three alone.
start_redis() {
  tk_install redis-server redis-server redis-tools
  local port dir
  tk_require_free_port 26379 26380 26381
  for port in 26379 26380 26381; do
    dir="$TIERKIT_SCRATCH/redis-$port"
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --daemonize yes --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log"
    tk_on_exit "redis-cli -p $port shutdown nosave"
  done
  for port in 26379 26380 26381; do tk_wait_port "$port"; done
  export TIERKIT_REDIS_NODES="127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381"
}
