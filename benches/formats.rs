//! Criterion benches of the small kernels: header scanning and MIME parsing of messages,
//! index encode/decode, cache record encoding. Whole-run numbers (reconstruct against the
//! read-and-hash floor) come from `cargo xtask bench reconstruct`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mstore::codec::index::{self, IndexHeaderInfo, MessageRecord};
use mstore::flags::{DateSource, SystemFlags, UserFlags};

/// A deterministic sample of generated messages (the corpus generator's shapes).
fn messages() -> Vec<Vec<u8>> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (user, group) = mstore::cli::current_user_and_group();
    let cfg = mstore::synth::write_config(tmp.path(), &user, &group, mstore::io::Durability::NoSync).expect("config");
    let st = mstore::store::Store::init(cfg).expect("store");
    let cast = vec![mstore::synth::MailboxPlan {
        domain: "example.com",
        name: "user/bench".into(),
        partition: "default",
        weight: 1,
    }];
    mstore::synth::populate(&st, &cast, 500, 7, 1).expect("populate");
    let mb =
        st.open_mailbox("example.com", &mstore::layout::MailboxName::parse("user/bench").expect("name")).expect("open");
    mb.records().iter().map(|r| mb.read_message(r.uid).expect("read").to_vec()).collect()
}

fn bench_messages(c: &mut Criterion) {
    let msgs = messages();
    let bytes: u64 = msgs.iter().map(|m| m.len() as u64).sum();
    let mut g = c.benchmark_group("message");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("header scan (split + envelope + Date)", |b| {
        b.iter(|| {
            for m in &msgs {
                let s = mstore::message::split(m);
                let e = mstore::message::Envelope::from_header(&m[..s.header_len]);
                black_box(e.date.as_deref().and_then(mstore::message::parse_date));
            }
        })
    });
    g.bench_function("parse_structure", |b| {
        b.iter(|| {
            for m in &msgs {
                black_box(mstore::message::parse_structure(m).map(|s| s.parts.len()).unwrap_or(0));
            }
        })
    });
    g.bench_function("derive (parse + blake3 + cache record)", |b| {
        b.iter(|| {
            for (i, m) in msgs.iter().enumerate() {
                black_box(
                    mstore::store::derive::derive(i as u32 + 1, m, mstore::store::derive::Received::Skip)
                        .cache_record
                        .len(),
                );
            }
        })
    });
    g.bench_function("blake3 only", |b| {
        b.iter(|| {
            for m in &msgs {
                black_box(blake3::hash(m));
            }
        })
    });
    g.finish();
}

fn bench_index(c: &mut Criterion) {
    let n = 100_000u32;
    let recs: Vec<MessageRecord> = (1..=n)
        .map(|uid| MessageRecord {
            uid,
            system_flags: SystemFlags(SystemFlags::SEEN),
            user_flags: UserFlags(u128::from(uid % 7)),
            internal_date: 1_700_000_000 + i64::from(uid),
            date_source: DateSource::Given,
            size: 4000,
            modseq: u64::from(uid),
            ..MessageRecord::default()
        })
        .collect();
    let h = IndexHeaderInfo { unique_id: [1; 16], generation: 1, uid_validity: 1, last_uid: n, ..Default::default() };
    let bytes = index::encode(&h, &recs);
    let mut g = c.benchmark_group("index");
    g.throughput(Throughput::Elements(u64::from(n)));
    g.bench_function("encode 100k records", |b| b.iter(|| black_box(index::encode(&h, &recs).len())));
    g.bench_function("decode 100k records (strict)", |b| {
        b.iter(|| black_box(index::decode(&bytes).map(|x| x.1.len()).unwrap_or(0)))
    });
    g.bench_function("salvage 100k records", |b| b.iter(|| black_box(index::salvage(&bytes).records.len())));
    g.finish();
}

fn bench_cache(c: &mut Criterion) {
    let msgs = messages();
    let entries: Vec<Vec<u8>> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            mstore::store::derive::derive(i as u32 + 1, m, mstore::store::derive::Received::Skip).cache_record
        })
        .collect();
    let mut g = c.benchmark_group("cache");
    g.throughput(Throughput::Elements(entries.len() as u64));
    g.bench_function("decode records", |b| {
        b.iter(|| {
            for e in &entries {
                let _ = black_box(mstore::codec::cache::decode(e, 0, None).map(|x| x.parts.len()));
            }
        })
    });
    g.bench_function("decode + re-encode records", |b| {
        let mut out = Vec::with_capacity(1 << 20);
        b.iter(|| {
            out.clear();
            for e in &entries {
                if let Ok(d) = mstore::codec::cache::decode(e, 0, None) {
                    black_box(mstore::codec::cache::encode(&d, &mut out));
                }
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench_messages, bench_index, bench_cache);
criterion_main!(benches);
