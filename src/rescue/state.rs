//! A rescue's memory between runs: `ms-path/ms.rescue/` (`formats/rescue-state.md`).
//!
//! `journal` says what a run finished (image passes with what they found, domains
//! reconstructed, the end), one checksummed line per event, so a run killed at any point
//! continues where it stopped without redoing finished work; `taken` lists every file a
//! salvage moved or copied out of a lost+found, a `--from` tree or an image, and where it
//! went. Both are opened before the run gives up root (it appends to them afterwards
//! through the descriptors), are root's own (0600 in a 0700 directory) and are ignored,
//! with a note, when anyone else could have written them.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use serde::{Deserialize, Serialize};

/// The directory under ms-path.
pub const DIR: &str = "ms.rescue";
/// The journal's first line.
const MAGIC: &str = "MSRESCUE 1";
/// Largest journal read (a line per image pass and per domain: far below this).
const JOURNAL_CAP: u64 = 1 << 30;

/// Where an image was when it was read: a later run trusts what it found only on the
/// same image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageId {
    /// The path given.
    pub path: PathBuf,
    /// Device and inode of the image file (for a block device: its device number).
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Device number of a block device, 0 for a file.
    pub rdev: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (seconds, nanoseconds) of an image file.
    pub mtime: (i64, u32),
}

impl ImageId {
    /// The identity of the image at `path` now.
    pub fn of(path: &Path) -> std::io::Result<ImageId> {
        let f = File::open(path)?;
        let st = rustix::fs::fstat(&f)?;
        let block = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::BlockDevice;
        let size = if block { super::carve::device_len(&f)? } else { st.st_size as u64 };
        Ok(ImageId {
            path: path.to_path_buf(),
            dev: st.st_dev,
            ino: st.st_ino,
            rdev: if block { st.st_rdev } else { 0 },
            size,
            mtime: if block { (0, 0) } else { (st.st_mtime, st.st_mtime_nsec as u32) },
        })
    }
}

/// A store file found on an image: its kind (`header`, `index`, `log`), byte offset and
/// length.
pub type StoreFileAt = (String, u64, u64);

/// One message a carving pass found: its BLAKE3, size and byte offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    /// BLAKE3, hex.
    pub hash: String,
    /// Size.
    pub size: u64,
    /// Byte offset on the image.
    pub offset: u64,
}

/// One event of the journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A run began (`resumes`: the start of the run it continues).
    Run {
        /// When (Unix seconds).
        at: i64,
        /// The recovery mailbox's name for unknown messages (kept by the runs that continue
        /// this one).
        recovered_name: String,
    },
    /// The store's own files on an image: (kind, offset, length) of each.
    StoreFiles {
        /// The image.
        image: ImageId,
        /// What was found.
        files: Vec<StoreFileAt>,
    },
    /// A carving pass over an image ended: what it looked for (the first 16 bytes of each
    /// BLAKE3, hex) and what it found.
    Carved {
        /// The image.
        image: ImageId,
        /// What was looked for.
        sought: Vec<String>,
        /// What was found.
        found: Vec<Found>,
    },
    /// Files were put back (a count, for the report; `taken` lists them).
    Placed {
        /// How many.
        files: u64,
    },
    /// A domain was reconstructed.
    Reconstructed {
        /// The domain.
        domain: String,
    },
    /// The run ended (a later run starts afresh).
    Finished {
        /// When.
        at: i64,
    },
}

/// What the journal of an unfinished run says.
#[derive(Clone, Debug, Default)]
pub struct Resume {
    /// When the run being continued began (None: nothing to continue).
    pub started: Option<i64>,
    /// The recovery mailbox name it used.
    pub recovered_name: Option<String>,
    /// Store files found on each image.
    pub store_files: Vec<(ImageId, Vec<StoreFileAt>)>,
    /// Carving passes.
    pub carved: Vec<(ImageId, HashSet<String>, Vec<Found>)>,
    /// Domains reconstructed.
    pub reconstructed: HashSet<String>,
    /// Files put back so far.
    pub placed: u64,
}

impl Resume {
    /// Store files found on `image` by an earlier pass of this run.
    pub fn store_files_of(&self, image: &ImageId) -> Option<&[StoreFileAt]> {
        self.store_files.iter().rev().find(|(i, _)| i == image).map(|(_, f)| f.as_slice())
    }

    /// For a carving of `image`: the offsets already known of what is sought, and whether
    /// every sought message was looked for by an earlier pass (then no new pass is needed).
    pub fn carved_on(&self, image: &ImageId, sought: &[[u8; 32]]) -> Option<HashMap<[u8; 32], u64>> {
        let mut known: HashMap<String, u64> = HashMap::new();
        let mut looked: HashSet<&str> = HashSet::new();
        for (_, s, f) in self.carved.iter().filter(|(i, _, _)| i == image) {
            looked.extend(s.iter().map(String::as_str));
            known.extend(f.iter().map(|f| (f.hash.clone(), f.offset)));
        }
        if looked.is_empty() {
            return None;
        }
        let mut out = HashMap::new();
        for h in sought {
            let full = crate::util::hex(h);
            if let Some(&off) = known.get(&full) {
                out.insert(*h, off);
            } else if !looked.contains(&full[..32]) {
                return None;
            }
        }
        Some(out)
    }
}

/// An open state directory.
pub struct State {
    path: PathBuf,
    dir: Option<OwnedFd>,
    journal: Option<File>,
    taken: Option<File>,
    /// Held (flock) while the run lasts: one salvage or rescue at a time.
    lock: Option<File>,
    /// What an unfinished earlier run left.
    pub resume: Resume,
    /// Why the state could not be used (the run goes on without it).
    pub notes: Vec<String>,
    /// Another salvage or rescue holds the state: this one must not run.
    pub busy: Option<String>,
    sync: bool,
    fresh_name: String,
    /// Whether this run writes a state ([`State::begin`] creates it).
    want: bool,
    /// Whether [`State::begin`] ran.
    begun: bool,
    /// Events recorded before [`State::begin`] (nothing is written before it).
    pending: Vec<Event>,
    ms_path: PathBuf,
    owner: Option<super::place::Owner>,
}

fn io_err(e: rustix::io::Errno) -> std::io::Error {
    e.into()
}

impl State {
    /// A state that remembers nothing (dry runs, or when ms-path cannot hold one).
    pub fn none() -> State {
        State {
            path: PathBuf::new(),
            dir: None,
            journal: None,
            taken: None,
            lock: None,
            resume: Resume::default(),
            notes: Vec::new(),
            busy: None,
            sync: false,
            fresh_name: String::new(),
            want: false,
            begun: false,
            pending: Vec::new(),
            ms_path: PathBuf::new(),
            owner: None,
        }
    }

    /// Read what an unfinished run left in `ms_path/ms.rescue` (nothing is written: the
    /// images are read first). Unless a dry run, this run keeps a state from
    /// [`State::begin`] on; what it records before is written then.
    pub fn open(
        ms_path: &Path,
        run: crate::report::Run,
        d: crate::io::Durability,
        recovered_name: &str,
        owner: Option<super::place::Owner>,
    ) -> State {
        let mut st = State::none();
        st.sync = d == crate::io::Durability::Sync;
        st.path = ms_path.join(DIR);
        st.fresh_name = recovered_name.to_string();
        st.want = run == crate::report::Run::Apply;
        st.ms_path = ms_path.to_path_buf();
        st.owner = owner;
        st.report(ms_path, Open::Existing);
        st
    }

    /// Start writing the state (after every image was read, before anything else is
    /// written): the directory, the lock (a second run stops here, [`State::busy`]), the
    /// journal with this run's first event and what was recorded until now.
    pub fn begin(&mut self) {
        if !self.want || self.begun {
            return;
        }
        self.begun = true;
        let ms_path = self.ms_path.clone();
        self.report(&ms_path, Open::Create);
        if self.busy.is_some() {
            return;
        }
        for e in std::mem::take(&mut self.pending) {
            self.record(&e);
        }
    }

    /// [`State::open_inner`], a failure turned into a note.
    fn report(&mut self, ms_path: &Path, how: Open) {
        let st = self;
        match st.open_inner(ms_path, how, st.owner) {
            Ok(()) => {}
            Err(e) => {
                st.notes.push(format!(
                    "{}: {e}: this run keeps no state (a killed run would start over)",
                    st.path.display()
                ));
                st.dir = None;
                st.journal = None;
                st.taken = None;
            }
        }
    }

    /// Open the state directory of `ms_path` (with [`Open::Create`]: make it, take the
    /// lock and start this run's journal) and read what a stopped run left.
    fn open_inner(&mut self, ms_path: &Path, how: Open, owner: Option<super::place::Owner>) -> std::io::Result<()> {
        let create = how == Open::Create;
        let parent = match super::tree::Dir::open(ms_path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                super::place::ensure_dir(ms_path, owner, crate::io::Durability::Sync)?
            }
            Err(e) => return Err(e),
        };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dir = match rustix::fs::openat(parent.fd(), c"ms.rescue", flags, Mode::empty()) {
            Ok(d) => d,
            Err(rustix::io::Errno::NOENT) if create => {
                match rustix::fs::mkdirat(parent.fd(), c"ms.rescue", Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                if self.sync {
                    rustix::fs::fsync(parent.fd()).map_err(io_err)?;
                }
                rustix::fs::openat(parent.fd(), c"ms.rescue", flags, Mode::empty())?
            }
            Err(rustix::io::Errno::NOENT) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let st = rustix::fs::fstat(&dir)?;
        let me = rustix::process::geteuid().as_raw();
        if st.st_uid != me || st.st_mode & 0o077 != 0 {
            return Err(std::io::Error::other(format!(
                "owned by uid {} with mode {:o}, not this user's own (uid {me}, 0700): not trusted; move it away (mv {} {}.untrusted)",
                st.st_uid,
                st.st_mode & 0o7777,
                self.path.display(),
                self.path.display()
            )));
        }
        if create {
            let Some(lock) = self.take_lock(&dir)? else { return Ok(()) };
            self.lock = Some(lock);
        }
        let (old, journal_len) = match open_own(&dir, c"journal", Open::Existing) {
            Ok(f) => {
                let bytes = read_capped(&f)?;
                let n = bytes.len();
                (Some(bytes), n)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, 0),
            Err(e) => return Err(e),
        };
        let events = match &old {
            Some(b) => parse(b, &mut self.notes, &self.path.join("journal")),
            None => Vec::new(),
        };
        let finished = events.last().is_some_and(|e| matches!(e, Event::Finished { .. }));
        if !finished {
            self.resume = resume_of(&events);
        }
        if create {
            if finished || (old.is_some() && journal_len > 0 && events.is_empty()) {
                // A finished run is kept for reading; this run starts a new journal.
                rustix::fs::renameat(&dir, c"journal", &dir, c"journal.prev")?;
            }
            let mut j = open_own(&dir, c"journal", Open::Create)?;
            if j.metadata()?.len() == 0 {
                j.write_all(format!("{MAGIC}\n").as_bytes())?;
            }
            self.taken = Some(open_own(&dir, c"taken", Open::Create)?);
            self.journal = Some(j);
            self.dir = Some(dir);
            let name = self.recovered_name();
            self.record(&Event::Run { at: crate::util::now(), recovered_name: name });
        } else {
            self.dir = Some(dir);
        }
        Ok(())
    }

    /// Open and lock the state's `lock` file; `None` (and [`State::busy`] set) when
    /// another run holds it.
    fn take_lock(&mut self, dir: &OwnedFd) -> std::io::Result<Option<File>> {
        let lock = open_own(dir, c"lock", Open::Create)?;
        // A run that just ended may still hold it for an instant (a process forked
        // while it ran keeps the descriptor until its exec): wait up to 2 seconds.
        let mut locked = false;
        for _ in 0..100 {
            if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok() {
                locked = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if !locked {
            self.busy = Some(format!(
                "another mstore salvage or rescue is running on this store ({} is locked): wait for it to end",
                self.path.join("lock").display()
            ));
            return Ok(None);
        }
        Ok(Some(lock))
    }

    /// The state directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this run keeps a state.
    pub fn active(&self) -> bool {
        self.journal.is_some()
    }

    /// The recovery mailbox name this run uses (the one of the run it continues).
    pub fn recovered_name(&self) -> String {
        self.resume.recovered_name.clone().unwrap_or_else(|| self.fresh_name.clone())
    }

    /// Append `event` to the journal (written and synced before this returns). A journal
    /// that cannot be written is given up, with a note: the run goes on without it.
    pub fn record(&mut self, event: &Event) {
        let Some(j) = self.journal.as_mut() else {
            if self.want && !self.begun {
                self.pending.push(event.clone());
            }
            return;
        };
        let body = match serde_json::to_string(event) {
            Ok(b) => b,
            Err(e) => return self.notes.push(format!("rescue journal: {e}")),
        };
        let sum = &crate::util::hex(blake3::hash(body.as_bytes()).as_bytes())[..16];
        let w = j
            .write_all(format!("{body}\t{sum}\n").as_bytes())
            .and_then(|()| if self.sync { j.sync_data() } else { Ok(()) });
        if let Err(e) = w {
            self.notes.push(format!(
                "{}: {e}: the journal is given up (a run killed from here on would redo its work)",
                self.path.join("journal").display()
            ));
            self.journal = None;
        }
        step();
    }

    /// List files taken: `how` (moved, copied, carved), from, to, size, BLAKE3. Written
    /// before the files are put back (a line for a file a killed run did not get to is
    /// followed by another when the next run takes it).
    pub fn list_taken(&mut self, lines: &[(String, String, PathBuf, u64, [u8; 32])]) -> std::io::Result<()> {
        let Some(t) = self.taken.as_mut() else { return Ok(()) };
        let mut s = String::new();
        let now = crate::util::now();
        for (how, from, to, size, hash) in lines {
            s += &format!(
                "{now}\t{how}\t{}\t{}\t{size}\t{}\n",
                escape(from),
                escape(&to.display().to_string()),
                crate::util::hex(hash)
            );
        }
        t.write_all(s.as_bytes())?;
        if self.sync {
            t.sync_data()?;
        }
        Ok(())
    }

    /// The `taken` list's path, when this run keeps one.
    pub fn taken_path(&self) -> Option<PathBuf> {
        self.taken.as_ref().map(|_| self.path.join("taken"))
    }
}

/// Whether opening the state (or one of its files) makes what is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    /// Only what exists: a missing state is nothing to read, a missing file an error.
    Existing,
    /// Make what is missing (the directory, the lock, the journal, the taken list).
    Create,
}

/// Tabs, newlines and backslashes in a path, escaped (one line per file).
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\t', "\\t").replace('\n', "\\n")
}

/// Open (or create, 0600, never through a link) a file of the state directory for
/// appending; it must be this user's own regular file with one link.
fn open_own(dir: &OwnedFd, name: &std::ffi::CStr, how: Open) -> std::io::Result<File> {
    let mut flags = OFlags::RDWR | OFlags::APPEND | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    if how == Open::Create {
        flags |= OFlags::CREATE;
    }
    let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o600))?;
    let st = rustix::fs::fstat(&fd)?;
    let me = rustix::process::geteuid().as_raw();
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile
        || st.st_uid != me
        || st.st_nlink != 1
    {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file of this user's own with one link: not trusted",
            name.to_string_lossy()
        )));
    }
    rustix::fs::fcntl_setfl(&fd, OFlags::APPEND)?;
    let _ = rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600));
    Ok(File::from(fd))
}

/// The journal's bytes, up to what it really holds (never more than [`JOURNAL_CAP`]).
fn read_capped(f: &File) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    f.take(JOURNAL_CAP).read_to_end(&mut out)?;
    Ok(out)
}

/// The events of a journal; a line that does not check (a write a kill cut short, or
/// damage) ends the journal there, with a note naming its byte offset.
pub fn parse(bytes: &[u8], notes: &mut Vec<String>, path: &Path) -> Vec<Event> {
    let mut out = Vec::new();
    let mut lines = bytes.split_inclusive(|&b| b == b'\n');
    match lines.next() {
        Some(l) if l == format!("{MAGIC}\n").as_bytes() => {}
        None => return out,
        Some(_) => {
            notes.push(format!("{}: byte 0: not a rescue journal ({MAGIC} expected): ignored", path.display()));
            return out;
        }
    }
    let mut offset = MAGIC.len() as u64 + 1;
    for l in lines {
        let ok = (|| {
            let l = l.strip_suffix(b"\n")?;
            let tab = l.iter().rposition(|&b| b == b'\t')?;
            let (body, sum) = (&l[..tab], &l[tab + 1..]);
            if sum != &crate::util::hex(blake3::hash(body).as_bytes()).as_bytes()[..16] {
                return None;
            }
            serde_json::from_slice::<Event>(body).ok()
        })();
        match ok {
            Some(e) => out.push(e),
            None => {
                notes.push(format!(
                    "{}: byte {offset}: a line that does not check (cut short by a kill, or damaged): the journal ends there",
                    path.display()
                ));
                break;
            }
        }
        offset += l.len() as u64;
    }
    out
}

/// What the events of an unfinished run say (the events since its last `Run`... and
/// those of the runs it continued: everything since the last `Finished`).
fn resume_of(events: &[Event]) -> Resume {
    let mut r = Resume::default();
    for e in events {
        match e {
            Event::Run { at, recovered_name } => {
                r.started.get_or_insert(*at);
                r.recovered_name.get_or_insert_with(|| recovered_name.clone());
            }
            Event::StoreFiles { image, files } => r.store_files.push((image.clone(), files.clone())),
            Event::Carved { image, sought, found } => {
                r.carved.push((image.clone(), sought.iter().cloned().collect(), found.clone()))
            }
            Event::Placed { files } => r.placed += files,
            Event::Reconstructed { domain } => {
                r.reconstructed.insert(domain.clone());
            }
            Event::Finished { .. } => r = Resume::default(),
        }
    }
    r
}

/// Steps taken by this process (journal events, files put back): a debug build stops
/// itself with SIGKILL at step `MSTORE_RESCUE_KILL_AT` (the resumability tests).
pub fn step() {
    #[cfg(debug_assertions)]
    {
        use std::sync::atomic::{AtomicU64, Ordering};
        static STEPS: AtomicU64 = AtomicU64::new(0);
        static AT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
        let at = *AT.get_or_init(|| std::env::var("MSTORE_RESCUE_KILL_AT").ok().and_then(|v| v.parse().ok()));
        let n = STEPS.fetch_add(1, Ordering::SeqCst) + 1;
        if at == Some(n) {
            let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        }
    }
}

/// Remove nothing: a file `ms.tmp.rescue.*` left in a mailbox directory by a killed copy
/// is set aside by [`super::place`]; this names the prefix.
pub const TEMP_PREFIX: &str = "ms.tmp.rescue.";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::Durability;
    use crate::report::Run;

    fn id(n: u64) -> ImageId {
        ImageId { path: "/img".into(), dev: 1, ino: n, rdev: 0, size: 100, mtime: (5, 0) }
    }

    #[test]
    fn an_unfinished_run_is_continued_and_a_finished_one_starts_afresh() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut st = State::open(tmp.path(), Run::Apply, Durability::NoSync, "Recovered/2026-12-06", None);
        st.begin();
        assert!(st.active(), "{:?}", st.notes);
        st.record(&Event::StoreFiles { image: id(1), files: vec![("index".into(), 4096, 256)] });
        let h = [7u8; 32];
        let hex = crate::util::hex(&h);
        st.record(&Event::Carved {
            image: id(1),
            sought: vec![hex[..32].to_string(), "00".repeat(16)],
            found: vec![Found { hash: hex.clone(), size: 10, offset: 8192 }],
        });
        st.record(&Event::Reconstructed { domain: "example.com".into() });
        drop(st);
        let mut st = State::open(tmp.path(), Run::Apply, Durability::NoSync, "Recovered/2026-12-07", None);
        st.begin();
        assert_eq!(st.recovered_name(), "Recovered/2026-12-06", "the name of the run continued");
        assert_eq!(st.resume.store_files_of(&id(1)).expect("kept"), [("index".to_string(), 4096, 256)]);
        assert!(st.resume.store_files_of(&id(2)).is_none(), "another image is read again");
        let got = st.resume.carved_on(&id(1), &[h, [0; 32]]).expect("no new pass");
        assert_eq!(got.get(&h), Some(&8192));
        assert!(st.resume.carved_on(&id(1), &[[1; 32]]).is_none(), "not looked for: a new pass");
        assert!(st.resume.reconstructed.contains("example.com"));
        st.record(&Event::Finished { at: 1 });
        drop(st);
        let mut st = State::open(tmp.path(), Run::Apply, Durability::NoSync, "Recovered/2026-12-08", None);
        st.begin();
        assert!(st.resume.started.is_none() && st.resume.reconstructed.is_empty());
        assert_eq!(st.recovered_name(), "Recovered/2026-12-08");
        assert!(tmp.path().join("ms.rescue/journal.prev").exists());
    }

    #[test]
    fn a_cut_or_damaged_line_ends_the_journal_and_garbage_never_panics() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut st = State::open(tmp.path(), Run::Apply, Durability::NoSync, "R", None);
        st.begin();
        st.record(&Event::Reconstructed { domain: "a.example".into() });
        st.record(&Event::Reconstructed { domain: "b.example".into() });
        drop(st);
        let j = tmp.path().join("ms.rescue/journal");
        let mut b = std::fs::read(&j).expect("read");
        let n = b.len();
        b.truncate(n - 5);
        let mut notes = Vec::new();
        let ev = parse(&b, &mut notes, &j);
        assert_eq!(ev.len(), 2, "the run and a.example: {ev:?}");
        assert!(notes[0].contains("byte "), "{notes:?}");
        // A flipped byte in a body.
        let mut c = std::fs::read(&j).expect("read");
        let p = c.iter().position(|&x| x == b'a').expect("a");
        c[p] = b'z';
        let mut notes = Vec::new();
        assert!(parse(&c, &mut notes, &j).len() < 3);
        for junk in [&b"\xff\xfe"[..], b"MSRESCUE 1\n\t\n", b"MSRESCUE 1\n{}\tzz\n", b""] {
            let mut notes = Vec::new();
            let _ = parse(junk, &mut notes, &j);
        }
    }

    #[test]
    fn a_state_directory_others_could_write_is_not_trusted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join(DIR)).expect("mkdir");
        std::fs::set_permissions(tmp.path().join(DIR), std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .expect("chmod");
        let mut st = State::open(tmp.path(), Run::Apply, Durability::NoSync, "R", None);
        st.begin();
        assert!(!st.active());
        assert!(st.notes[0].contains("not trusted"), "{:?}", st.notes);
        // A link in place of the directory is never followed.
        let tmp2 = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(tmp.path(), tmp2.path().join(DIR)).expect("symlink");
        let mut st = State::open(tmp2.path(), Run::Apply, Durability::NoSync, "R", None);
        st.begin();
        assert!(!st.active(), "{:?}", st.notes);
        assert!(!tmp.path().join(DIR).join("journal").exists());
    }
}
