//! Tests that cut across the message modules: property tests on arbitrary
//! and generated messages, and a run over the external corpus
//! (`../shared/corpus-ext`, real mail nobody on this team wrote).

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

/// Check every structural invariant of a parse result against its input.
fn check_structure(msg: &[u8], st: &Structure<'_>) {
    let len = msg.len() as u64;
    assert!(!st.parts.is_empty(), "part 0 always exists");
    assert!(st.parts.len() <= MAX_PARTS);
    let p0 = &st.parts[0];
    assert_eq!(p0.parent, None);
    assert_eq!(p0.depth, 0);
    assert_eq!(p0.header_offset, 0);
    assert_eq!(p0.body_offset + p0.body_len, len);
    assert!(p0.envelope.is_some());
    for (i, p) in st.parts.iter().enumerate() {
        let h_end = p.header_offset + p.header_len;
        let b_end = p.body_offset + p.body_len;
        assert!(h_end <= p.body_offset, "part {i}: header overlaps body");
        assert!(b_end <= len, "part {i}: body beyond the message");
        assert!(p.header_bytes(msg).is_some() && p.body_bytes(msg).is_some());
        assert!(p.depth <= MAX_DEPTH);
        let body = p.body_bytes(msg).unwrap_or_default();
        let counted = p.media_type.as_ref() == b"text" || p.media_type.as_ref() == b"message";
        let lines = if counted { body.iter().filter(|&&b| b == b'\n').count() as u64 } else { 0 };
        assert_eq!(p.body_lines, lines, "part {i} ({:?})", String::from_utf8_lossy(&p.media_type));
        if let Some(parent) = p.parent {
            let parent = parent as usize;
            assert!(parent < i, "part {i}: parent after child (not pre-order)");
            let q = &st.parts[parent];
            assert_eq!(p.depth, q.depth + 1);
            assert_ne!(q.kind, PartKind::Leaf);
            // A child lies inside its parent's body.
            assert!(p.header_offset >= q.body_offset, "part {i} starts before its parent's body");
            assert!(b_end <= q.body_offset + q.body_len, "part {i} ends after its parent's body");
            if q.kind == PartKind::Message {
                assert!(p.envelope.is_some());
                assert_eq!(p.header_offset, q.body_offset);
            } else {
                assert!(p.envelope.is_none());
            }
        } else {
            assert_eq!(i, 0);
        }
        let n_children = st.children(i).count();
        match p.kind {
            PartKind::Leaf => assert_eq!(n_children, 0),
            PartKind::Multipart => assert!(n_children >= 1),
            PartKind::Message => assert_eq!(n_children, 1),
        }
    }
    // Siblings do not overlap and come in file order.
    for i in 0..st.parts.len() {
        let kids: Vec<_> = st.children(i).collect();
        for w in kids.windows(2) {
            let (a, b) = (&st.parts[w[0]], &st.parts[w[1]]);
            assert!(a.body_offset + a.body_len <= b.header_offset);
        }
    }
}

/// Run every entry point over one input; none may panic.
fn exercise(msg: &[u8]) -> Result<Structure<'_>, MessageError> {
    let sp = split(msg);
    assert!(sp.header_len <= sp.body_offset && sp.body_offset <= msg.len());
    let header = &msg[..sp.header_len];
    for f in fields(header) {
        assert!(f.offset < header.len());
        assert!(!f.name.is_empty());
        let _ = unfold(f.raw_value);
    }
    let env = Envelope::from_header(header);
    if let Some(d) = env.date.as_deref() {
        let _ = parse_date(d);
    }
    let _ = received_date(header);
    let st = parse_structure(msg);
    if let Ok(st) = &st {
        check_structure(msg, st);
    }
    st
}

// ---------------------------------------------------------------- proptest

/// A generated MIME tree, rendered into a message.
#[derive(Clone, Debug)]
enum Gen {
    Leaf(Vec<u8>),
    Multi(Vec<Gen>),
    Message(Box<Gen>),
}

fn gen_tree() -> impl Strategy<Value = Gen> {
    let leaf = proptest::collection::vec(
        prop_oneof![Just(b'a'), Just(b'\n'), Just(b'\r'), Just(b'-'), Just(b' '), any::<u8>()],
        0..40,
    )
    .prop_map(Gen::Leaf);
    leaf.prop_recursive(5, 40, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 1..4).prop_map(Gen::Multi),
            inner.prop_map(|g| Gen::Message(Box::new(g))),
        ]
    })
}

/// Render a tree; returns the number of parts it should parse into.
fn render(g: &Gen, eol: &[u8], counter: &mut u32, out: &mut Vec<u8>) -> usize {
    match g {
        Gen::Leaf(body) => {
            out.extend_from_slice(b"Content-Type: text/plain");
            out.extend_from_slice(eol);
            out.extend_from_slice(eol);
            // Keep generated bodies from forging delimiters: no "--" at all.
            let mut prev = 0u8;
            for &b in body {
                if !(b == b'-' && prev == b'-') {
                    out.push(b);
                }
                prev = b;
            }
            1
        }
        Gen::Multi(kids) => {
            *counter += 1;
            let boundary = format!("=_b{counter}");
            out.extend_from_slice(format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"").as_bytes());
            out.extend_from_slice(eol);
            out.extend_from_slice(eol);
            out.extend_from_slice(b"preamble");
            let mut n = 1;
            for k in kids {
                out.extend_from_slice(eol);
                out.extend_from_slice(format!("--{boundary}").as_bytes());
                out.extend_from_slice(eol);
                n += render(k, eol, counter, out);
            }
            out.extend_from_slice(eol);
            out.extend_from_slice(format!("--{boundary}--").as_bytes());
            out.extend_from_slice(eol);
            out.extend_from_slice(b"epilogue");
            n
        }
        Gen::Message(inner) => {
            out.extend_from_slice(b"Content-Type: message/rfc822");
            out.extend_from_slice(eol);
            out.extend_from_slice(eol);
            out.extend_from_slice(b"Subject: inner");
            out.extend_from_slice(eol);
            1 + render(inner, eol, counter, out)
        }
    }
}

/// 512 cases per property, unless `PROPTEST_CASES` asks for another number
/// (run with a large one to shake the parsers harder).
fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 512;
    }
    c
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(msg in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = exercise(&msg);
    }

    #[test]
    fn header_like_bytes_never_panic(
        lines in proptest::collection::vec(
            prop_oneof![
                Just(&b"Content-Type: multipart/mixed; boundary=b"[..]),
                Just(&b"Content-Type: message/rfc822"[..]),
                Just(&b"Content-Type: multipart/digest; boundary=\"b\""[..]),
                Just(&b"--b"[..]),
                Just(&b"--b--"[..]),
                Just(&b""[..]),
                Just(&b" folded"[..]),
                Just(&b"Date: Fri, 1 Mar 2024 12:00:00 +0100"[..]),
                Just(&b"Subject: x"[..]),
                Just(&b"From nobody"[..]),
                Just(&b"\x00\xff:"[..]),
            ],
            0..60,
        ),
        crlf in any::<bool>(),
    ) {
        let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        let msg = lines.join(eol);
        let _ = exercise(&msg);
    }

    #[test]
    fn generated_trees_parse_exactly(tree in gen_tree(), crlf in any::<bool>()) {
        let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        let mut msg = b"From: a@b".to_vec();
        msg.extend_from_slice(eol);
        let mut counter = 0;
        let n = render(&tree, eol, &mut counter, &mut msg);
        let st = exercise(&msg).expect("a generated message parses");
        prop_assert_eq!(st.parts.len(), n);
        prop_assert!(!st.truncated);
    }

    #[test]
    fn the_fields_pass_ends_where_split_does(v in proptest::collection::vec(
        prop_oneof![Just(b'\r'), Just(b'\n'), Just(b' '), Just(b'\t'), Just(b':'), Just(b'x'), Just(0xe9)], 0..60)) {
        // parse_structure takes a part's header end from its one pass over the fields.
        let mut it = fields(&v);
        prop_assert_eq!(it.split(), None);
        let n = it.by_ref().count();
        prop_assert_eq!(it.split(), Some(split(&v)));
        if let Ok(st) = parse_structure(&v) {
            let sp = split(&v);
            prop_assert!(n > 0);
            prop_assert_eq!(st.parts[0].header_len, sp.header_len as u64);
            prop_assert_eq!(st.parts[0].body_offset, sp.body_offset as u64);
        } else if !v.is_empty() {
            prop_assert_eq!(n, 0);
        }
    }

    #[test]
    fn parse_date_never_panics(v in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = parse_date(&v);
    }

    #[test]
    fn parse_date_never_panics_on_date_like_text(
        v in "[A-Za-z]{0,9},? ?[0-9]{0,12}[ -][A-Za-z]{0,9}[ -][0-9]{0,12} [0-9]{0,3}:[0-9]{0,3}(:[0-9]{0,3})? ?[-+]?[0-9A-Za-z:]{0,8}( \\(.*)?"
    ) {
        if let Some(d) = parse_date(v.as_bytes()) {
            // Whatever parses must render and read back.
            prop_assert_eq!(DateTime::from_rfc3339(&d.to_rfc3339()), Some(d));
        }
    }

    #[test]
    fn date_round_trips(
        unix in -2_208_988_800i64..253_402_214_400,
        offset_minutes in -1439i16..=1439,
    ) {
        let d = DateTime { unix, offset_minutes };
        prop_assert_eq!(DateTime::from_rfc3339(&d.to_rfc3339()), Some(d));
        // Keep the local date inside the years parse_date accepts.
        let local = unix + i64::from(offset_minutes) * 60;
        if (-2_208_988_800..253_402_300_800).contains(&local) {
            prop_assert_eq!(parse_date(d.to_imap().as_bytes()), Some(d));
        }
    }

    #[test]
    fn unfold_matches_reference(v in proptest::collection::vec(
        prop_oneof![Just(b'\r'), Just(b'\n'), Just(b' '), Just(b'\t'), Just(b'x')], 0..40)) {
        // The RFC 5322 rule, naively: drop CRLF or LF followed by WSP, then trim.
        let mut r = Vec::new();
        let mut i = 0;
        while i < v.len() {
            let wsp = |k: usize| matches!(v.get(k), Some(b' ' | b'\t'));
            if v[i] == b'\r' && v.get(i + 1) == Some(&b'\n') && wsp(i + 2) {
                i += 2;
            } else if v[i] == b'\n' && wsp(i + 1) {
                i += 1;
            } else {
                r.push(v[i]);
                i += 1;
            }
        }
        let t = |b: &u8| !b" \t\r\n".contains(b);
        let start = r.iter().position(t).unwrap_or(r.len());
        let end = r.iter().rposition(t).map_or(start, |e| e + 1);
        prop_assert_eq!(&*unfold(&v), &r[start..end]);
    }
}

// ------------------------------------------------------------------ corpus

/// The integration tests' rule for what a machine may lack (a clone without ../shared).
#[allow(dead_code)]
#[path = "../../tests/support/require.rs"]
mod require;

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk(&e.path(), out);
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
}

#[test]
fn corpus_ext() {
    let Some(dir) = require::shared_corpus("parsing every message of corpus-ext") else { return };
    let mut files = Vec::new();
    walk(&dir, &mut files);
    assert!(!files.is_empty(), "corpus directory is empty");

    let (mut parsed, mut errors) = (0usize, 0usize);
    let (mut with_date, mut dated) = (0usize, 0usize);
    let mut parts_total = 0usize;
    let mut undated = Vec::new();
    for path in &files {
        let msg = std::fs::read(path).expect("corpus file is readable");
        match exercise(&msg) {
            Ok(st) => {
                parsed += 1;
                parts_total += st.parts.len();
            }
            Err(e) => {
                errors += 1;
                println!("not a message: {}: {e}", path.display());
            }
        }
        let header = &msg[..split(&msg).header_len];
        let env = Envelope::from_header(header);
        if let Some(date) = env.date.as_deref() {
            with_date += 1;
            if parse_date(date).is_some() {
                dated += 1;
            } else {
                undated.push(format!("{}: {:?}", path.display(), String::from_utf8_lossy(date)));
            }
        }
    }
    for u in &undated {
        println!("unparsed date: {u}");
    }
    println!(
        "corpus-ext: {} files, {parsed} parsed ({parts_total} parts), {errors} not messages; \
         {dated}/{with_date} dates parsed",
        files.len()
    );
    assert!(parsed * 10 >= files.len() * 8, "most corpus files are messages");
    assert!(with_date > 0);
    assert!(dated * 100 >= with_date * 97, "only {dated} of {with_date} Date fields parsed");
}
