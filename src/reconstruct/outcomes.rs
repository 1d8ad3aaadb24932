//! The outcomes of a mailbox's message files, in UID order, as the merge and the writer
//! read them (several passes): in memory for most mailboxes; for a mailbox of many
//! messages, set aside as they are placed in an unnamed file on the mailbox's own file
//! system (`O_TMPFILE`, mode 0600: nothing to find, nothing left behind by a crash) and
//! read back a window at a time. A million outcomes are 144 MB in memory; in the file they
//! sit in the page cache, which the kernel can write out and reclaim, and the run's own
//! memory stays the size of a window.
//!
//! The file lives only as long as the run and is never read by anything else, so its
//! encoding is this module's (a tag byte, then the fields, little-endian); it is not a
//! store format and has no spec under `formats/`. Writing or reading it back failing
//! (a full or failing disk) fails the mailbox before anything of it is written: a short
//! read never looks like files gone.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};

use parking_lot::Mutex;

use super::merge::{Derived, FileInfo, FileOutcome};
use crate::codec::Sequential;
use crate::message::DateTime;

/// A mailbox with at least this many message files keeps its outcomes in a file.
pub const SPILL_AT: usize = 65_536;

/// Bytes read or written at a time.
const WINDOW: usize = 256 * 1024;

/// The outcomes of a mailbox's files, appended in UID order.
pub struct Outcomes {
    mem: Vec<FileOutcome>,
    spill: Option<Spill>,
    /// Outcomes appended (in memory or to the file).
    count: usize,
    /// UID of the last outcome appended: each must be above the one before.
    last_uid: u32,
    /// No outcome came out of UID order (`false` only in memory: sorted when sealed).
    sorted: bool,
    /// What went wrong writing or reading back the file (the mailbox then fails).
    error: Mutex<Option<String>>,
}

/// The file outcomes are set aside in: written through a buffer, then read by offset.
struct Spill {
    out: Option<BufWriter<File>>,
    file: Option<crate::io::FileSource>,
}

impl Default for Outcomes {
    fn default() -> Outcomes {
        Outcomes { mem: Vec::new(), spill: None, count: 0, last_uid: 0, sorted: true, error: Mutex::new(None) }
    }
}

impl std::fmt::Debug for Outcomes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Outcomes({} {})", self.count, if self.spill.is_some() { "set aside" } else { "in memory" })
    }
}

impl From<Vec<FileOutcome>> for Outcomes {
    /// Outcomes in memory; they must be sorted by UID, one per UID.
    fn from(mut mem: Vec<FileOutcome>) -> Outcomes {
        mem.sort_unstable_by_key(FileOutcome::uid);
        Outcomes { count: mem.len(), last_uid: mem.last().map_or(0, FileOutcome::uid), mem, ..Outcomes::default() }
    }
}

impl Outcomes {
    /// Room for `n` outcomes: in memory, or, from `spill_at` files on, in an unnamed file
    /// created in `dir` (the locked mailbox directory) when it can be (else in memory).
    pub fn for_files(n: usize, spill_at: usize, dir: Option<&File>) -> Outcomes {
        if n >= spill_at {
            if let Some(file) = dir.and_then(|d| unnamed_file_in(d).ok()) {
                let spill = Spill { out: Some(BufWriter::with_capacity(WINDOW, file)), file: None };
                return Outcomes { spill: Some(spill), ..Outcomes::default() };
            }
        }
        Outcomes { mem: Vec::with_capacity(n), ..Outcomes::default() }
    }

    /// Whether the outcomes are in a file.
    pub fn set_aside(&self) -> bool {
        self.spill.is_some()
    }

    /// Outcomes appended.
    pub fn len(&self) -> usize {
        self.count
    }

    /// None appended.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Append `more` (drained), which follow every outcome appended so far in UID order.
    pub fn append(&mut self, more: &mut Vec<FileOutcome>) {
        for (i, o) in more.iter().enumerate() {
            if o.uid() <= self.last_uid && self.count + i > 0 {
                // In memory they are sorted when sealed; a file is read only in order.
                self.sorted = false;
                if self.spill.is_some() {
                    self.fail(format!("outcome of UID {} after UID {}: not in UID order", o.uid(), self.last_uid));
                }
            }
            self.last_uid = o.uid();
        }
        self.count += more.len();
        let Some(spill) = self.spill.as_mut() else {
            self.mem.append(more);
            return;
        };
        let mut failed = None;
        if let Some(out) = spill.out.as_mut() {
            let mut buf = Vec::with_capacity(more.len() * 128);
            for o in more.drain(..) {
                encode(&mut buf, &o);
            }
            if let Err(e) = out.write_all(&buf) {
                failed = Some(e);
            }
        }
        more.clear();
        if let Some(e) = failed {
            self.fail(format!("writing the run's outcomes aside in the mailbox directory failed: {e}"));
        }
    }

    /// Done appending: sort what is in memory, or flush the file, so that it can be read.
    pub fn seal(&mut self) {
        if !self.sorted && self.spill.is_none() {
            // One outcome per listed file (UIDs unique): sorted in place, no buffer.
            self.mem.sort_unstable_by_key(FileOutcome::uid);
            self.sorted = true;
        }
        let Some(spill) = self.spill.as_mut() else { return };
        let Some(out) = spill.out.take() else { return };
        match out.into_inner() {
            Ok(f) => match crate::io::FileSource::new(f) {
                Ok(src) => spill.file = Some(src),
                Err(e) => self.fail(format!("reading back the run's outcomes from the mailbox directory failed: {e}")),
            },
            Err(e) => {
                let e = e.into_error();
                self.fail(format!("writing the run's outcomes aside in the mailbox directory failed: {e}"));
            }
        }
    }

    fn fail(&self, why: String) {
        self.error.lock().get_or_insert(why);
    }

    /// What went wrong setting the outcomes aside or reading them back, if anything: the
    /// mailbox must then not be written.
    pub fn error(&self) -> Option<String> {
        self.error.lock().clone()
    }

    /// Every outcome, in UID order (read back from the file a window at a time; a failed
    /// read ends the iteration early and is kept in [`Outcomes::error`]).
    pub fn iter(&self) -> Iter<'_> {
        match &self.spill {
            None => Iter::Mem(self.mem.iter()),
            Some(spill) => match &spill.file {
                Some(file) => Iter::File {
                    read: BufReader::with_capacity(WINDOW, Sequential::new(file)),
                    left: self.count,
                    of: self,
                },
                None => {
                    self.fail("the run's outcomes were read before they were all written".into());
                    Iter::Mem([].iter())
                }
            },
        }
    }
}

/// See [`Outcomes::iter`].
pub enum Iter<'a> {
    /// From memory.
    Mem(std::slice::Iter<'a, FileOutcome>),
    /// From the file.
    File {
        /// The file from its start.
        read: BufReader<Sequential<'a>>,
        /// Outcomes still to read.
        left: usize,
        /// Where a failure is kept.
        of: &'a Outcomes,
    },
}

impl Iterator for Iter<'_> {
    type Item = FileOutcome;
    fn next(&mut self) -> Option<FileOutcome> {
        match self {
            Iter::Mem(it) => it.next().cloned(),
            Iter::File { read, left, of } => {
                if *left == 0 {
                    return None;
                }
                match decode(read) {
                    Ok(o) => {
                        *left -= 1;
                        Some(o)
                    }
                    Err(e) => {
                        of.fail(format!(
                            "reading back the run's outcomes from the mailbox directory failed ({left} of {} left): {e}",
                            of.count
                        ));
                        *left = 0;
                        None
                    }
                }
            }
        }
    }
}

/// A new unnamed file on the file system of `dir`, mode 0600 whatever the umask: it has
/// no name anyone could open or swap, and disappears when closed (or the run dies).
fn unnamed_file_in(dir: &File) -> std::io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let fd =
        rustix::fs::openat(dir, ".", OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC, Mode::from_raw_mode(0o600))?;
    Ok(File::from(fd))
}

const MATCHED: u8 = 1;
const READ: u8 = 2;
const EMPTY: u8 = 3;
const UNREADABLE: u8 = 4;
const VANISHED: u8 = 5;

fn put_info(b: &mut Vec<u8>, f: &FileInfo) {
    b.extend_from_slice(&f.uid.to_le_bytes());
    b.extend_from_slice(&f.size.to_le_bytes());
    b.extend_from_slice(&f.mtime.to_le_bytes());
}

fn put_date(b: &mut Vec<u8>, d: Option<DateTime>) {
    match d {
        None => b.push(0),
        Some(d) => {
            b.push(1);
            b.extend_from_slice(&d.unix.to_le_bytes());
            b.extend_from_slice(&d.offset_minutes.to_le_bytes());
        }
    }
}

/// Append the encoding of `o` to `b`.
fn encode(b: &mut Vec<u8>, o: &FileOutcome) {
    match o {
        FileOutcome::Matched(f) => {
            b.push(MATCHED);
            put_info(b, f);
        }
        FileOutcome::Empty(f) => {
            b.push(EMPTY);
            put_info(b, f);
        }
        FileOutcome::Read(f, d) => {
            b.push(READ);
            put_info(b, f);
            b.extend_from_slice(&d.content_hash);
            b.extend_from_slice(&d.prefix_hash.to_le_bytes());
            b.extend_from_slice(&d.header_size.to_le_bytes());
            put_date(b, d.sent_date);
            put_date(b, d.received_date);
            match d.cache {
                None => b.push(0),
                Some((at, len)) => {
                    b.push(1);
                    b.extend_from_slice(&at.to_le_bytes());
                    b.extend_from_slice(&len.to_le_bytes());
                }
            }
        }
        FileOutcome::Unreadable { uid, error } => {
            b.push(UNREADABLE);
            b.extend_from_slice(&uid.to_le_bytes());
            b.extend_from_slice(&(error.len() as u32).to_le_bytes());
            b.extend_from_slice(error.as_bytes());
        }
        FileOutcome::Vanished { uid } => {
            b.push(VANISHED);
            b.extend_from_slice(&uid.to_le_bytes());
        }
    }
}

fn take<const N: usize>(r: &mut impl Read) -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

fn get_info(r: &mut impl Read) -> std::io::Result<FileInfo> {
    Ok(FileInfo {
        uid: u32::from_le_bytes(take(r)?),
        size: u64::from_le_bytes(take(r)?),
        mtime: i64::from_le_bytes(take(r)?),
    })
}

/// A presence byte: 0 or 1.
fn present(r: &mut impl Read) -> std::io::Result<bool> {
    match take::<1>(r)? {
        [0] => Ok(false),
        [1] => Ok(true),
        [b] => Err(invalid(format!("presence byte {b}, not 0 or 1"))),
    }
}

fn get_date(r: &mut impl Read) -> std::io::Result<Option<DateTime>> {
    Ok(if present(r)? {
        Some(DateTime { unix: i64::from_le_bytes(take(r)?), offset_minutes: i16::from_le_bytes(take(r)?) })
    } else {
        None
    })
}

fn invalid(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

/// The next outcome of `r`.
fn decode(r: &mut impl Read) -> std::io::Result<FileOutcome> {
    let [tag] = take::<1>(r)?;
    Ok(match tag {
        MATCHED => FileOutcome::Matched(get_info(r)?),
        EMPTY => FileOutcome::Empty(get_info(r)?),
        READ => {
            let f = get_info(r)?;
            let d = Derived {
                content_hash: take(r)?,
                prefix_hash: u64::from_le_bytes(take(r)?),
                header_size: u32::from_le_bytes(take(r)?),
                sent_date: get_date(r)?,
                received_date: get_date(r)?,
                cache: if present(r)? {
                    Some((u64::from_le_bytes(take(r)?), u32::from_le_bytes(take(r)?)))
                } else {
                    None
                },
            };
            FileOutcome::Read(f, d)
        }
        UNREADABLE => {
            let uid = u32::from_le_bytes(take(r)?);
            let len = u32::from_le_bytes(take(r)?) as u64;
            // Bounded by what the file holds, not by the length it says.
            let mut error = Vec::new();
            r.take(len).read_to_end(&mut error)?;
            if error.len() as u64 != len {
                return Err(invalid(format!("an error text of {len} bytes ends after {}", error.len())));
            }
            let error = String::from_utf8(error).map_err(|_| invalid("an error text that is not UTF-8".into()))?;
            FileOutcome::Unreadable { uid, error }
        }
        VANISHED => FileOutcome::Vanished { uid: u32::from_le_bytes(take(r)?) },
        t => return Err(invalid(format!("unknown outcome tag {t}"))),
    })
}

/// The encoding of `outs`, as [`Outcomes`] sets them aside (for the fuzz target).
#[doc(hidden)]
pub fn encode_all(outs: &[FileOutcome]) -> Vec<u8> {
    let mut b = Vec::new();
    for o in outs {
        encode(&mut b, o);
    }
    b
}

/// Every outcome of `bytes`, or the error of the first that does not decode, with its
/// byte offset (for the fuzz target: the file itself is only ever read by its writer).
#[doc(hidden)]
pub fn decode_all(bytes: &[u8]) -> Result<Vec<FileOutcome>, (u64, std::io::Error)> {
    let mut r = bytes;
    let mut out = Vec::new();
    while !r.is_empty() {
        let at = (bytes.len() - r.len()) as u64;
        out.push(decode(&mut r).map_err(|e| (at, e))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kinds() -> Vec<FileOutcome> {
        let info = |uid| FileInfo { uid, size: 1000 + uid as u64, mtime: -5 + uid as i64 };
        let d = |n: u8, cache| Derived {
            content_hash: [n; 32],
            prefix_hash: u64::MAX - n as u64,
            header_size: 77,
            sent_date: (n % 2 == 0).then_some(DateTime { unix: -1_000_000, offset_minutes: -480 }),
            received_date: Some(DateTime { unix: 1_700_000_000, offset_minutes: 60 }),
            cache,
        };
        vec![
            FileOutcome::Matched(info(1)),
            FileOutcome::Read(info(2), d(2, Some((u64::MAX / 3, 4096)))),
            FileOutcome::Read(info(3), d(3, None)),
            FileOutcome::Empty(info(5)),
            FileOutcome::Unreadable { uid: 8, error: "Permission denied (os error 13): ünïcode".into() },
            FileOutcome::Vanished { uid: 9 },
            FileOutcome::Unreadable { uid: 10, error: String::new() },
        ]
    }

    #[test]
    fn every_kind_of_outcome_reads_back_as_it_was_written() {
        for o in all_kinds() {
            let mut b = Vec::new();
            encode(&mut b, &o);
            let mut r = &b[..];
            assert_eq!(decode(&mut r).expect("decodes"), o);
            assert!(r.is_empty(), "{o:?}: all of its bytes and no more");
        }
    }

    #[test]
    fn a_cut_or_unknown_encoding_is_an_error_not_a_panic() {
        for o in all_kinds() {
            let mut b = Vec::new();
            encode(&mut b, &o);
            for cut in 0..b.len() {
                assert!(decode(&mut &b[..cut]).is_err(), "{o:?} cut at {cut}");
            }
        }
        assert!(decode(&mut &[0u8, 1, 2, 3, 4][..]).is_err());
        // A presence byte other than 0 or 1, an error text that is not UTF-8.
        let mut b = Vec::new();
        encode(&mut b, &all_kinds()[2]);
        let flag = 1 + 20 + 32 + 8 + 4;
        assert_eq!(b[flag], 0, "the sent date's presence byte");
        b[flag] = 2;
        assert!(decode(&mut &b[..]).is_err());
        let mut b = vec![UNREADABLE];
        b.extend_from_slice(&7u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&[0xff, 0xfe]);
        assert!(decode(&mut &b[..]).is_err());
        let all = encode_all(&all_kinds());
        assert_eq!(decode_all(&all).expect("decodes"), all_kinds());
        let before_last = encode_all(&all_kinds()[..all_kinds().len() - 1]).len() as u64;
        assert_eq!(decode_all(&all[..all.len() - 1]).expect_err("cut").0, before_last, "offset of the cut one");
        // An error text that says it is longer than the file: no allocation of its size.
        let mut b = vec![UNREADABLE];
        b.extend_from_slice(&7u32.to_le_bytes());
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&mut &b[..]).is_err());
    }

    #[test]
    fn outcomes_set_aside_in_an_unnamed_file_read_back_in_order_as_often_as_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = File::open(dir.path()).expect("open dir");
        let mut outs = Outcomes::for_files(3, 0, Some(&d));
        assert!(outs.set_aside(), "O_TMPFILE in a temporary directory");
        let out = outs.spill.as_ref().and_then(|s| s.out.as_ref()).expect("being written");
        use std::os::unix::fs::MetadataExt;
        let mode = out.get_ref().metadata().expect("fstat").mode();
        assert_eq!(mode & 0o777, 0o600, "readable by its owner only, whatever the umask: {mode:o}");
        let all = all_kinds();
        for chunk in all.chunks(3) {
            outs.append(&mut chunk.to_vec());
        }
        outs.seal();
        assert_eq!(outs.len(), all.len());
        for _ in 0..2 {
            assert_eq!(outs.iter().collect::<Vec<_>>(), all);
        }
        assert_eq!(outs.error(), None);
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0, "the file has no name");
        let mem = Outcomes::for_files(3, 100, Some(&d));
        assert!(!mem.set_aside(), "below the threshold: in memory");
    }

    #[test]
    fn outcomes_out_of_uid_order_or_read_before_sealing_are_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = File::open(dir.path()).expect("open dir");
        let mut outs = Outcomes::for_files(3, 0, Some(&d));
        outs.append(&mut vec![FileOutcome::Vanished { uid: 4 }]);
        assert_eq!(outs.iter().count(), 0);
        assert!(outs.error().is_some_and(|e| e.contains("before they were all written")));
        let mut outs = Outcomes::for_files(3, 0, Some(&d));
        outs.append(&mut vec![FileOutcome::Vanished { uid: 4 }, FileOutcome::Vanished { uid: 4 }]);
        assert!(outs.error().is_some_and(|e| e.contains("not in UID order")), "{:?}", outs.error());
    }
}
