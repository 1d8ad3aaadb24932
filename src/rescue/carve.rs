//! Carving: find known messages on a raw device or image that no directory entry points
//! to any more (their inode was cleared), in one sequential read-only pass.
//!
//! Every record carries a prefix hash: XXH3-64 of the message's first `min(size, 512)`
//! bytes (`formats/index.md`, "Prefix hash"). File data starts at a block boundary, so at
//! every 512-byte sector of the device the pass hashes the sector (and, for the rare
//! wanted message shorter than a sector, its first `size` bytes) and looks the hash up;
//! a hit is confirmed by the BLAKE3 of `size` bytes from there. A contiguous file is found
//! whole; a fragmented one fails the confirmation and is reported as such.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::store::derive::PREFIX_LEN;

/// Sector size the pass steps by.
pub const SECTOR: usize = 512;
/// Bytes read at a time.
const CHUNK: usize = 8 << 20;
/// Most distinct sizes under one sector looked for at every sector (each costs a hash
/// per sector).
const MAX_SMALL_SIZES: usize = 64;

/// A message to look for.
#[derive(Clone, Copy, Debug)]
pub struct Sought {
    /// The caller's index.
    pub id: usize,
    /// Size.
    pub size: u64,
    /// BLAKE3 of the whole message.
    pub hash: [u8; 32],
    /// Its prefix hash (non-zero).
    pub prefix: u64,
}

/// What a pass found.
#[derive(Clone, Debug, Default)]
pub struct Carved {
    /// Confirmed: (caller's index, byte offset on the device).
    pub found: Vec<(usize, u64)>,
    /// The first bytes matched but the whole did not (fragmented, or partly overwritten):
    /// (caller's index, offset).
    pub partial: Vec<(usize, u64)>,
    /// Sizes under a sector that were not looked for (too many distinct ones).
    pub skipped_small: usize,
    /// Bytes read.
    pub bytes: u64,
}

/// Scan `image` for `sought` (one pass, read-only). `progress` gets the bytes read so far.
pub fn carve(image: &Path, sought: &[Sought], mut progress: impl FnMut(u64)) -> std::io::Result<Carved> {
    let f = File::open(image)?;
    let len = device_len(&f)?;
    let mut out = Carved::default();
    // Prefix hash → what it may start.
    let mut by_prefix: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut small_sizes: Vec<usize> = Vec::new();
    for (i, s) in sought.iter().enumerate() {
        if s.prefix == 0 || s.size == 0 {
            continue;
        }
        by_prefix.entry(s.prefix).or_default().push(i);
        if (s.size as usize) < PREFIX_LEN && !small_sizes.contains(&(s.size as usize)) {
            small_sizes.push(s.size as usize);
        }
    }
    if small_sizes.len() > MAX_SMALL_SIZES {
        out.skipped_small = small_sizes.len() - MAX_SMALL_SIZES;
        small_sizes.truncate(MAX_SMALL_SIZES);
    }
    let mut done: HashSet<usize> = HashSet::new();
    let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::Sequential);
    // A bitmap of the prefix hashes sought: almost every sector is rejected by one bit.
    let mut bits = vec![0u64; FILTER_BITS / 64];
    for &h in by_prefix.keys() {
        let b = (h as usize) & (FILTER_BITS - 1);
        bits[b / 64] |= 1 << (b % 64);
    }
    let filter = Filter { bits: &bits, small_sizes: &small_sizes };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let total: usize = by_prefix.values().map(Vec::len).sum();
    let chunk_at = |pos: u64| ((len - pos) as usize).min(CHUNK);
    let mut cur = vec![0u8; CHUNK];
    let mut next = vec![0u8; CHUNK];
    let mut pos: u64 = 0;
    let mut n = if len > 0 { read_full(&f, &mut cur[..chunk_at(0)], 0)? } else { 0 };
    while n > 0 {
        let next_pos = pos + n as u64;
        // The next chunk is read while this one is hashed, on every core.
        let (hits, read_next) = std::thread::scope(|sc| {
            let reader = (next_pos < len).then(|| {
                let buf = &mut next[..chunk_at(next_pos)];
                let f = &f;
                sc.spawn(move || read_full(f, buf, next_pos))
            });
            let chunk = &cur[..n];
            let per = (n / SECTOR).div_ceil(threads).max(1) * SECTOR;
            let workers: Vec<_> = (0..n)
                .step_by(per)
                .map(|start| {
                    let filter = &filter;
                    sc.spawn(move || filter.scan(chunk, start, (start + per).min(n), pos, len))
                })
                .collect();
            let mut hits = Vec::new();
            for w in workers {
                hits.extend(w.join().map_err(|_| std::io::Error::other("a carving thread failed"))?);
            }
            let read_next = match reader {
                Some(r) => r.join().map_err(|_| std::io::Error::other("the carving reader failed"))??,
                None => 0,
            };
            Ok::<_, std::io::Error>((hits, read_next))
        })?;
        for (off, h) in hits {
            let Some(cands) = by_prefix.get(&h) else { continue };
            for &i in cands {
                if done.contains(&i) {
                    continue;
                }
                let s = &sought[i];
                let at = pos + off as u64;
                if confirm(&f, at, s).unwrap_or(false) {
                    out.found.push((s.id, at));
                    done.insert(i);
                } else {
                    out.partial.push((s.id, at));
                }
            }
        }
        std::mem::swap(&mut cur, &mut next);
        pos = next_pos;
        n = read_next;
        out.bytes = pos;
        progress(pos);
        if done.len() == total {
            break;
        }
    }
    // A partial match of a message found elsewhere on the device is not a failure.
    let found: HashSet<usize> = out.found.iter().map(|f| f.0).collect();
    out.partial.retain(|p| !found.contains(&p.0));
    out.partial.sort_unstable();
    out.partial.dedup_by_key(|p| p.0);
    Ok(out)
}

/// Bits of the pre-filter (512 KiB): with 100,000 hashes sought, 2% of sectors reach the map.
const FILTER_BITS: usize = 1 << 22;

/// What each sector is tested against.
struct Filter<'a> {
    bits: &'a [u64],
    small_sizes: &'a [usize],
}

impl Filter<'_> {
    fn maybe(&self, h: u64) -> bool {
        let b = (h as usize) & (FILTER_BITS - 1);
        self.bits[b / 64] & (1 << (b % 64)) != 0
    }

    /// The sectors of `chunk[start..end]` (the chunk is at byte `pos` of a device of `len`
    /// bytes) whose prefix hash may be sought: (offset in the chunk, hash).
    fn scan(&self, chunk: &[u8], start: usize, end: usize, pos: u64, len: u64) -> Vec<(usize, u64)> {
        let mut hits = Vec::new();
        let n = chunk.len();
        let mut off = start;
        while off < end && (off + SECTOR <= n || pos + off as u64 + SECTOR as u64 > len) {
            let sector = &chunk[off..(off + SECTOR).min(n)];
            if sector.len() == SECTOR {
                let h = fixed(xxhash_rust::xxh3::xxh3_64(sector));
                if self.maybe(h) {
                    hits.push((off, h));
                }
            }
            for &sz in self.small_sizes {
                if sz <= sector.len() {
                    let h = fixed(xxhash_rust::xxh3::xxh3_64(&sector[..sz]));
                    if self.maybe(h) {
                        hits.push((off, h));
                    }
                }
            }
            off += SECTOR;
        }
        hits
    }
}

/// The prefix hash as stored (0 means unknown, so a real 0 is 1).
fn fixed(h: u64) -> u64 {
    if h == 0 { 1 } else { h }
}

/// Whether `size` bytes at `at` have the sought BLAKE3.
/// Whether the `s.size` bytes at `at` have the BLAKE3 sought.
pub fn confirm(f: &File, at: u64, s: &Sought) -> std::io::Result<bool> {
    let mut h = blake3::Hasher::new();
    let mut left = s.size;
    let mut p = at;
    let mut buf = vec![0u8; (s.size as usize).min(1 << 20)];
    while left > 0 {
        let k = (left as usize).min(buf.len());
        let n = read_full(f, &mut buf[..k], p)?;
        if n < k {
            return Ok(false);
        }
        h.update(&buf[..k]);
        left -= k as u64;
        p += k as u64;
    }
    Ok(*h.finalize().as_bytes() == s.hash)
}

/// Read `buf.len()` bytes at `at` (fewer only at the end of the device).
pub fn read_full(f: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], at + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Length of a regular file or a block device.
pub fn device_len(f: &File) -> std::io::Result<u64> {
    use std::io::Seek;
    let mut g = f;
    let end = g.seek(std::io::SeekFrom::End(0))?;
    g.seek(std::io::SeekFrom::Start(0))?;
    Ok(end)
}

/// Read `size` bytes at `at` of `image`.
pub fn read_extent(image: &Path, at: u64, size: u64) -> std::io::Result<Vec<u8>> {
    let f = File::open(image)?;
    let mut buf = vec![0u8; size as usize];
    let n = read_full(&f, &mut buf, at)?;
    if n as u64 != size {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "extent past the end of the image"));
    }
    Ok(buf)
}

/// Largest store file taken from an image.
const STORE_FILE_CAP: u64 = 1 << 30;

/// The store's own files still on an image whose inodes were lost (an index, a change
/// log, a header: their blocks are free but hold what they held), found by their magic at
/// sector boundaries in one sequential pass; each is handed to `each` with its offset, cut
/// to the length its own header gives (a log: as far as its records verify). Older
/// generations are found too: the catalog keeps the newest state of each message and a
/// complete checkpoint says what was expunged since.
pub fn scan_store_files(
    image: &Path,
    mut each: impl FnMut(super::catalog::FileKind, u64, &[u8]),
) -> std::io::Result<u64> {
    use super::catalog::FileKind;
    let f = File::open(image)?;
    let len = device_len(&f)?;
    let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::Sequential);
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0u64;
    let mut found = 0;
    while pos < len {
        let n = read_full(&f, &mut buf[..((len - pos) as usize).min(CHUNK)], pos)?;
        if n == 0 {
            break;
        }
        let mut off = 0;
        while off + 64 <= n {
            let head = &buf[off..off + 64];
            let kind = match &head[..8] {
                m if m == crate::format::header::MAGIC => Some(FileKind::Header),
                m if m == crate::format::index::MAGIC => Some(FileKind::Index),
                m if m == crate::format::changelog::MAGIC => Some(FileKind::Log),
                _ => None,
            };
            if let Some(kind) = kind {
                let at = pos + off as u64;
                let bytes = match kind {
                    FileKind::Header => {
                        let total = u32::from_le_bytes([head[12], head[13], head[14], head[15]]) as u64;
                        if (68..=65536).contains(&total) { read_at_most(&f, at, total, len)? } else { Vec::new() }
                    }
                    FileKind::Index => {
                        let count = u32::from_le_bytes([head[48], head[49], head[50], head[51]]) as u64;
                        let want = (128 + 128 * count).min(STORE_FILE_CAP);
                        read_at_most(&f, at, want, len)?
                    }
                    _ => read_log(&f, at, len)?,
                };
                if !bytes.is_empty() {
                    found += 1;
                    each(kind, at, &bytes);
                }
            }
            off += SECTOR;
        }
        pos += n as u64;
    }
    Ok(found)
}

/// The store files an earlier pass found on `image` (kind name, offset, length), read
/// again where they are, without a pass.
pub fn read_store_files(
    image: &Path,
    files: &[super::state::StoreFileAt],
    mut each: impl FnMut(super::catalog::FileKind, u64, &[u8]),
) -> std::io::Result<()> {
    let f = File::open(image)?;
    let len = device_len(&f)?;
    for (kind, off, n) in files {
        let Some(kind) = super::catalog::FileKind::from_name(kind) else { continue };
        let bytes = read_at_most(&f, *off, (*n).min(STORE_FILE_CAP), len)?;
        if !bytes.is_empty() {
            each(kind, *off, &bytes);
        }
    }
    Ok(())
}

/// `want` bytes at `at`, fewer at the end of the device.
fn read_at_most(f: &File, at: u64, want: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let n = want.min(len.saturating_sub(at)) as usize;
    let mut b = vec![0u8; n];
    let got = read_full(f, &mut b, at)?;
    b.truncate(got);
    Ok(b)
}

/// A change log at `at`: read in growing windows while its records keep verifying up to
/// the end of the window; cut where they stop.
fn read_log(f: &File, at: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut window = 1u64 << 20;
    loop {
        let b = read_at_most(f, at, window, len)?;
        let Ok(scan) = crate::codec::changelog::scan_each(&b, |_, _, _| {}) else { return Ok(Vec::new()) };
        let end = scan.valid_end as usize;
        if end + (64 << 10) < b.len() || (b.len() as u64) < window || window >= STORE_FILE_CAP {
            let mut b = b;
            b.truncate(end);
            return Ok(b);
        }
        window *= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::derive::{content_hash, prefix_hash};

    fn sought(id: usize, m: &[u8]) -> Sought {
        Sought { id, size: m.len() as u64, hash: content_hash(m), prefix: prefix_hash(m) }
    }

    #[test]
    fn finds_contiguous_messages_at_any_sector_and_reports_fragments() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let img = tmp.path().join("disk.img");
        let mut dev = vec![0xA5u8; 40 * 4096];
        let big: Vec<u8> = (0..9000u32).map(|i| (i * 7 % 251) as u8).collect();
        let small = b"Subject: tiny\r\n\r\nhi\r\n".to_vec();
        let frag: Vec<u8> = (0..3000u32).map(|i| (i * 13 % 241) as u8).collect();
        dev[4096..4096 + big.len()].copy_from_slice(&big);
        dev[7 * 512..7 * 512 + small.len()].copy_from_slice(&small);
        // Fragmented: its first 1024 bytes here, the rest elsewhere.
        dev[20 * 4096..20 * 4096 + 1024].copy_from_slice(&frag[..1024]);
        dev[30 * 4096..30 * 4096 + 1976].copy_from_slice(&frag[1024..]);
        std::fs::write(&img, &dev).expect("write");
        let absent = b"Subject: never written\r\n\r\nno\r\n".repeat(40);
        let s = [sought(1, &big), sought(2, &small), sought(3, &frag), sought(4, &absent)];
        let r = carve(&img, &s, |_| {}).expect("carve");
        let mut found = r.found.clone();
        found.sort_unstable();
        assert_eq!(found, [(1, 4096), (2, 7 * 512)]);
        assert_eq!(r.partial, [(3, 20 * 4096)]);
        assert_eq!(r.bytes, dev.len() as u64);
        assert_eq!(read_extent(&img, 4096, big.len() as u64).expect("read"), big);
    }

    #[test]
    fn a_garbage_image_finds_nothing_and_never_panics() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let img = tmp.path().join("garbage.img");
        let g: Vec<u8> = (0..100_003u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        std::fs::write(&img, &g).expect("write");
        let m = b"From: a\r\n\r\nx".to_vec();
        let r = carve(&img, &[sought(0, &m)], |_| {}).expect("carve");
        assert!(r.found.is_empty() && r.partial.is_empty());
        std::fs::write(&img, b"").expect("empty");
        assert!(carve(&img, &[sought(0, &m)], |_| {}).expect("carve").found.is_empty());
    }
}
