//! Parsers for Redis Cluster's redirect errors: `-MOVED`, `-ASK`, `-TRYAGAIN`, `-CROSSSLOT`.

use crate::slots::SLOTS;
use crate::{Error, Result};

/// A Redis Cluster redirect or refusal, read from an error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterRedirect<'a> {
    /// `MOVED <slot> <host:port>`: the slot belongs to that node now; update the map.
    Moved {
        /// The slot.
        slot: u16,
        /// The node's endpoint, `host:port` (the host may be empty: same host as asked).
        addr: &'a str,
    },
    /// `ASK <slot> <host:port>`: send this one request to that node, preceded by `ASKING`;
    /// do not update the map.
    Ask {
        /// The slot.
        slot: u16,
        /// The node's endpoint.
        addr: &'a str,
    },
    /// `TRYAGAIN ...`: a multi-key request touches a slot being migrated; retry shortly.
    TryAgain,
    /// `CROSSSLOT ...`: the keys of a multi-key request are in different slots.
    CrossSlot,
}

/// Reads a Redis error reply (with or without the leading `-` and trailing `\r\n`). Returns
/// `Ok(None)` for errors that are not cluster redirects (`ERR ...`, `WRONGTYPE ...`).
///
/// # Errors
/// [`Error::Protocol`] for a `MOVED`/`ASK` line without a valid slot (below 16,384) and
/// endpoint.
///
/// # Examples
///
/// ```
/// use tierkit_shard::{ClusterRedirect, parse_redirect};
///
/// # fn main() -> Result<(), tierkit_shard::Error> {
/// assert_eq!(
///     parse_redirect("-MOVED 3999 127.0.0.1:6381\r\n")?,
///     Some(ClusterRedirect::Moved { slot: 3999, addr: "127.0.0.1:6381" })
/// );
/// assert_eq!(parse_redirect("ASK 3999 10.0.0.2:7000")?,
///     Some(ClusterRedirect::Ask { slot: 3999, addr: "10.0.0.2:7000" }));
/// assert_eq!(parse_redirect("TRYAGAIN Multiple keys request during rehashing of slot")?,
///     Some(ClusterRedirect::TryAgain));
/// assert_eq!(parse_redirect("ERR unknown command")?, None);
/// assert!(parse_redirect("MOVED 99999 host:1").is_err());
/// # Ok(())
/// # }
/// ```
pub fn parse_redirect(line: &str) -> Result<Option<ClusterRedirect<'_>>> {
    let line = line.trim_end_matches(['\r', '\n']);
    let line = line.strip_prefix('-').unwrap_or(line);
    let (code, detail) = line.split_once(' ').unwrap_or((line, ""));
    parse_redirect_parts(code, detail)
}

/// [`parse_redirect`] for a reply already split into its code (`MOVED`) and the rest
/// (`3999 127.0.0.1:6381`), as client libraries report errors.
///
/// # Errors
/// As [`parse_redirect`].
pub fn parse_redirect_parts<'a>(
    code: &str,
    detail: &'a str,
) -> Result<Option<ClusterRedirect<'a>>> {
    match code {
        "MOVED" | "ASK" => {
            let bad = || Error::Protocol(format!("{code} {detail}"));
            let mut parts = detail.split_ascii_whitespace();
            let slot: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            let addr = parts.next().ok_or_else(bad)?;
            if usize::from(slot) >= SLOTS || !addr.contains(':') {
                return Err(bad());
            }
            Ok(Some(if code == "MOVED" {
                ClusterRedirect::Moved { slot, addr }
            } else {
                ClusterRedirect::Ask { slot, addr }
            }))
        }
        "TRYAGAIN" => Ok(Some(ClusterRedirect::TryAgain)),
        "CROSSSLOT" => Ok(Some(ClusterRedirect::CrossSlot)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_or_none_never_a_panic() {
        for line in [
            "",
            "-",
            "MOVED",
            "MOVED x y",
            "MOVED 1",
            "MOVED 16384 h:1",
            "ASK -1 h:1",
            "MOVED 1 nocolon",
            "\u{0}\u{ff}",
            "MOVED 65536 a:1",
        ] {
            if let Ok(Some(r)) = parse_redirect(line) {
                panic!("{line:?} parsed as {r:?}");
            }
        }
        assert_eq!(
            parse_redirect("MOVED 16383 :7000").ok().flatten(),
            Some(ClusterRedirect::Moved {
                slot: 16383,
                addr: ":7000"
            })
        );
        assert_eq!(
            parse_redirect("CROSSSLOT Keys in request don't hash to the same slot")
                .ok()
                .flatten(),
            Some(ClusterRedirect::CrossSlot)
        );
    }
}
