//! [`Classify`]: which responses count as failures.

use std::fmt;

/// Decides whether a response that the inner service returned as `Ok` is a failure for the
/// balancer (outlier detection, latency penalty) and for [`Retries`](super::Retries). Errors of
/// the inner service and timeouts are always failures.
///
/// Implemented by [`ErrorsOnly`] (the default), [`ServerErrors`] (HTTP 5xx) and any
/// `Fn(&Response) -> bool + Clone`.
pub trait Classify<Res> {
    /// `true` if `response` should count as a failure.
    fn is_failure(&self, response: &Res) -> bool;
}

/// Every `Ok` response is a success: only errors and timeouts are failures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorsOnly;

impl<Res> Classify<Res> for ErrorsOnly {
    #[inline]
    fn is_failure(&self, _: &Res) -> bool {
        false
    }
}

/// HTTP responses with a 5xx status are failures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerErrors;

impl<T> Classify<http::Response<T>> for ServerErrors {
    #[inline]
    fn is_failure(&self, response: &http::Response<T>) -> bool {
        response.status().is_server_error()
    }
}

impl<Res, F: Fn(&Res) -> bool> Classify<Res> for F {
    #[inline]
    fn is_failure(&self, response: &Res) -> bool {
        self(response)
    }
}

/// Prints a classifier that may be a closure.
pub(crate) struct Opaque;

impl fmt::Debug for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("..")
    }
}
