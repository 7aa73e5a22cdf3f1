//! The remote tier against real redis-server processes (feature `redis`).
//!
//! The three shared servers come from `.ci/servers.d/redis.sh` (`TIERKIT_REDIS_NODES`); tests
//! that kill, pause or restart a node start their own servers on 26382-26389.

mod api;
mod failover;
mod invalidation;
mod placement;
mod support;
mod timeouts;
