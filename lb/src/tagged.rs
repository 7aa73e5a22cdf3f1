//! [`Tagged`] values, which let the per-thread snapshot cache read its entries back typed
//! without `Any`'s virtual call (one `unsafe` pointer cast, justified below).

#![allow(unsafe_code)]

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::sync::Arc;

/// A type-erased `Arc` marked with the [`TypeTag`] that made it. The per-thread snapshot cache
/// keeps the snapshots of balancers of any type in one array; reading one back through
/// `Any::downcast_ref` costs a virtual `type_id` call whose 16-byte result goes through memory
/// (a store-forwarding stall: ~0.8 ns of a ~15 ns pick). A tag check is one compare.
pub(crate) struct Tagged {
    tag: u64,
    /// Taken out only by `Drop`, which hands it to [`Cached::release`].
    value: ManuallyDrop<Arc<dyn Cached>>,
}

impl Drop for Tagged {
    fn drop(&mut self) {
        // SAFETY: `value` is initialised from construction until here and never used again:
        // this is the only `take`, in the destructor.
        let value = unsafe { ManuallyDrop::take(&mut self.value) };
        value.release();
    }
}

/// What a per-thread cache entry can ask of its value without knowing its type.
pub(crate) trait Cached: Any + Send + Sync {
    /// Whether the value is still current (a snapshot: still its balancer's latest).
    fn is_current(&self) -> bool;
    /// Drops this reference (a snapshot: and, when only its balancer's retired list still
    /// holds it, asks the balancer to free it off this thread). Default: just the drop.
    fn release(self: Arc<Self>) {}
}

impl Tagged {
    /// The id of the tag that made it.
    #[inline]
    pub(crate) fn tag(&self) -> u64 {
        self.tag
    }

    /// Whether the value is still current (a virtual call; off the pick path).
    pub(crate) fn is_current(&self) -> bool {
        self.value.is_current()
    }
}

/// A process-unique id for values of one type `T` (a balancer makes one for its snapshot type
/// and identifies its entries in the per-thread caches by it).
pub(crate) struct TypeTag<T> {
    id: u64,
    _type: PhantomData<fn() -> T>,
}

/// Tag ids: never reused (2^64 tags would take millennia), never 0.
static NEXT_TAG: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl<T> TypeTag<T> {
    /// A tag with a fresh id.
    pub(crate) fn new() -> Self {
        Self {
            id: NEXT_TAG.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            _type: PhantomData,
        }
    }

    /// This tag's id.
    #[inline]
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

impl<T: Cached> TypeTag<T> {
    /// Erases `value`'s type, marking it with this tag.
    pub(crate) fn wrap(&self, value: Arc<T>) -> Tagged {
        Tagged {
            tag: self.id,
            value: ManuallyDrop::new(value),
        }
    }

    /// The value of `tagged` if this tag made it.
    #[inline]
    pub(crate) fn get<'a>(&self, tagged: &'a Tagged) -> Option<&'a T> {
        if tagged.tag != self.id {
            return None;
        }
        debug_assert!((&**tagged.value as &dyn Any).is::<T>());
        // SAFETY: only `wrap` makes a `Tagged`, and only from an `Arc<T>` and the id of a
        // `TypeTag<T>`; ids are unique across all tags (one counter that never repeats), so a
        // `Tagged` carrying this id holds a `T`. The borrow is tied to `tagged`, which keeps the
        // `Arc` (and so the `T`) alive.
        Some(unsafe { &*Arc::as_ptr(&*tagged.value).cast::<T>() })
    }
}

impl<T> fmt::Debug for TypeTag<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TypeTag").field(&self.id).finish()
    }
}

#[cfg(all(test, not(tierkit_loom)))]
mod tests {
    use super::*;

    impl Cached for String {
        fn is_current(&self) -> bool {
            true
        }
    }
    impl Cached for u64 {
        fn is_current(&self) -> bool {
            *self != 0
        }
    }

    #[test]
    fn tags_read_back_only_their_own_values() {
        let (a, b) = (TypeTag::<String>::new(), TypeTag::<u64>::new());
        let other_string = TypeTag::<String>::new();
        let ta = a.wrap(Arc::new("snapshot".to_owned()));
        let tb = b.wrap(Arc::new(7u64));
        assert_eq!(a.get(&ta).map(String::as_str), Some("snapshot"));
        assert_eq!(b.get(&tb), Some(&7));
        assert!(a.get(&tb).is_none());
        assert!(other_string.get(&ta).is_none());
        assert_ne!(a.id(), other_string.id());
        assert_eq!(ta.tag(), a.id());
        assert!(tb.is_current());
    }
}
