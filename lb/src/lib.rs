//! # tierkit-lb: the load-balancing policy engine
//!
//! **Status: skeleton.** This crate has no public API yet; it is delivered by its own issue
//! ("tierkit-lb: the load-balancing policy engine") and will follow the pattern of `tierkit-consistent-hash`: one shared trait, sibling
//! implementations, one error enum, a README with a benchmark table.
//!
//! See the workspace's `ARCHITECTURE.md` for where this crate sits in the dependency graph.

#![deny(missing_docs)]
