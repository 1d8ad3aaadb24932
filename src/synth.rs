//! Deterministic, realistic generated stores: the cast of `mstore demo` and the corpora of
//! `cargo xtask corpus` and the benchmarks.
//!
//! Everything is a function of the generator's seed number: mailbox ids, UID validities, message bytes, flags
//! and dates, so two runs with the same seed write the same bytes. Sizes follow a long
//! tail (a few hundred bytes to 1 MiB, median near 4 KiB); messages are plain, multipart
//! alternative, or multipart mixed with base64 attachments, some with 8-bit text, some
//! forwarding a message/rfc822.

use std::path::Path;

use base64::Engine;

use crate::config::Config;
use crate::error::Result;
use crate::flags::SystemFlags;
use crate::io::Durability;
use crate::layout::MailboxName;
use crate::message::DateTime;
use crate::store::{CreateOptions, NewMessage, Store};

/// SplitMix64: tiny, fast, and stable forever (a corpus must not change with a crate
/// upgrade).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    /// Uniform float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A mailbox of a generated store, with its share of the messages.
#[derive(Clone, Debug)]
pub struct MailboxPlan {
    /// Domain.
    pub domain: &'static str,
    /// Name as typed (UTF-8 allowed).
    pub name: String,
    /// Partition.
    pub partition: &'static str,
    /// Relative share of messages.
    pub weight: u32,
}

/// The cast of the M-Store administration guide: the domains, users and shared folders
/// its examples name, plus a few
/// more users and a name with spaces and non-ASCII characters.
pub fn demo_cast() -> Vec<MailboxPlan> {
    let m = |domain, name: &str, partition, weight| MailboxPlan { domain, name: name.to_string(), partition, weight };
    vec![
        m("example.com", "user/joe", "default", 30),
        m("example.com", "user/joe/Sent", "default", 8),
        m("example.com", "user/joe/Trash", "default", 3),
        m("example.com", "user/joe/pub", "default", 10),
        m("example.com", "user/joe/pub/projects", "default", 6),
        m("example.com", "user/joe/pub/projects/2024", "default", 4),
        m("example.com", "user/joe/pub/photos", "default", 3),
        m("example.com", "user/mary", "default", 20),
        m("example.com", "user/mary/Sent", "default", 5),
        m("example.com", "user/mary/Reisen &- Urlaub", "default", 4),
        m("example.com", "user/mary/Entwürfe", "default", 2),
        m("example.com", "user/mary/Q3 \"final\" report (v2)", "default", 2),
        m("example.com", "user/bob", "d2", 15),
        m("example.com", "user/bob/Lists/rust-users", "d2", 10),
        m("example.com", "admin", "default", 6),
        m("example.com", "admin/announcements", "default", 4),
        m("example.com", "admin/archive", "default", 3),
        m("example.com", "admin/archive/2023", "default", 3),
        m("foo.com", "admin", "default", 6),
        m("foo.com", "user/alice", "default", 12),
        m("foo.com", "user/alice/日本語", "default", 2),
        m("esys.ca", "user/foobar", "d2", 18),
        m("esys.ca", "user/foobar/Archive", "d2", 6),
        m("esys.ca", "user/foobar/Archive/2022", "d2", 4),
        m("esys.ca", "user/foobar/Lists", "d2", 3),
        m("esys.ca", "user/foobar/Lists/announce", "d2", 3),
    ]
}

/// A larger cast for corpora: the demo cast plus `users` more users across domains, each
/// with an INBOX and a few folders.
pub fn corpus_cast(users: usize) -> Vec<MailboxPlan> {
    let mut v = demo_cast();
    let domains = ["example.com", "foo.com", "esys.ca", "bar.org"];
    for u in 0..users {
        let domain = domains[u % domains.len()];
        let partition = if u % 3 == 2 { "d2" } else { "default" };
        let user = format!("user/u{u:05}");
        let w = 10 + (u % 7) as u32 * 5;
        v.push(MailboxPlan { domain, name: user.clone(), partition, weight: w });
        for (i, f) in ["Sent", "Archive", "Archive/2025", "Lists/dev"].iter().enumerate() {
            if (u + i) % 2 == 0 {
                v.push(MailboxPlan { domain, name: format!("{user}/{f}"), partition, weight: w / 3 + 1 });
            }
        }
    }
    v
}

/// What a generation run wrote.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Mailboxes created.
    pub mailboxes: usize,
    /// Messages appended.
    pub messages: u64,
    /// Bytes of message files.
    pub bytes: u64,
    /// Domains.
    pub domains: Vec<String>,
}

/// Write a `ms.conf` for a generated store in `dir` (relative paths, so the directory can
/// be moved), with partitions `default` and `d2`.
pub fn write_config(dir: &Path, runtime_user: &str, runtime_group: &str, durability: Durability) -> Result<Config> {
    std::fs::create_dir_all(dir).map_err(|e| crate::Error::io("create directory", dir, e))?;
    let text = format!(
        "# M-Store configuration written by the generator.\n\
         # Paths are relative to this file's directory.\n\
         ms-path: store\n\
         runtime-user: {runtime_user}\n\
         runtime-group: {runtime_group}\n\
         partition-default: store/spool\n\
         partition-d2: d2/mailstore\n\
         backup-path: store/backup\n\
         fsync: {}\n",
        if durability == Durability::Sync { "yes" } else { "no" }
    );
    let path = dir.join("ms.conf");
    crate::fs::atomic_write(&crate::fs::RealFs, dir, "ms.conf", text.as_bytes(), Durability::Sync)
        .map_err(|e| crate::Error::io("write", &path, e))?;
    Ok(Config::load(&path)?)
}

/// Populate `store` with about `total` messages spread over `cast` by weight, using
/// `threads` worker threads. Deterministic for a given seed (whatever the thread count).
pub fn populate(store: &Store, cast: &[MailboxPlan], total: u64, seed: u64, threads: usize) -> Result<Summary> {
    let weight: u64 = cast.iter().map(|m| u64::from(m.weight)).sum::<u64>().max(1);
    // Exact counts: floor by weight, remainder to the first mailboxes.
    let mut counts: Vec<u64> = cast.iter().map(|m| total * u64::from(m.weight) / weight).collect();
    let mut left = total - counts.iter().sum::<u64>();
    for c in counts.iter_mut() {
        if left == 0 {
            break;
        }
        *c += 1;
        left -= 1;
    }
    // Create every mailbox first (the mailbox list is one database: one writer at a time).
    for (i, plan) in cast.iter().enumerate() {
        let name = MailboxName::parse(&plan.name)?;
        let mut rng = Rng::new(seed ^ (i as u64).wrapping_mul(0x5851_f42d_4c95_7f2d));
        let mut uid = [0u8; 16];
        uid[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        uid[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        let opts = CreateOptions {
            partition: Some(plan.partition.to_string()),
            unique_id: Some(uid),
            uid_validity: Some(1_600_000_000 + (rng.below(100_000_000) as u32)),
            created: Some(1_600_000_000),
            acl: None,
        };
        store.create_mailbox(plan.domain, &name, opts)?;
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = parking_lot::Mutex::new(Vec::<Result<(u64, u64)>>::new());
    crossbeam::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|_| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= cast.len() {
                        break;
                    }
                    let r = fill_mailbox(store, &cast[i], counts[i], seed, i);
                    results.lock().push(r);
                }
            });
        }
    })
    .map_err(|_| crate::Error::Invalid("a generator thread panicked".into()))?;
    let mut sum = Summary { mailboxes: cast.len(), ..Summary::default() };
    for r in results.into_inner() {
        let (m, b) = r?;
        sum.messages += m;
        sum.bytes += b;
    }
    let mut domains: Vec<String> = cast.iter().map(|m| m.domain.to_string()).collect();
    domains.sort();
    domains.dedup();
    sum.domains = domains;
    Ok(sum)
}

fn fill_mailbox(store: &Store, plan: &MailboxPlan, count: u64, seed: u64, index: usize) -> Result<(u64, u64)> {
    let name = MailboxName::parse(&plan.name)?;
    let mut mb = store.open_mailbox_locked(plan.domain, &name)?;
    let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(index as u64 * 7919 + 1));
    let owner = name.owner().unwrap_or("shared").to_string();
    let mut date: i64 = 1_640_000_000 + rng.below(20_000_000) as i64;
    // Dates a few hours apart, closer in a large mailbox, so that even a million messages
    // stay in the past (a mailbox of up to 9,999 is as it always was).
    let step_div = (count / 5_000).max(1) as i64;
    let mut bytes_total = 0u64;
    let mut done = 0u64;
    const BATCH: u64 = 500;
    while done < count {
        let n = BATCH.min(count - done);
        let mut bodies = Vec::with_capacity(n as usize);
        let mut metas = Vec::with_capacity(n as usize);
        for k in 0..n {
            date += (600 + rng.below(40_000) as i64) / step_div;
            let offset = *rng.pick(&[0i16, 60, 120, -300, -420, 330]);
            let msg = message(&mut rng, plan.domain, &owner, done + k, date, offset);
            bytes_total += msg.len() as u64;
            bodies.push(msg);
            metas.push((DateTime { unix: date, offset_minutes: offset }, flags(&mut rng), user_flags(&mut rng)));
        }
        let batch: Vec<NewMessage<'_>> = bodies
            .iter()
            .zip(metas)
            .map(|(b, (d, f, u))| NewMessage { bytes: b, internal_date: Some(d), system_flags: f, user_flags: u })
            .collect();
        mb.append(&batch)?;
        done += n;
    }
    mb.checkpoint()?;
    Ok((count, bytes_total))
}

fn flags(rng: &mut Rng) -> u32 {
    let mut f = 0;
    if rng.chance(0.7) {
        f |= SystemFlags::SEEN;
    }
    if rng.chance(0.15) {
        f |= SystemFlags::ANSWERED;
    }
    if rng.chance(0.1) {
        f |= SystemFlags::FLAGGED;
    }
    if rng.chance(0.03) {
        f |= SystemFlags::DELETED;
    }
    if rng.chance(0.01) {
        f |= SystemFlags::DRAFT;
    }
    f
}

fn user_flags(rng: &mut Rng) -> Vec<String> {
    const NAMES: [&str; 8] = ["$Label1", "$Label2", "$Label3", "$Important", "$Junk", "$NotJunk", "$Forwarded", "Work"];
    let mut v = Vec::new();
    if rng.chance(0.25) {
        v.push(rng.pick(&NAMES).to_string());
        if rng.chance(0.3) {
            let second = rng.pick(&NAMES).to_string();
            if !v.contains(&second) {
                v.push(second);
            }
        }
    }
    v
}

const WORDS: &[&str] = &[
    "the",
    "store",
    "mailbox",
    "index",
    "message",
    "flag",
    "partition",
    "backup",
    "recover",
    "meeting",
    "report",
    "quarter",
    "project",
    "release",
    "schedule",
    "budget",
    "review",
    "draft",
    "please",
    "thanks",
    "tomorrow",
    "server",
    "disk",
    "failure",
    "window",
    "maintenance",
    "cron",
    "daily",
    "transaction",
    "log",
    "database",
    "user",
    "folder",
    "shared",
    "archive",
    "attached",
    "see",
    "below",
    "regards",
    "question",
    "answer",
    "and",
    "of",
    "to",
    "in",
    "is",
    "for",
    "on",
    "with",
    "that",
    "we",
    "it",
    "this",
    "be",
    "as",
    "are",
];
const WORDS_8BIT: &[&str] = &["Grüße", "café", "naïve", "Ärger", "façade", "smörgåsbord", "日本語", "Привет", "€"];
const NAMES: &[&str] =
    &["Joe Smith", "Mary Major", "Bob Builder", "Alice Liddell", "Foo Bar", "Ops Team", "Zoë Ångström"];

/// The words a generated text is made of.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Words {
    /// English only.
    Ascii,
    /// Now and then one in another script.
    Mixed,
}

fn words(rng: &mut Rng, n: usize, kind: Words) -> String {
    let mut s = String::with_capacity(n * 7);
    for i in 0..n {
        if i > 0 {
            s.push(if i % 14 == 13 { '\n' } else { ' ' });
        }
        if kind == Words::Mixed && rng.chance(0.05) {
            let w: &&str = rng.pick(WORDS_8BIT);
            s.push_str(w);
        } else {
            let w: &&str = rng.pick(WORDS);
            s.push_str(w);
        }
    }
    s
}

/// Target message size: a long tail from a few hundred bytes to 1 MiB, median near 4 KiB.
fn target_size(rng: &mut Rng) -> usize {
    // 97%: log-normal around 4 KiB (sum of uniforms ~ N(0, 0.7)); 3%: big attachments,
    // log-uniform from 64 KiB to 1 MiB.
    if rng.chance(0.03) {
        return (65536.0 * 16f64.powf(rng.unit())) as usize;
    }
    let z: f64 = (0..6).map(|_| rng.unit()).sum::<f64>() - 3.0;
    let size = (4096.0 * (z * 1.6).exp()) as usize;
    size.clamp(300, 1 << 20)
}

fn rfc5322_date(unix: i64, offset: i16) -> String {
    DateTime { unix, offset_minutes: offset }.to_rfc5322()
}

fn message(rng: &mut Rng, domain: &str, owner: &str, n: u64, date: i64, offset: i16) -> Vec<u8> {
    let crlf = rng.chance(0.5);
    let size = target_size(rng);
    let from_name = rng.pick(NAMES);
    let from = format!("{} <{}@{}>", from_name, from_name.split(' ').next().unwrap_or("x").to_lowercase(), domain);
    let eight_bit = rng.chance(0.2);
    let subject = if eight_bit && rng.chance(0.5) {
        format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(words(rng, 4, Words::Mixed)))
    } else {
        let n = 3 + rng.below(6) as usize;
        let w = words(rng, n, Words::Ascii);
        w.replace('\n', " ")
    };
    let mut h = String::with_capacity(1024);
    let hops = 1 + rng.below(3);
    for i in 0..hops {
        h += &format!(
            "Received: from mx{i}.{domain} (mx{i}.{domain} [192.0.2.{}])\n\tby mail.{domain} with ESMTPS id {:x};\n\t{}\n",
            rng.below(250) + 1,
            rng.next_u64(),
            rfc5322_date(date - i as i64 * 7, offset)
        );
    }
    h += &format!("Date: {}\n", rfc5322_date(date - hops as i64 * 7 - rng.below(300) as i64, offset));
    h += &format!("From: {from}\n");
    h += &format!("To: {owner}@{domain}\n");
    if rng.chance(0.3) {
        h += &format!("Cc: {} <list@{domain}>, other@{domain}\n", rng.pick(NAMES));
    }
    h += &format!("Subject: {subject}\n");
    h += &format!("Message-ID: <{:x}.{n}@{domain}>\n", rng.next_u64());
    if rng.chance(0.3) {
        let r = rng.next_u64();
        h +=
            &format!("In-Reply-To: <{r:x}@{domain}>\nReferences: <{:x}@{domain}>\n <{r:x}@{domain}>\n", rng.next_u64());
    }
    h += "MIME-Version: 1.0\n";
    let kind = rng.below(100);
    let mut body = String::new();
    let text_len = |rng: &mut Rng, budget: usize| (budget / 7).clamp(20, 40_000) + rng.below(10) as usize;
    if kind < 55 || size < 1200 {
        let cs = if eight_bit { "utf-8" } else { "us-ascii" };
        h += &format!("Content-Type: text/plain; charset={cs}\n");
        if eight_bit {
            h += "Content-Transfer-Encoding: 8bit\n";
        }
        let n = text_len(rng, size.saturating_sub(h.len()));
        body += &words(rng, n, if eight_bit { Words::Mixed } else { Words::Ascii });
        body.push('\n');
    } else {
        let boundary = format!("=_b{:x}", rng.next_u64());
        let sub = if kind < 80 { "alternative" } else { "mixed" };
        h += &format!("Content-Type: multipart/{sub};\n boundary=\"{boundary}\"\n");
        body += "This is a multi-part message in MIME format.\n";
        let n = text_len(rng, (size / 3).min(8000));
        let text = words(rng, n, if eight_bit { Words::Mixed } else { Words::Ascii });
        body += &format!(
            "--{boundary}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{text}\n"
        );
        if sub == "alternative" {
            body += &format!(
                "--{boundary}\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n<html><body><p>{}</p></body></html>\n",
                text.replace('\n', "=\n").replace("=\n", "<br>=\n")
            );
        } else {
            if rng.chance(0.2) {
                body += &format!(
                    "--{boundary}\nContent-Type: message/rfc822\nContent-Disposition: inline\n\nFrom: {}\nSubject: forwarded {n}\nDate: {}\nMessage-ID: <fwd{n}@{domain}>\n\n{}\n",
                    rng.pick(NAMES),
                    rfc5322_date(date - 86_400, offset),
                    words(rng, 40, Words::Ascii)
                );
            }
            let attach = size.saturating_sub(h.len() + body.len()).max(64) * 3 / 4;
            let mut raw = vec![0u8; attach];
            for chunk in raw.chunks_mut(8) {
                let r = rng.next_u64().to_le_bytes();
                chunk.copy_from_slice(&r[..chunk.len()]);
            }
            let enc = base64::engine::general_purpose::STANDARD.encode(&raw);
            let ext =
                rng.pick(&[("application", "pdf", "pdf"), ("image", "jpeg", "jpg"), ("application", "zip", "zip")]);
            body += &format!(
                "--{boundary}\nContent-Type: {}/{}; name=\"report {n}.{}\"\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"report {n}.{}\"\n\n",
                ext.0, ext.1, ext.2, ext.2
            );
            for line in enc.as_bytes().chunks(76) {
                body.push_str(std::str::from_utf8(line).unwrap_or_default());
                body.push('\n');
            }
        }
        body += &format!("--{boundary}--\n");
    }
    let mut out = h;
    out.push('\n');
    out += &body;
    if crlf { out.replace('\n', "\r\n").into_bytes() } else { out.into_bytes() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_have_the_documented_shape() {
        let mut rng = Rng::new(1);
        let mut v: Vec<usize> = (0..20_000).map(|_| target_size(&mut rng)).collect();
        v.sort_unstable();
        let median = v[v.len() / 2];
        assert!((3000..6000).contains(&median), "median {median}");
        assert!(v[0] >= 300 && *v.last().expect("non-empty") <= 1 << 20);
        assert!(v[v.len() * 999 / 1000] > 100_000, "long tail: p99.9 = {}", v[v.len() * 999 / 1000]);
    }

    #[test]
    fn messages_are_deterministic_and_parse() {
        let a: Vec<Vec<u8>> = {
            let mut r = Rng::new(7);
            (0..50).map(|i| message(&mut r, "example.com", "joe", i, 1_700_000_000, 60)).collect()
        };
        let b: Vec<Vec<u8>> = {
            let mut r = Rng::new(7);
            (0..50).map(|i| message(&mut r, "example.com", "joe", i, 1_700_000_000, 60)).collect()
        };
        assert_eq!(a, b);
        for m in &a {
            let s = crate::message::parse_structure(m).expect("generated messages parse");
            assert!(!s.parts.is_empty());
            let split = crate::message::split(m);
            let env = crate::message::Envelope::from_header(&m[..split.header_len]);
            assert!(env.date.as_deref().and_then(crate::message::parse_date).is_some());
        }
    }
}
