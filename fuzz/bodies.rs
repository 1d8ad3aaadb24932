//! Bodies of the fuzz targets (`fuzz/fuzz_targets/*.rs`), one per parser, and the
//! generator of their seed inputs (`cargo xtask seeds` writes them to `corpus/fuzz/`).
//!
//! Not part of the shipped library: this file is included (`#[path]`) by each fuzz target,
//! by `tests/fuzz_seeds.rs` and by `xtask`, and reaches the parsers through `mstore`'s
//! public API only.
//!
//! Each entry point feeds arbitrary bytes to a parser and checks what must hold for any
//! input: no panic, and where the parser accepts the input, re-encoding what it returned
//! gives back the same bytes. Its inputs in `corpus/fuzz/` also run as a plain test
//! (`tests/fuzz_seeds.rs`), so CI needs no fuzzer.

use std::path::Path;

use mstore::codec::{cache, changelog, dbsnap, header, index, listings, wal};

/// Fuzz targets, by name (the file names under `fuzz/fuzz_targets/`).
pub const TARGETS: &[&str] = &[
    "header",
    "index",
    "cache",
    "changelog",
    "dbsnap",
    "wal",
    "config",
    "message",
    "mbox",
    "listings",
    "maildir",
    "ledger",
    "carve",
    "journal",
    "outcomes",
];

/// Run one target on `data`. Panics (what the fuzzer catches) only on a broken invariant.
pub fn run(target: &str, data: &[u8]) {
    match target {
        "header" => fuzz_header(data),
        "index" => fuzz_index(data),
        "cache" => fuzz_cache(data),
        "changelog" => fuzz_changelog(data),
        "dbsnap" => fuzz_dbsnap(data),
        "wal" => fuzz_wal(data),
        "config" => fuzz_config(data),
        "message" => fuzz_message(data),
        "mbox" => fuzz_mbox(data),
        "listings" => fuzz_listings(data),
        "maildir" => fuzz_maildir(data),
        "ledger" => fuzz_ledger(data),
        "carve" => fuzz_carve(data),
        "journal" => fuzz_journal(data),
        "outcomes" => fuzz_outcomes(data),
        other => panic!("unknown fuzz target {other}"),
    }
}

/// The listing cache `listings/<domain>`.
pub fn fuzz_listings(data: &[u8]) {
    if let Ok(l) = listings::decode(data) {
        assert_eq!(listings::encode(&l), data, "accepted listing cache must re-encode to the same bytes");
    }
}

/// `ms.header`.
pub fn fuzz_header(data: &[u8]) {
    if let Ok(h) = header::MailboxHeader::decode(data) {
        let v1 = data.get(8..10) == Some(&[1, 0][..]);
        let again = if v1 { h.encode_v1() } else { h.encode() };
        assert_eq!(header::MailboxHeader::decode(&again).as_ref(), Ok(&h), "re-encoded header must decode the same");
        // Reserved bytes are ignored when read and written as zero (formats/README.md): with
        // them zero, the re-encoding is byte for byte the input (in its version).
        let reserved: &[std::ops::Range<usize>] = if v1 { &[54..56, 56..60] } else { &[54..56, 84..88, 96..100] };
        if reserved.iter().all(|r| data.get(r.clone()).is_some_and(|b| b.iter().all(|&x| x == 0))) {
            assert_eq!(again, data, "accepted header must re-encode to the same bytes (in its version)");
        } else {
            assert_eq!(again.len(), data.len());
        }
    }
    let _ = header::decode_fixed(data);
}

/// `ms.index`.
pub fn fuzz_index(data: &[u8]) {
    // Read a record at a time, as whole.
    let whole = index::decode(data);
    assert_eq!(index::decode_windows(&data, 1).expect("bytes in memory"), whole, "windowed decode differs");
    if let Ok((h, recs)) = whole {
        let again =
            if data.get(8..10) == Some(&[1, 0][..]) { index::encode_v1(&h, &recs) } else { index::encode(&h, &recs) };
        assert_eq!(again, data, "accepted index must re-encode to the same bytes (in its version)");
    }
    let s = index::salvage(data);
    assert!(s.damaged.len() <= index::MAX_DAMAGED, "damaged records listed beyond the cap");
    if let (Some(h), Some((off, len))) = (&s.header, s.beyond_count) {
        assert_eq!(off as usize, 128 + 128 * h.message_count as usize);
        assert_eq!((off + len) as usize, data.len());
    }
    for (off, r) in &s.records {
        assert_eq!(index::decode_record(data, *off as usize), Ok(*r));
    }
}

/// `ms.cache` records at every offset.
pub fn fuzz_cache(data: &[u8]) {
    let _ = cache::decode_header(data);
    for off in 0..data.len().min(64) {
        if let Ok(e) = cache::decode(data, off, None) {
            let mut again = Vec::new();
            let len = cache::encode(&e, &mut again) as usize;
            assert_eq!(&again[..], &data[off..off + len], "accepted cache record must re-encode to the same bytes");
        }
    }
}

/// `ms.log`.
pub fn fuzz_changelog(data: &[u8]) {
    // Read a window at a time (the smallest window), as whole.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let whole = changelog::scan_each(data, |o, q, r| a.push((o, q, r)));
    let windowed = changelog::scan_windows(&data, 2 * 4096 + 1, |o, q, r| b.push((o, q, r))).expect("in memory");
    assert_eq!(format!("{whole:?} {a:?}"), format!("{windowed:?} {b:?}"), "windowed scan differs");
    if let Ok(s) = changelog::scan(data) {
        assert!(s.valid_end as usize <= data.len());
        for (off, seq, rec) in &s.records {
            let off = *off as usize;
            // Where the record stands in its change (its head's flags) is kept as read.
            let (.., change) = changelog::decode_record_in(data, off, &s.header.unique_id).expect("accepted record");
            let mut again = Vec::new();
            changelog::encode_record_in(&mut again, &s.header.unique_id, *seq, rec, change);
            assert_eq!(
                &again[..],
                &data[off..off + again.len()],
                "accepted log record must re-encode to the same bytes"
            );
        }
    }
}

/// Database snapshots.
pub fn fuzz_dbsnap(data: &[u8]) {
    if let Ok(s) = dbsnap::decode(data) {
        let again = dbsnap::encode(&s);
        // Reserved bytes (header 12..16 and 56..60, the trailer's 16..20) are ignored when
        // read and written as zero (formats/README.md): with them zero, the re-encoding is
        // byte for byte the input.
        let t = data.len().saturating_sub(24);
        let reserved = [12..16, 56..60, t + 16..t + 20];
        if reserved.iter().all(|r| data.get(r.clone()).is_some_and(|b| b.iter().all(|&x| x == 0))) {
            assert_eq!(again, data, "accepted snapshot must re-encode to the same bytes");
        } else {
            assert_eq!(again.len(), data.len());
            assert_eq!(dbsnap::decode(&again).as_ref(), Ok(&s), "re-encoded snapshot must decode the same");
        }
        assert_eq!(dbsnap::salvage(data).entries, s.entries, "an intact snapshot must salvage whole");
    }
    let got = dbsnap::salvage(data);
    let unreadable: u64 = got.unreadable.iter().map(|r| r.1).sum();
    assert!(unreadable <= data.len() as u64, "unreadable ranges lie within the file");
}

/// Transaction log segments (`log.<n>`), and the small text files of the database home
/// (`INSTALL`, a backup's `MANIFEST`).
pub fn fuzz_wal(data: &[u8]) {
    if let Ok((h, hcrc)) = wal::decode_segment_header(data) {
        assert_eq!(wal::encode_segment_header(&h), data[..64], "accepted header must re-encode to the same bytes");
        let scan = wal::scan_records(&data[64..], 64, h.salt, hcrc, h.first_lsn, usize::MAX);
        assert!(scan.valid_end as usize <= data.len());
        let mut prev = hcrc;
        for (off, r) in &scan.records {
            assert_eq!(r.prev_crc, prev, "chain");
            prev = r.crc;
            let mut again = Vec::new();
            wal::encode_record(&mut again, r.salt, r.prev_crc, r.lsn, r.txn, r.synced_lsn, &r.body);
            let off = *off as usize;
            assert_eq!(&again[..], &data[off..off + again.len()], "accepted record must re-encode to the same bytes");
        }
        let (found, count) = wal::find_records_after(data, 0, scan.valid_end, h.salt, 0, 64);
        assert!(found.len() <= count);
        for (off, r) in found {
            assert!(off >= scan.valid_end && off as usize + r.len as usize <= data.len());
        }
    }
    // A record at any of the first offsets, under the salt the bytes themselves suggest.
    let salt = data.get(8..12).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(1);
    for off in 0..data.len().min(16) {
        if let Ok(r) = wal::decode_record(data, off, salt) {
            assert!(off + r.len as usize <= data.len());
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(p) = mstore::db::install::Plan::decode(text) {
            assert_eq!(mstore::db::install::Plan::decode(&p.encode()), Some(p));
        }
        if let Some(m) = mstore::db::backup::Manifest::decode(text) {
            assert_eq!(mstore::db::backup::Manifest::decode(&m.encode()), Some(m));
        }
    }
}

/// `ms.conf`.
pub fn fuzz_config(data: &[u8]) {
    if let Ok(c) = mstore::config::Config::parse(Path::new("/fuzz/ms.conf"), data) {
        let again = mstore::config::Config::parse(Path::new("/fuzz/ms.conf"), c.render().as_bytes())
            .expect("a rendered configuration parses");
        assert_eq!(again.partitions, c.partitions);
        assert_eq!(again.ms_path, c.ms_path);
    }
}

/// Messages: split, envelope, dates, MIME structure, and the cache record derived from
/// them must decode again.
pub fn fuzz_message(data: &[u8]) {
    let d = mstore::store::derive::derive(1, data, mstore::store::derive::Received::Parse);
    let e = cache::decode(&d.cache_record, 0, Some(d.cache_record.len() as u32)).expect("derived cache record decodes");
    assert_eq!(e.uid, 1);
    if let Ok(s) = mstore::message::parse_structure(data) {
        for p in &s.parts {
            assert!(p.body_offset + p.body_len <= data.len() as u64);
        }
    }
}

/// mbox files: reading never panics; every message read, written back by export and read
/// again, gives the same bytes, flags, keywords and date (unless export says it changed it).
pub fn fuzz_mbox(data: &[u8]) {
    use mstore::import::mbox::{MboxReader, Quoting, write_message};
    let mut r = MboxReader::new(data, std::path::Path::new("fuzz"), Quoting::Mboxrd).with_max_message(1 << 16);
    while let Some(item) = r.next() {
        let Ok(m) = item else { continue };
        let mut out = Vec::new();
        let o = write_message(&mut out, &m.bytes, m.from.date, m.system_flags, &m.keywords).expect("write to a Vec");
        if o.changed || m.from.date.unix < -2_208_988_800 {
            continue;
        }
        let mut again = MboxReader::new(&out[..], std::path::Path::new("fuzz"), Quoting::Mboxrd);
        let back = again.next().expect("one message").expect("reads back");
        assert_eq!(back.bytes, m.bytes);
        assert_eq!(back.system_flags, m.system_flags);
        assert_eq!(back.keywords, m.keywords);
        assert_eq!(back.from.date, m.from.date);
        assert!(again.next().is_none());
    }
}

/// The outcomes a reconstruct of a large mailbox sets aside in an unnamed file
/// (`reconstruct::outcomes`): accepted bytes re-encode to themselves.
pub fn fuzz_outcomes(data: &[u8]) {
    use mstore::reconstruct::outcomes::{decode_all, encode_all};
    match decode_all(data) {
        Ok(v) => assert_eq!(encode_all(&v), data, "accepted outcomes must re-encode to the same bytes"),
        Err((at, _)) => assert!(at < data.len() as u64, "an error offset inside the bytes"),
    }
}

/// The loss ledger (`formats/ledger.md`): scanning never panics, every entry it keeps
/// lies inside the file and re-encodes to what decodes to the same entry.
pub fn fuzz_ledger(data: &[u8]) {
    use mstore::codec::ledger;
    if let Ok(s) = ledger::scan(data) {
        for (off, e) in &s.entries {
            let (again, len) = ledger::decode_entry(data, *off as usize).expect("a kept entry decodes again");
            assert_eq!(&again, e);
            assert!(*off as usize + len <= data.len());
            let mut out = Vec::new();
            ledger::encode_entry(&mut out, e);
            let (back, blen) = ledger::decode_entry(&out, 0).expect("an encoded entry decodes");
            assert_eq!(&back, e, "entry must survive encode → decode");
            assert_eq!(blen, out.len());
        }
    }
}

/// The carving scanner: the image is `data`; sought are a slice of it (chosen by the
/// first bytes) and a message that is not there. What is found is confirmed by BLAKE3 at
/// its offset; the slice, when it starts on a sector, is found.
pub fn fuzz_carve(data: &[u8]) {
    use mstore::rescue::carve::{Sought, carve};
    if data.len() < 4 {
        return;
    }
    let start = (usize::from(data[0]) * 512 + usize::from(data[3])) % data.len();
    let len = 1 + (usize::from(data[1]) * 256 + usize::from(data[2])) % (data.len() - start);
    let msg = &data[start..start + len];
    let sought = [
        Sought {
            id: 0,
            size: len as u64,
            hash: *blake3::hash(msg).as_bytes(),
            prefix: mstore::store::derive::prefix_hash(msg),
        },
        Sought { id: 1, size: 700, hash: [7; 32], prefix: 0x5eed },
    ];
    // One file per call: tests/fuzz_seeds.rs runs this from several threads at once.
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("mstore-fuzz-carve-{}-{n}", std::process::id()));
    std::fs::write(&path, data).expect("write the image");
    let c = carve(&path, &sought, |_| {});
    let _ = std::fs::remove_file(&path);
    let c = c.expect("carve");
    for &(id, off) in &c.found {
        let s = &sought[id];
        let at = data.get(off as usize..(off + s.size) as usize).expect("found inside the image");
        assert_eq!(blake3::hash(at).as_bytes(), &s.hash, "found bytes confirmed by BLAKE3");
    }
    if start & 511 == 0 {
        assert!(c.found.iter().any(|&(id, _)| id == 0), "a sought message on a sector is found");
    }
}

/// The rescue journal (`formats/rescue-state.md`): parsing never panics, every event it
/// keeps serialises and parses back to itself, and a journal written from those events
/// parses to the same events.
pub fn fuzz_journal(data: &[u8]) {
    use mstore::rescue::state::{Event, parse};
    let mut notes = Vec::new();
    let events = parse(data, &mut notes, Path::new("journal"));
    let mut again = b"MSRESCUE 1\n".to_vec();
    for e in &events {
        let body = serde_json::to_string(e).expect("an event serialises");
        let back: Event = serde_json::from_str(&body).expect("a serialised event parses");
        assert_eq!(&back, e, "an event survives a round trip");
        let sum = &blake3::hash(body.as_bytes()).to_hex()[..16];
        again.extend_from_slice(format!("{body}\t{sum}\n").as_bytes());
    }
    let mut n2 = Vec::new();
    assert_eq!(parse(&again, &mut n2, Path::new("journal")), events, "a rewritten journal parses the same");
    assert!(n2.is_empty(), "{n2:?}");
}

/// Maildir names and metadata files: the first line is a file name (its info part gives
/// flags and keywords), the rest is read as `dovecot-keywords`, as `dovecot-uidlist` and as
/// the start of a loose file.
pub fn fuzz_maildir(data: &[u8]) {
    use mstore::import::maildir::{base_name, flags_of, info_letters, looks_like_mbox, looks_like_message};
    use mstore::import::maildir::{parse_keywords, parse_uidlist};
    let (first, rest) = match memchr_nl(data) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[..0]),
    };
    let keywords = parse_keywords(rest);
    for (letter, name) in &keywords {
        assert!(letter.is_ascii_lowercase(), "keyword letter {letter}");
        assert!(!name.is_empty() && !name.contains(char::is_whitespace), "keyword name {name:?}");
    }
    for (name, uid) in parse_uidlist(rest) {
        assert!(uid > 0 && !name.is_empty());
    }
    if let Ok(name) = std::str::from_utf8(first) {
        let base = base_name(name);
        let letters = info_letters(name);
        assert!(name.starts_with(base) && name.ends_with(letters));
        if base.len() < name.len() {
            assert_eq!(base.len() + 3 + letters.len(), name.len(), "base, separator, `2,`, letters");
        } else {
            assert!(letters.is_empty());
        }
        let (system, kw, unnamed) = flags_of(name, &keywords);
        assert_eq!(system & !mstore::flags::SystemFlags::ALL, 0);
        let mut seen = std::collections::HashSet::new();
        assert!(kw.iter().all(|k| seen.insert(k.clone())), "keywords repeat: {kw:?}");
        assert!(unnamed.iter().all(|c| letters.contains(*c)));
    }
    let _ = looks_like_message(data);
    let _ = looks_like_mbox(data);
}

fn memchr_nl(data: &[u8]) -> Option<usize> {
    data.iter().position(|&b| b == b'\n')
}

/// Seed inputs for `target`: valid files of every shape the parser knows, plus a few
/// damaged ones.
pub fn seed_inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    use mstore::codec::changelog::LogRecord;
    use mstore::codec::index::{IndexHeaderInfo, MessageRecord};
    use mstore::flags::{DateSource, SystemFlags, UserFlags};
    let rec = |uid: u32| MessageRecord {
        uid,
        system_flags: SystemFlags(SystemFlags::SEEN),
        user_flags: UserFlags(1 << uid),
        internal_date: 1_700_000_000,
        internal_offset: 60,
        date_source: DateSource::Given,
        sent_date: Some(1_699_999_000),
        size: 1000 + u64::from(uid),
        cache_offset: 64,
        cache_len: 100,
        modseq: u64::from(uid),
        content_hash: [uid as u8; 32],
        ..MessageRecord::default()
    };
    let mut out = Vec::new();
    match target {
        "listings" => {
            use listings::{DirKey, DirListing, Listings};
            let key = |ino: u64| DirKey {
                mnt_id: 30,
                dev: (259 << 32) | 1,
                ino,
                ctime: (1_700_000_000, 5),
                mtime: (1_700_000_000, 5),
                size: 4096,
            };
            let l = Listings {
                boot_id: [9; 16],
                written: 1_700_000_100,
                entries: vec![
                    (
                        key(11),
                        DirListing {
                            messages: vec![1, 2, 7],
                            subdirs: vec!["Sent".into()],
                            temps: vec!["ms.tmp.ms.index.9".into()],
                            strays: vec!["x y".into()],
                            flags: 0xf,
                        },
                    ),
                    (key(12), DirListing { flags: 3, ..DirListing::default() }),
                ],
            };
            out.push(("valid".into(), listings::encode(&l)));
            out.push(("empty".into(), listings::encode(&Listings { entries: vec![], ..l.clone() })));
            let mut bad = listings::encode(&l);
            bad[150] ^= 2;
            out.push(("flipped-uid".into(), bad));
        }
        "header" => {
            let h = header::MailboxHeader {
                unique_id: [1; 16],
                uid_validity: 7,
                last_uid: 3,
                created: 1,
                domain: "example.com".into(),
                name: "user/joe/pub".into(),
                flags: vec![Some("$Work".into()), None, Some("Junk".into())],
                log: mstore::codec::changelog::LogCoverage { base_seq: 3, seq: 5, len: 900, crc: 0x1234_5678 },
                modseq_ceiling: 2053,
            };
            out.push(("valid".into(), h.encode()));
            out.push(("version-1".into(), h.encode_v1()));
            out.push(("empty-flags".into(), header::MailboxHeader { flags: vec![], ..h.clone() }.encode()));
            let mut bad = h.encode();
            bad[mstore::format::header::FIXED_LEN + 13] ^= 4;
            out.push(("flipped-name".into(), bad));
        }
        "index" => {
            let h = IndexHeaderInfo {
                unique_id: [2; 16],
                generation: 1,
                uid_validity: 7,
                last_uid: 9,
                log_seq: 4,
                log_len: 700,
                log_crc: 0x0bad_cafe,
                modseq_ceiling: 2052,
                ..Default::default()
            };
            let recs: Vec<MessageRecord> = (1..=3).map(rec).collect();
            out.push(("valid".into(), index::encode(&h, &recs)));
            out.push(("version-1".into(), index::encode_v1(&h, &recs)));
            out.push(("empty".into(), index::encode(&h, &[])));
            let mut cut = index::encode(&h, &recs);
            cut.truncate(cut.len() - 50);
            out.push(("truncated".into(), cut));
        }
        "cache" => {
            let d = mstore::store::derive::derive(5, SAMPLE_MULTIPART, mstore::store::derive::Received::Parse);
            let mut file = cache::encode_header(&[3; 16], 1);
            file.extend_from_slice(&d.cache_record);
            out.push(("multipart-record".into(), d.cache_record.clone()));
            out.push(("file".into(), file));
        }
        "changelog" => {
            let uid = [4; 16];
            let mut b = changelog::encode_header(&changelog::LogHeaderInfo {
                unique_id: uid,
                uid_validity: 7,
                base_seq: 0,
                created: 1,
                ceiling: 2048,
            });
            for (i, r) in [
                LogRecord::Name { domain: "example.com".into(), name: "user/joe".into() },
                LogRecord::FlagName { slot: 0, name: "$Work".into() },
                LogRecord::Message(rec(1)),
                LogRecord::Flags { uid: 1, system_flags: SystemFlags(0), user_flags: UserFlags(1), modseq: 4 },
                LogRecord::Expunge { uid: 1, modseq: 5 },
                LogRecord::LastUid { last_uid: 1, uid_validity: 7 },
            ]
            .iter()
            .enumerate()
            {
                changelog::encode_record(&mut b, &uid, i as u64 + 1, r);
            }
            out.push(("valid".into(), b.clone()));
            let mut torn = b.clone();
            torn.truncate(torn.len() - 5);
            out.push(("torn".into(), torn));
        }
        "dbsnap" => {
            let s = dbsnap::Snapshot {
                name: "mailboxes".into(),
                checkpoint_lsn: 3,
                written: 1,
                entries: vec![(b"example.com\0user/joe".to_vec(), vec![1; 40]), (b"foo.com\0admin".to_vec(), vec![])],
            };
            out.push(("valid".into(), dbsnap::encode(&s)));
        }
        "wal" => {
            let h = wal::SegmentHeaderInfo {
                salt: 0x1234_5678,
                segment: 2,
                first_lsn: 10,
                prev_end: 4096,
                prev_crc: 7,
                prev_salt: 9,
                created: 1_700_000_000,
                flags: 0,
            };
            let mut seg = wal::encode_segment_header(&h);
            out.push(("empty-segment".into(), seg.clone()));
            let (_, mut prev) = wal::decode_segment_header(&seg).expect("encoded header decodes");
            let bodies = [
                wal::Body::Put { db: 1, key: b"example.com\0user/joe", value: &[1; 40] },
                wal::Body::Delete { db: 2, key: b"example.com\0joe\0admin" },
                wal::Body::Commit { op_count: 2, time: 1_700_000_001 },
                wal::Body::Checkpoint { checkpoint_lsn: 12, time: 1_700_000_002 },
                wal::Body::Put { db: 1, key: b"k", value: b"" },
            ];
            for (i, b) in bodies.iter().enumerate() {
                let txn = if i < 3 {
                    10
                } else if i == 3 {
                    0
                } else {
                    14
                };
                prev = wal::encode_record(&mut seg, h.salt, prev, 10 + i as u64, txn, 9 + i as u64, b);
            }
            out.push(("segment".into(), seg.clone()));
            let mut torn = seg.clone();
            torn.truncate(seg.len() - 7);
            out.push(("torn".into(), torn));
            let mut timeline = wal::encode_segment_header(&wal::SegmentHeaderInfo {
                flags: mstore::format::wal::FLAG_NEW_TIMELINE,
                prev_end: 0,
                prev_crc: 0,
                prev_salt: 0,
                ..h
            });
            timeline.extend_from_slice(&[0; 64]);
            out.push(("new-timeline-zero-tail".into(), timeline));
            let plan = mstore::db::install::Plan {
                lsn: 12,
                segment: 3,
                quarantine: "quarantine/20240101T000000Z-point-in-time".into(),
                staged: vec![(mstore::db::Db::Mailboxes, "install.mailboxes.db".into())],
                old_segments: vec!["log.0000000000000002".into()],
            };
            out.push(("install-plan".into(), plan.encode().into_bytes()));
            let m = mstore::db::backup::Manifest {
                created: 1,
                checkpoint_lsn: 12,
                end_lsn: 14,
                entries: 1,
                state_digest: "00".repeat(32),
                files: vec![("log.0000000000000002".into(), 64, "11".repeat(32))],
            };
            out.push(("manifest".into(), m.encode().into_bytes()));
        }
        "config" => {
            out.push(("seed".into(), b"ms-path: /var/md/store\npartition-d2: /d/d2/mailstore\n".to_vec()));
            out.push((
                "full".into(),
                b"# c\nms-path: store\nruntime-user: sms\nruntime-group: sms\npartition-default: s\ndefault-partition: default\nbackup-keep: 3\nlog-segment-size: 1M\nfsync: no\nthreads: 2\nbogus: 1\n".to_vec(),
            ));
        }
        "message" => {
            out.push(("multipart".into(), SAMPLE_MULTIPART.to_vec()));
            out.push(("plain-lf".into(), b"From: a@b\nSubject: x\nDate: 1 Jan 2024 00:00 GMT\n\nbody\n".to_vec()));
            out.push(("no-header".into(), b"\r\n\r\njust body".to_vec()));
        }
        "mbox" => {
            out.push((
                "two".into(),
                b"From a@b Wed Jul  1 13:17:17 1998\nSubject: x\nStatus: RO\nX-Status: AF\nX-Keywords: $Work\n\n>From here\nFrom there\n\nFrom b Mon Jan  5 08:50:15 +0100 2004\r\nA: b\r\n\r\nc\r\n".to_vec(),
            ));
            out.push((
                "content-length".into(),
                b"From x Sat Sep  1 20:58 EDT 2001\nContent-Length: 12\n\nFrom inside\n\nFrom y Thu Sep 13 12:30:05 2001 -0400\nA: b\n".to_vec(),
            ));
            out.push(("not-mbox".into(), b"#!/bin/sh\necho hi\n".to_vec()));
        }
        "maildir" => {
            out.push(("keywords".into(), b"1234.M1P2.host,S=10:2,DFPRSTab\n0 $Work\n1 Junk\n".to_vec()));
            out.push(("uidlist".into(), b"20.a;2,RS\n3 V1 N9 Gx\n7 :5.d\n2 W10 :20.a:2,S\n".to_vec()));
            out.push(("uidlist-v1".into(), b"x!2,S\n1 1 9\n1 1.host\n".to_vec()));
            out.push(("loose".into(), b"Return-Path: <a@b>\nFrom: x\n\nbody\n".to_vec()));
        }
        "ledger" => {
            use mstore::codec::ledger::{Entry, Kind, Reason, encode_entry, encode_header};
            let mut b = encode_header(1_700_000_000);
            let e = Entry {
                kind: Kind::Lost,
                reason: Reason::Gone,
                when: 1_700_000_100,
                unique_id: [5; 16],
                uid_validity: 7,
                new_uid_validity: 0,
                new_uid: 0,
                record: rec(4),
                domain: "example.com".into(),
                mailbox: "user/joe".into(),
                flag_names: vec!["$Work".into(), "Junk".into()],
                note: "file gone".into(),
            };
            encode_entry(&mut b, &e);
            out.push(("one-entry".into(), b.clone()));
            let mut torn = b.clone();
            torn.truncate(b.len() - 3);
            out.push(("torn".into(), torn));
        }
        "outcomes" => {
            use mstore::message::DateTime;
            use mstore::reconstruct::merge::{Derived, FileInfo, FileOutcome};
            let info = |uid| FileInfo { uid, size: 1000 + u64::from(uid), mtime: 1_700_000_000 };
            let derived = Derived {
                content_hash: [3; 32],
                prefix_hash: 77,
                header_size: 120,
                sent_date: Some(DateTime { unix: 1_699_999_000, offset_minutes: -300 }),
                received_date: None,
                cache: Some((64, 100)),
            };
            let all = vec![
                FileOutcome::Matched(info(1)),
                FileOutcome::Read(info(2), derived),
                FileOutcome::Empty(info(3)),
                FileOutcome::Unreadable { uid: 4, error: "Permission denied (os error 13)".into() },
                FileOutcome::Vanished { uid: 5 },
            ];
            let b = mstore::reconstruct::outcomes::encode_all(&all);
            out.push(("every-kind".into(), b.clone()));
            out.push(("cut".into(), b[..b.len() - 3].to_vec()));
        }
        "journal" => {
            let lines = [
                r#"{"event":"run","at":1796588148,"recovered_name":"Recovered/2026-12-06"}"#,
                r#"{"event":"store-files","image":{"path":"/x.img","dev":1,"ino":2,"rdev":0,"size":8192,"mtime":[5,6]},"files":[["index",4096,896],["log",0,1035]]}"#,
                r#"{"event":"carved","image":{"path":"/x.img","dev":1,"ino":2,"rdev":0,"size":8192,"mtime":[5,6]},"sought":["475fbb9de984f0444f760afb7e8c8963"],"found":[{"hash":"475fbb9de984f0444f760afb7e8c896340741d0c9933341e8d40ab9f2d1282bb","size":3429,"offset":512}]}"#,
                r#"{"event":"placed","files":14}"#,
                r#"{"event":"reconstructed","domain":"esys.ca"}"#,
                r#"{"event":"finished","at":1796588149}"#,
            ];
            let mut j = b"MSRESCUE 1\n".to_vec();
            for l in lines {
                let sum = &blake3::hash(l.as_bytes()).to_hex()[..16];
                j.extend_from_slice(format!("{l}\t{sum}\n").as_bytes());
            }
            out.push(("whole-run".into(), j.clone()));
            let mut cut = j.clone();
            cut.truncate(j.len() - 20);
            out.push(("cut-by-a-kill".into(), cut));
        }
        "carve" => {
            let mut img = vec![0u8; 2048];
            img[512..512 + SAMPLE_MULTIPART.len().min(1024)]
                .copy_from_slice(&SAMPLE_MULTIPART[..SAMPLE_MULTIPART.len().min(1024)]);
            img[0] = 1;
            img[1] = 1;
            img[2] = 100;
            out.push(("message-on-a-sector".into(), img));
        }
        _ => {}
    }
    out
}

const SAMPLE_MULTIPART: &[u8] = b"From: Joe <joe@example.com>\r\nTo: mary@example.com\r\nSubject: =?UTF-8?B?w5xiZXI=?=\r\nDate: Mon, 1 Jan 2024 10:00:00 +0100\r\nMessage-ID: <1@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\npreamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@y\r\nSubject: inner\r\n\r\ninner body\r\n--XX--\r\n";
