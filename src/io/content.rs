//! How much of a file to read: its real content, not its apparent size.
//!
//! A damaged or hostile file can claim gigabytes it does not hold: `truncate -s 3G ms.log`
//! makes a sparse file whose holes read as zeros. Reading it whole would cost memory and
//! time in proportion to the apparent size. [`content_len`] walks the file's data extents
//! (`SEEK_DATA`/`SEEK_HOLE`) and stops before the first hole larger than the data seen so
//! far plus [`HOLE_BUDGET`]: what lies beyond is zeros, or data placed far behind zeros,
//! which no store file ever holds (they are appended or replaced whole). A few zero bytes
//! of the hole are still read, so a reader sees the file go on with zeros where it stops
//! (a torn tail, a length that does not match), exactly as it would reading everything.
//!
//! Memory and time are then bounded by about twice the real content plus the budget. A
//! dense file (allocated blocks cover its size) costs one `statx` and is read whole.

use std::fs::File;

use rustix::fs::{AtFlags, SeekFrom, StatxFlags};

/// Zero bytes a file may hold in holes beyond the data it holds before a read stops.
pub const HOLE_BUDGET: u64 = 1 << 20;
/// Zero bytes of the hole where a read stops that are still read.
const HOLE_SHOWN: u64 = 4096;
/// Data extents walked at most (a file fragmented on purpose stops there).
const MAX_EXTENTS: u32 = 1 << 16;

/// The number of bytes from the start of `file` worth reading (see the module comment):
/// its size, unless holes beyond the budget make it shorter.
pub fn content_len(file: &File) -> std::io::Result<u64> {
    let st = rustix::fs::statx(file, c"", AtFlags::EMPTY_PATH, StatxFlags::SIZE | StatxFlags::BLOCKS)?;
    let size = st.stx_size;
    let allocated = st.stx_blocks.saturating_mul(512);
    if st.stx_mask & StatxFlags::BLOCKS.bits() == 0 || allocated.saturating_add(HOLE_BUDGET) >= size {
        return Ok(size);
    }
    // SEEK_DATA/SEEK_HOLE move the file offset: put it back for the caller's read.
    let here = rustix::fs::seek(file, SeekFrom::Current(0))?;
    let len = walk_extents(file, size);
    rustix::fs::seek(file, SeekFrom::Start(here))?;
    Ok(len)
}

fn walk_extents(file: &File, size: u64) -> u64 {
    let stop = |at: u64| at.saturating_add(HOLE_SHOWN).min(size);
    let (mut pos, mut data) = (0u64, 0u64);
    for _ in 0..MAX_EXTENTS {
        let start = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(s) => s,
            // No data after `pos` (ENXIO): the rest is one trailing hole.
            Err(rustix::io::Errno::NXIO) => break,
            // No SEEK_DATA here: read everything, as before.
            Err(_) => return size,
        };
        if start - pos > data + HOLE_BUDGET {
            return stop(pos);
        }
        let end = match rustix::fs::seek(file, SeekFrom::Hole(start)) {
            Ok(e) => e.min(size),
            Err(_) => return size,
        };
        data += end - start;
        pos = end;
        if pos >= size {
            return size;
        }
    }
    if size - pos > data + HOLE_BUDGET { stop(pos) } else { size }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};

    #[test]
    fn dense_files_are_read_whole_and_holes_beyond_the_budget_are_not() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("f");
        let mut f = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&p).expect("create");
        f.write_all(&[7u8; 10_000]).expect("write");
        assert_eq!(content_len(&f).expect("len"), 10_000);
        // A 3 GiB trailing hole: read stops 4 KiB into it (the data ends on a block).
        f.set_len(3 << 30).expect("extend");
        let n = content_len(&f).expect("len");
        assert!((10_000 + HOLE_SHOWN..=12_288 + HOLE_SHOWN).contains(&n), "{n}");
        // Data far behind the hole is not reached either.
        f.seek(std::io::SeekFrom::Start((3 << 30) - 10)).expect("seek");
        f.write_all(b"0123456789").expect("write");
        assert_eq!(content_len(&f).expect("len"), n);
        // The file offset is where it was: a read after it starts at the start.
        f.seek(std::io::SeekFrom::Start(0)).expect("seek");
        content_len(&f).expect("len");
        let mut again = [0u8; 4];
        std::io::Read::read_exact(&mut f, &mut again).expect("read");
        assert_eq!(again, [7; 4]);
        // A small hole (within the budget) is read through.
        let q = dir.path().join("g");
        let mut g = std::fs::File::create(&q).expect("create");
        g.write_all(&[1u8; 8192]).expect("write");
        g.seek(std::io::SeekFrom::Start(8192 + 65536)).expect("seek");
        g.write_all(&[2u8; 8192]).expect("write");
        assert_eq!(content_len(&g).expect("len"), 8192 + 65536 + 8192);
    }
}

/// An open file read by offset ([`crate::codec::ReadAt`]) up to its content length
/// ([`content_len`], taken when opened): a store file decoded a window at a time.
#[derive(Debug)]
pub struct FileSource {
    file: File,
    len: u64,
}

impl FileSource {
    /// `file`, its content length taken now.
    pub fn new(file: File) -> std::io::Result<FileSource> {
        let len = content_len(&file)?;
        Ok(FileSource { file, len })
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl crate::codec::ReadAt for FileSource {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = buf.len().min(self.len.saturating_sub(offset) as usize);
        let mut n = 0;
        while n < want {
            match self.file.read_at(&mut buf[n..want], offset + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod file_source_tests {
    use super::*;
    use crate::codec::changelog::{self, LogHeaderInfo, LogRecord};
    use crate::codec::index::{self, IndexHeaderInfo, MessageRecord};

    fn rec(uid: u32) -> MessageRecord {
        MessageRecord { uid, size: 1000 + u64::from(uid), modseq: u64::from(uid), ..MessageRecord::default() }
    }

    fn source(bytes: &[u8]) -> (tempfile::TempDir, FileSource) {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("f");
        std::fs::write(&p, bytes).expect("write");
        let src = FileSource::new(File::open(&p).expect("open")).expect("source");
        (dir, src)
    }

    #[test]
    fn an_index_and_a_log_of_several_windows_read_from_a_file_decode_as_their_bytes() {
        // 10,000 index records (more than one window of 8,192) and a log of 9,000 message
        // records (1.3 MB: two windows of 1 MiB), each damaged once past the first window.
        let id = [3u8; 16];
        let recs: Vec<MessageRecord> = (1..=10_000).map(rec).collect();
        let h = IndexHeaderInfo { unique_id: id, last_uid: 10_000, message_count: 10_000, ..Default::default() };
        let good_index = index::encode(&h, &recs);
        let mut bad_index = good_index.clone();
        bad_index[128 + 128 * 9_000 + 9] ^= 1;
        let mut log = changelog::encode_header(&LogHeaderInfo {
            unique_id: id,
            uid_validity: 1,
            base_seq: 0,
            created: 1,
            ceiling: 0,
        });
        for (i, r) in recs.iter().take(9_000).enumerate() {
            changelog::encode_record(&mut log, &id, i as u64 + 1, &LogRecord::Message(*r));
        }
        assert!(log.len() > 1 << 20);
        let mut bad_log = log.clone();
        let at = (1 << 20) + 77;
        bad_log[at] ^= 1;
        for bytes in [&good_index, &bad_index] {
            let (_d, src) = source(bytes);
            let got = index::decode_source(&src).expect("read");
            assert_eq!(got, index::decode(bytes));
        }
        for bytes in [&log, &bad_log] {
            let (_d, src) = source(bytes);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let whole = changelog::scan_each(bytes, |o, q, r| a.push((o, q, r)));
            let read = changelog::scan_source(&src, |o, q, r| b.push((o, q, r))).expect("read");
            assert_eq!(format!("{read:?}"), format!("{whole:?}"));
            assert_eq!(a, b);
            assert_eq!(b.len(), if bytes == &log { 9_000 } else { 8_999 });
        }
    }
}
