//! The public surface from the outside: typed values, odd keys, `Send + Sync`, no timeouts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tierkit_cache::remote::{
    Bytes, Codec, RemoteError, RemoteTier, TieredCache, Typed, TypedError, Utf8,
};

use super::support::{eventually, shared_nodes};

#[test]
fn shared_types_are_send_and_sync() {
    fn is<T: Send + Sync + 'static>() {}
    is::<RemoteTier>();
    is::<TieredCache>();
    is::<RemoteError>();
    is::<Typed<String, Utf8>>();
}

async fn cache(prefix: &str) -> TieredCache {
    TieredCache::builder(
        RemoteTier::builder()
            .nodes_from_list(&shared_nodes())
            .key_prefix(prefix)
            .op_timeout(Duration::MAX), // no timeout at all is allowed
    )
    .near_ttl(Duration::MAX)
    .remote_ttl(Duration::MAX)
    .connect()
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_values_reload_what_does_not_decode() {
    let c = cache("t-typed:").await;
    c.delete("name").await.unwrap();
    let names = Typed::new(c.clone(), Utf8);
    let loads = Arc::new(AtomicUsize::new(0));
    let counted = |v: &'static str| {
        let loads = Arc::clone(&loads);
        move || async move {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Some(v.to_owned()))
        }
    };
    let v = names.get_or_load("name", counted("alice")).await.unwrap();
    assert_eq!(v.as_deref(), Some("alice"));
    let v = names.get_or_load("name", counted("never")).await.unwrap();
    assert_eq!(v.as_deref(), Some("alice"));
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    // Not UTF-8 in Redis (an older app version, say): the read is served by the loader.
    c.set("name", Bytes::from_static(b"\xff\xfe"))
        .await
        .unwrap();
    let v = names
        .get_or_load("name", counted("reloaded"))
        .await
        .unwrap();
    assert_eq!(v.as_deref(), Some("reloaded"));
    assert_eq!(loads.load(Ordering::SeqCst), 2);
    assert_eq!(c.get("name").await.as_deref(), Some(&b"reloaded"[..]));
    // Loader errors come back typed.
    c.delete("other").await.unwrap();
    let err = names
        .get_or_load("other", || async {
            Err::<Option<String>, _>(std::io::Error::other("db down"))
        })
        .await
        .unwrap_err();
    assert!(matches!(err.error(), Some(TypedError::Load(e)) if e.to_string() == "db down"));
    // Typed set goes through the codec.
    names.set("other", &"bob".to_owned()).await.unwrap();
    assert_eq!(Utf8.decode(&c.get("other").await.unwrap()).unwrap(), "bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_keys_and_values_round_trip() {
    let c = cache("t-odd:").await;
    let big = Bytes::from(vec![7u8; 1 << 20]);
    for key in [
        &b""[..],
        b"\x00\xff binary \r\n",
        "ключ".as_bytes(),
        &[b'k'; 4096][..],
    ] {
        c.delete(key).await.unwrap();
        let loaded = big.clone();
        let v = c
            .get_or_load(key, async move { Ok::<_, std::io::Error>(Some(loaded)) })
            .await
            .unwrap();
        assert_eq!(v.as_ref(), Some(&big));
        assert_eq!(c.remote().get(key).await.unwrap().as_ref(), Some(&big));
        c.set(key, Bytes::new()).await.unwrap();
        assert_eq!(
            c.get(key).await,
            Some(Bytes::new()),
            "empty values are values"
        );
    }
    // A loader that finds nothing caches nothing.
    c.delete("absent").await.unwrap();
    let none = async { Ok::<Option<Bytes>, std::io::Error>(None) };
    assert_eq!(c.get_or_load("absent", none).await.unwrap(), None);
    assert!(!c.near().contains(&b"absent"[..]));
    assert_eq!(c.remote().get("absent").await.unwrap(), None);
    let s = c.stats();
    assert!(s.reads() >= s.near_hits);
    eventually("stats settle", Duration::from_secs(1), || {
        c.stats().loads >= 4
    })
    .await;
}
