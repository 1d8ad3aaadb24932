//! Read policy: the one mmap-or-read function (the only `unsafe` of the crate), the
//! reusable read buffer of the scanning threads, `openat` relative to a directory, and
//! whether writes are synced.
//!
//! Writes, renames, locks and directory fsyncs are not here: they go through
//! [`crate::fs::Fs`], so the crash tests see every one of them.

mod bytes;
mod content;
mod write;

pub use bytes::{
    Bytes, Cache, Contents, Fetched, MAP_THRESHOLD, Map, PREFETCH_MAX, ReadBuf, fetch_file, file_size, open_at,
    page_cache_misses, prefetch_at, prefetched, read_file, read_file_at, read_file_into, with_read_buf,
};
#[cfg(test)]
pub(crate) use bytes::{count_reads_for_test, in_prefetched};
pub use content::{FileSource, HOLE_BUDGET, content_len};
pub use write::Durability;

/// Allocations of at least this many bytes are mappings of their own, returned to the
/// system when freed (see [`limit_malloc_arenas`]).
pub const MMAP_FROM: i32 = 4 << 20;

/// Keep the C allocator to one arena per core (glibc's default is eight per core).
///
/// A scan runs 32 reader threads beside its workers; each thread that allocates gets an
/// arena of its own, and an arena keeps what was freed in it. Reading a 1,000,000-message
/// mailbox, the arenas held 65 MB more than the heap in use (`mstore verify`: 280 MB peak
/// RSS, 216 MB with one arena per core, no slower). Called once, first thing, by every
/// binary; elsewhere than glibc it does nothing.
///
/// It also fixes the size from which an allocation gets a mapping of its own (and is
/// unmapped when freed) at [`MMAP_FROM`]: glibc raises that threshold as large blocks are
/// freed, up to 32 MiB, after which the 8 MiB chunks of a change log's records that a
/// merge lets go of stay in the heap, still resident (a rebuild of a 1,000,000-message
/// mailbox peaked higher for letting them go, 337 MB against 315). Not lower: at 512 KiB
/// every 1 MiB read buffer of every mailbox was a fresh mapping to fault in (a rebuild of
/// 100,000 messages over 326 mailboxes with `ms.index` removed took twice as long).
/// Fixing that threshold also fixes the one above which freed memory at the top of a heap
/// is handed back to the kernel (`M_TRIM_THRESHOLD`) at glibc's 128 KiB, where the dynamic
/// threshold would have raised it with the other: every worker's heap was then trimmed
/// and faulted in again, over and over (a warm full rebuild of 100,000 messages: 25,000
/// page faults, 13,000 with it at 8 MiB, and 3 % less CPU time; the peak RSS of a rebuild
/// of 1,000,000 messages is unchanged, 214 MB against 216).
#[cfg_attr(all(target_os = "linux", target_env = "gnu"), expect(unsafe_code, reason = "mallopt is a C call"))]
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
        // SAFETY: mallopt only sets a parameter of the allocator; it is called before
        // any thread is started.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, i32::try_from(cores).unwrap_or(i32::MAX));
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_FROM);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 2 * MMAP_FROM);
        }
    }
}
