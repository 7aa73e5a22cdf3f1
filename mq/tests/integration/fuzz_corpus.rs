//! The fuzz target's body over a small corpus and seeded random inputs (CI has no cargo-fuzz).

use tierkit_mq::{Message, Queue, SimDir, StorageDir, fuzz_decode_and_recover};

fn valid_segment() -> Vec<u8> {
    let dir = SimDir::new();
    let q = Queue::builder().build_with(dir.handle()).unwrap();
    let p = q.producer("t").unwrap();
    for i in 0..5u8 {
        p.send(
            Message::new(vec![i; 20])
                .with_key("k")
                .with_header("h", "v"),
        )
        .unwrap();
    }
    let f = dir.open("t.00000000000000000000.seg", false).unwrap();
    let mut buf = vec![0u8; f.len().unwrap() as usize];
    f.read_exact_at(&mut buf, 0).unwrap();
    buf
}

#[test]
fn fuzz_body_survives_corpus_and_random_inputs() {
    let seg = valid_segment();
    let mut corpus: Vec<Vec<u8>> = vec![
        vec![],
        vec![0; 64],
        vec![0xFF; 64],
        seg.clone(),
        seg[16..].to_vec(),
        // A length field claiming 4 GiB.
        [&[0xFF, 0xFF, 0xFF, 0xFF][..], &[0; 40]].concat(),
    ];
    let mut x = 0x1234_5678_u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..400 {
        let mut m = seg.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % m.len() as u64) as usize;
            m[i] = next() as u8;
        }
        m.truncate((next() % (m.len() as u64 + 1)) as usize);
        corpus.push(m);
        let len = (next() % 200) as usize;
        corpus.push((0..len).map(|_| next() as u8).collect());
    }
    for input in &corpus {
        fuzz_decode_and_recover(input);
    }
}
