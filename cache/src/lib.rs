//! # tierkit-cache: LRU, LFU, FIFO and S3-FIFO caches with TTL
//!
//! **Status: skeleton.** This crate has no public API yet; it is delivered by its own issue
//! ("tierkit-cache: LRU, LFU and FIFO caches with TTL") and will follow the pattern of `tierkit-consistent-hash`: one shared trait, sibling
//! implementations, one error enum, a README with a benchmark table.
//!
//! See the workspace's `ARCHITECTURE.md` for where this crate sits in the dependency graph.

#![deny(missing_docs)]
