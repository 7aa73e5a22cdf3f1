//! Fuzz the record decoder and log recovery: `cargo +nightly fuzz run record_decoder`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tierkit_mq::fuzz_decode_and_recover(data);
});
