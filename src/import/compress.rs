//! Opening an mbox file that may be compressed: the format is told by its first bytes
//! (never by its name), and the file is decompressed as it is read.
//!
//! Supported: gzip (`flate2`, multi-member), bzip2 (`bzip2`, pure-Rust back end), xz and
//! lzip (`lzma-rust2`). zstd and compress(1) are recognised and refused with the command
//! that decompresses them. Decompression errors surface as read errors with the offset in
//! the uncompressed stream.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::ImportError;

/// How a file is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip (`.gz`).
    Gzip,
    /// bzip2 (`.bz2`).
    Bzip2,
    /// xz (`.xz`).
    Xz,
    /// lzip (`.lz`).
    Lzip,
}

impl Compression {
    /// Name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
            Compression::Lzip => "lzip",
        }
    }
}

/// Largest dictionary the xz decoder may allocate (KiB): xz's own presets stop at 64 MiB.
const XZ_MEM_LIMIT_KB: u32 = 512 * 1024;

/// Tell the compression from the first bytes; `Err` names a format we refuse.
pub fn sniff(head: &[u8]) -> Result<Compression, &'static str> {
    Ok(match head {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [b'B', b'Z', b'h', ..] => Compression::Bzip2,
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => Compression::Xz,
        [b'L', b'Z', b'I', b'P', ..] => Compression::Lzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => return Err("zstd-compressed: decompress it first (zstd -d -k FILE)"),
        [0x1f, 0x9d, ..] => return Err("compress(1)-compressed: decompress it first (uncompress FILE)"),
        _ => Compression::None,
    })
}

/// Counts the bytes read from the file (compressed bytes), for progress.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// An opened source file.
pub struct Opened {
    /// The decompressed bytes.
    pub reader: Box<dyn std::io::BufRead + Send>,
    /// The compression found.
    pub compression: Compression,
    /// Size of the file on disk.
    pub file_len: u64,
    /// Bytes of the file read so far.
    pub consumed: Arc<AtomicU64>,
}

/// Open `path`, decompressing if its first bytes say so.
pub fn open(path: &Path) -> Result<Opened, ImportError> {
    let read_err = |e| ImportError::Read { path: path.to_path_buf(), offset: 0, source: e };
    let mut file = File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if meta.is_dir() {
        return Err(ImportError::NotAMailbox {
            path: path.to_path_buf(),
            expected: "an mbox file",
            why: "it is a directory (use `mstore import maildir` for Maildir trees)".into(),
        });
    }
    let mut head = [0u8; 8];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_err(e)),
        }
    }
    let compression = sniff(&head[..got]).map_err(|why| ImportError::NotAMailbox {
        path: path.to_path_buf(),
        expected: "an mbox file",
        why: why.into(),
    })?;
    let consumed = Arc::new(AtomicU64::new(got as u64));
    let raw = Counting { inner: std::io::Cursor::new(head[..got].to_vec()).chain(file), count: consumed.clone() };
    // The head was counted already; the cursor re-reads it.
    consumed.fetch_sub(got as u64, Ordering::Relaxed);
    const BUF: usize = 256 * 1024;
    let reader: Box<dyn std::io::BufRead + Send> = match compression {
        Compression::None => Box::new(BufReader::with_capacity(BUF, raw)),
        Compression::Gzip => {
            Box::new(BufReader::with_capacity(BUF, flate2::read::MultiGzDecoder::new(BufReader::new(raw))))
        }
        Compression::Bzip2 => {
            Box::new(BufReader::with_capacity(BUF, bzip2::read::MultiBzDecoder::new(BufReader::new(raw))))
        }
        Compression::Xz => Box::new(BufReader::with_capacity(
            BUF,
            lzma_rust2::XzReader::new_mem_limit(BufReader::new(raw), true, XZ_MEM_LIMIT_KB),
        )),
        Compression::Lzip => Box::new(BufReader::with_capacity(BUF, lzma_rust2::LzipReader::new(BufReader::new(raw)))),
    };
    Ok(Opened { reader, compression, file_len: meta.len(), consumed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing() {
        assert_eq!(sniff(b"From a"), Ok(Compression::None));
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Ok(Compression::Gzip));
        assert_eq!(sniff(b"BZh9"), Ok(Compression::Bzip2));
        assert_eq!(sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0]), Ok(Compression::Xz));
        assert_eq!(sniff(b"LZIP\x01"), Ok(Compression::Lzip));
        assert!(sniff(&[0x28, 0xb5, 0x2f, 0xfd]).is_err());
        assert_eq!(sniff(b""), Ok(Compression::None));
    }
}
