//! `ms.conf`: the store's configuration file.
//!
//! Format: one `key: value` per line; `#` starts a comment (at line start, or after
//! whitespace); blank lines are ignored. Keys are case-insensitive. Relative paths are
//! resolved against the directory holding the configuration file, so a store made by
//! `mstore demo` can be moved as a whole. Unknown keys are kept as warnings, never silently
//! dropped; every error names the file and the line.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `ms-path` | `/var/md/store` | the store's home |
//! | `runtime-user` | `sms` | the user that owns and runs the store |
//! | `runtime-group` | `sms` | its group |
//! | `partition-NAME` | `partition-default: ms-path/spool` | a mail partition |
//! | `default-partition` | `default` | where new mailboxes go |
//! | `database-path` | `ms-path/database` | database home: databases and transaction logs |
//! | `backup-path` | `ms-path/backup` | where `msdb_backup` writes |
//! | `backup-keep` | `7` | how many verified backups to keep |
//! | `log-segment-size` | `16M` | transaction log segment size |
//! | `fsync` | `yes` | `no` only for generated corpora and benchmarks |
//! | `threads` | `0` | worker threads for scans; 0 = one per core |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::io::Durability;

/// Where commands look for the configuration when `-f` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/md/store/ms.conf";
/// Environment variable that overrides [`DEFAULT_CONFIG_PATH`] (but not `-f`).
pub const CONFIG_ENV: &str = "MS_CONF";
/// Most bytes read from a configuration file (1 MiB): `-f /dev/zero` or a huge file fails
/// at once with [`ConfigError::TooLarge`] instead of filling memory.
pub const MAX_CONFIG_LEN: u64 = 1 << 20;
/// The default `ms-path`.
pub const DEFAULT_MS_PATH: &str = "/var/md/store";

/// A parsed `ms.conf`.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file this came from.
    pub path: PathBuf,
    /// The store's home.
    pub ms_path: PathBuf,
    /// Runtime user name.
    pub runtime_user: String,
    /// Runtime group name.
    pub runtime_group: String,
    /// Named partitions, name → root directory. Always holds the default partition.
    pub partitions: BTreeMap<String, PathBuf>,
    /// The partition new mailboxes are created on.
    pub default_partition: String,
    /// Database home.
    pub database_path: PathBuf,
    /// Backup directory.
    pub backup_path: PathBuf,
    /// Number of backups to keep.
    pub backup_keep: u32,
    /// Transaction log segment size in bytes.
    pub log_segment_size: u64,
    /// Whether writes are synced.
    pub durability: Durability,
    /// Worker threads (0 = one per core).
    pub threads: usize,
    /// Lines that were accepted with a warning (unknown keys, duplicates).
    pub warnings: Vec<ConfigWarning>,
}

/// A line that parsed but deserves the administrator's attention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    /// Configuration file.
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// What is odd about it.
    pub message: String,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: warning: {}", self.path.display(), self.line, self.message)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("unable to read configuration file {}: {}", path.display(), crate::error::describe_io(source, path))]
    Io {
        /// The configuration file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than any configuration ([`MAX_CONFIG_LEN`]): not read further.
    #[error("{} is larger than {} bytes: not a configuration file (ms.conf is a few lines of `key: value`)", path.display(), MAX_CONFIG_LEN)]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A line is malformed.
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        /// The configuration file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
}

/// The configuration path a command should use: `-f`, else `$MS_CONF`, else the default.
pub fn resolve_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os(CONFIG_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_CONFIG_PATH),
    }
}

impl Config {
    /// Read and parse the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        use std::io::Read;
        let io = |source| ConfigError::Io { path: path.to_path_buf(), source };
        let mut bytes = Vec::new();
        std::fs::File::open(path).and_then(|f| f.take(MAX_CONFIG_LEN + 1).read_to_end(&mut bytes)).map_err(io)?;
        if bytes.len() as u64 > MAX_CONFIG_LEN {
            return Err(ConfigError::TooLarge { path: path.to_path_buf() });
        }
        // Absolute, so relative paths inside resolve the same from any working directory.
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Config::parse(&path, &bytes)
    }

    /// Parse configuration text; `path` is used for errors and to resolve relative paths.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Config, ConfigError> {
        let lines = Lines::read(path, bytes)?;
        let ms_path = lines.path_or("ms-path", || PathBuf::from(DEFAULT_MS_PATH));
        let runtime_user = lines.get("runtime-user").map(|(_, v)| v.to_string()).unwrap_or_else(|| "sms".into());
        let runtime_group = lines.get("runtime-group").map(|(_, v)| v.to_string()).unwrap_or_else(|| "sms".into());
        for (k, v) in [("runtime-user", &runtime_user), ("runtime-group", &runtime_group)] {
            if !valid_account_name(v) {
                let line = lines.get(k).map(|(l, _)| l).unwrap_or(0);
                return Err(lines.syntax(line, format!("`{k}` is not a valid user or group name: {v:?}")));
            }
        }
        let (parts, default_partition) = lines.partitions(&ms_path)?;
        let database_path = lines.path_or("database-path", || ms_path.join("database"));
        let backup_path = lines.path_or("backup-path", || ms_path.join("backup"));
        let backup_keep = lines.backup_keep()?;
        let log_segment_size = lines.log_segment_size()?;
        let durability = lines.durability()?;
        let threads = lines.threads()?;
        Ok(Config {
            path: path.to_path_buf(),
            ms_path,
            runtime_user,
            runtime_group,
            partitions: parts,
            default_partition,
            database_path,
            backup_path,
            backup_keep,
            log_segment_size,
            durability,
            threads,
            warnings: lines.warnings,
        })
    }

    /// Root directory of partition `name`.
    pub fn partition(&self, name: &str) -> Option<&Path> {
        self.partitions.get(name).map(PathBuf::as_path)
    }

    /// Render a configuration file with these settings (what `mstore demo` writes).
    pub fn render(&self) -> String {
        let mut s = String::from("# M-Store configuration (ms.conf): `key: value`, `#` comments.\n");
        s += &format!("ms-path: {}\n", self.ms_path.display());
        s += &format!("runtime-user: {}\nruntime-group: {}\n", self.runtime_user, self.runtime_group);
        for (name, dir) in &self.partitions {
            s += &format!("partition-{name}: {}\n", dir.display());
        }
        s += &format!("default-partition: {}\n", self.default_partition);
        s += &format!("database-path: {}\n", self.database_path.display());
        s += &format!("backup-path: {}\nbackup-keep: {}\n", self.backup_path.display(), self.backup_keep);
        s += &format!("log-segment-size: {}\n", self.log_segment_size);
        s += &format!("fsync: {}\n", if self.durability == Durability::Sync { "yes" } else { "no" });
        s += &format!("threads: {}\n", self.threads);
        s
    }

    /// Worker threads to use: the configured number, or one per core.
    pub fn worker_threads(&self) -> usize {
        if self.threads > 0 { self.threads } else { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) }
    }
}

const KNOWN_KEYS: &[&str] = &[
    "ms-path",
    "runtime-user",
    "runtime-group",
    "default-partition",
    "database-path",
    "backup-path",
    "backup-keep",
    "log-segment-size",
    "fsync",
    "threads",
];

/// The `key: value` lines of a configuration file, each with its line number (the last of
/// a repeated key), and the warnings reading them gave.
struct Lines<'a> {
    /// The configuration file.
    path: &'a Path,
    /// Its directory (relative paths resolve against it).
    base: PathBuf,
    /// Known keys.
    values: BTreeMap<String, (usize, String)>,
    /// `partition-<name>` lines, by name.
    partitions: BTreeMap<String, (usize, PathBuf)>,
    /// Unknown and repeated keys.
    warnings: Vec<ConfigWarning>,
}

impl<'a> Lines<'a> {
    /// Read every line of `bytes` (the file `path`); the first malformed one is an error.
    fn read(path: &'a Path, bytes: &[u8]) -> Result<Lines<'a>, ConfigError> {
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut lines =
            Lines { path, base, values: BTreeMap::new(), partitions: BTreeMap::new(), warnings: Vec::new() };
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            lines.add(i + 1, raw)?;
        }
        Ok(lines)
    }

    /// Take line `line_no` (blank, a comment, a partition or a key).
    fn add(&mut self, line_no: usize, raw: &[u8]) -> Result<(), ConfigError> {
        let Ok(text) = std::str::from_utf8(raw) else {
            return Err(self.syntax(line_no, "line is not valid UTF-8".into()));
        };
        let text = strip_comment(text).trim();
        if text.is_empty() {
            return Ok(());
        }
        let Some((key, value)) = text.split_once(':') else {
            return Err(self.syntax(line_no, format!("expected `key: value`, found {text:?}")));
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(self.syntax(line_no, format!("invalid key {key:?}")));
        }
        if value.is_empty() {
            return Err(self.syntax(line_no, format!("key `{key}` has no value")));
        }
        if let Some(name) = key.strip_prefix("partition-") {
            if name.is_empty() {
                return Err(self.syntax(line_no, "partition name missing in `partition-`".into()));
            }
            let dir = resolve(&self.base, value);
            if let Some((prev, _)) = self.partitions.insert(name.to_string(), (line_no, dir)) {
                self.warn(line_no, format!("`{key}` repeats line {prev}; this line wins"));
            }
            return Ok(());
        }
        if !KNOWN_KEYS.contains(&key.as_str()) {
            self.warn(line_no, format!("unknown key `{key}` ignored"));
            return Ok(());
        }
        if let Some((prev, _)) = self.values.insert(key.clone(), (line_no, value.to_string())) {
            self.warn(line_no, format!("`{key}` repeats line {prev}; this line wins"));
        }
        Ok(())
    }

    /// The error for line `line` of the file.
    fn syntax(&self, line: usize, message: String) -> ConfigError {
        ConfigError::Syntax { path: self.path.to_path_buf(), line, message }
    }

    /// Note a warning for line `line`.
    fn warn(&mut self, line: usize, message: String) {
        self.warnings.push(ConfigWarning { path: self.path.to_path_buf(), line, message });
    }

    /// Key `k`'s line number and value, if it is set.
    fn get(&self, k: &str) -> Option<(usize, &str)> {
        self.values.get(k).map(|(l, v)| (*l, v.as_str()))
    }

    /// Key `k` as a path (relative to the file's directory), else `default()`.
    fn path_or(&self, k: &str, default: impl FnOnce() -> PathBuf) -> PathBuf {
        self.get(k).map(|(_, v)| resolve(&self.base, v)).unwrap_or_else(default)
    }

    /// The partitions (`default` is `<ms_path>/spool` unless set) and the default one,
    /// which must be among them.
    fn partitions(&self, ms_path: &Path) -> Result<(BTreeMap<String, PathBuf>, String), ConfigError> {
        let default_partition =
            self.get("default-partition").map(|(_, v)| v.to_string()).unwrap_or_else(|| "default".into());
        let mut parts: BTreeMap<String, PathBuf> =
            self.partitions.iter().map(|(k, (_, p))| (k.clone(), p.clone())).collect();
        parts.entry("default".into()).or_insert_with(|| ms_path.join("spool"));
        if !parts.contains_key(&default_partition) {
            let line = self.get("default-partition").map(|(l, _)| l).unwrap_or(0);
            return Err(self.syntax(
                line,
                format!("default-partition `{default_partition}` has no `partition-{default_partition}` line"),
            ));
        }
        Ok((parts, default_partition))
    }

    /// `backup-keep`: at least 1 (default 7).
    fn backup_keep(&self) -> Result<u32, ConfigError> {
        Ok(match self.get("backup-keep") {
            Some((l, v)) => match v.parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(
                        self.syntax(l, format!("`backup-keep` must be a whole number of at least 1, found {v:?}"))
                    );
                }
            },
            None => 7,
        })
    }

    /// `log-segment-size`: 64K to 4G (default 16M).
    fn log_segment_size(&self) -> Result<u64, ConfigError> {
        Ok(match self.get("log-segment-size") {
            Some((l, v)) => match parse_size(v) {
                Some(n) if (64 * 1024..=1 << 32).contains(&n) => n,
                _ => {
                    return Err(
                        self.syntax(l, format!("`log-segment-size` must be a size between 64K and 4G, found {v:?}"))
                    );
                }
            },
            None => 16 << 20,
        })
    }

    /// `fsync`: yes or no (default yes).
    fn durability(&self) -> Result<Durability, ConfigError> {
        Ok(match self.get("fsync") {
            Some((l, v)) => match parse_bool(v) {
                Some(true) => Durability::Sync,
                Some(false) => Durability::NoSync,
                None => return Err(self.syntax(l, format!("`fsync` must be yes or no, found {v:?}"))),
            },
            None => Durability::Sync,
        })
    }

    /// `threads`: 0 (one per core, the default) to 1024.
    fn threads(&self) -> Result<usize, ConfigError> {
        Ok(match self.get("threads") {
            Some((l, v)) => match v.parse::<usize>() {
                Ok(n) if n <= 1024 => n,
                _ => {
                    return Err(self
                        .syntax(l, format!("`threads` must be a number from 0 (one per core) to 1024, found {v:?}")));
                }
            },
            None => 0,
        })
    }
}

fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

fn resolve(base: &Path, value: &str) -> PathBuf {
    let p = Path::new(value);
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}

fn valid_account_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Some(true),
        "no" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// `123`, `64K`, `16M`, `1G` (binary multiples).
pub fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, mul) = match v.as_bytes().last()? {
        b'k' | b'K' => (&v[..v.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&v[..v.len() - 1], 1 << 20),
        b'g' | b'G' => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mul)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/md/store/ms.conf"), text.as_bytes())
    }

    #[test]
    fn defaults_follow_the_guide() {
        let c = parse("").expect("empty config is valid");
        assert_eq!(c.ms_path, Path::new("/var/md/store"));
        assert_eq!(c.runtime_user, "sms");
        assert_eq!(c.runtime_group, "sms");
        assert_eq!(c.partition("default"), Some(Path::new("/var/md/store/spool")));
        assert_eq!(c.database_path, Path::new("/var/md/store/database"));
        assert_eq!(c.backup_path, Path::new("/var/md/store/backup"));
        assert_eq!(c.durability, Durability::Sync);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn guide_partition_and_comments() {
        let c = parse(
            "# the store\nms-path: /srv/ms   # trailing comment\npartition-d2: /d/d2/mailstore\nruntime-user: mail\n\n",
        )
        .expect("valid");
        assert_eq!(c.ms_path, Path::new("/srv/ms"));
        assert_eq!(c.partition("d2"), Some(Path::new("/d/d2/mailstore")));
        assert_eq!(c.partition("default"), Some(Path::new("/srv/ms/spool")));
        assert_eq!(c.runtime_user, "mail");
        assert_eq!(c.runtime_group, "sms");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let c = Config::parse(Path::new("/tmp/demo/ms.conf"), b"ms-path: store\n").expect("valid");
        assert_eq!(c.ms_path, Path::new("/tmp/demo/store"));
        assert_eq!(c.partition("default"), Some(Path::new("/tmp/demo/store/spool")));
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = parse("ms-path: /a\nthis line has no colon\n").expect_err("must fail");
        assert_eq!(err.to_string(), "/etc/md/store/ms.conf:2: expected `key: value`, found \"this line has no colon\"");
        let err = parse("\n\nbackup-keep: zero\n").expect_err("must fail");
        assert!(err.to_string().starts_with("/etc/md/store/ms.conf:3: `backup-keep`"), "{err}");
        let err = parse("fsync: maybe\n").expect_err("must fail");
        assert!(err.to_string().contains(":1: `fsync`"), "{err}");
        let err = parse("ms-path:\n").expect_err("must fail");
        assert!(err.to_string().contains(":1: key `ms-path` has no value"), "{err}");
        let err = parse("default-partition: d9\n").expect_err("must fail");
        assert!(err.to_string().contains(":1: default-partition `d9`"), "{err}");
        let err = Config::parse(Path::new("x.conf"), b"ms-path: /a\n\xff\n").expect_err("must fail");
        assert_eq!(err.to_string(), "x.conf:2: line is not valid UTF-8");
    }

    #[test]
    fn unknown_and_repeated_keys_warn() {
        let c = parse("ms-path: /a\nfrobnicate: yes\nms-path: /b\n").expect("valid");
        assert_eq!(c.ms_path, Path::new("/b"));
        let msgs: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            vec![
                "/etc/md/store/ms.conf:2: warning: unknown key `frobnicate` ignored".to_string(),
                "/etc/md/store/ms.conf:3: warning: `ms-path` repeats line 1; this line wins".to_string(),
            ]
        );
    }

    #[test]
    fn missing_file_error_names_path_and_cause() {
        let err = Config::load(Path::new("/nonexistent/ms.conf")).expect_err("must fail");
        let text = err.to_string();
        assert!(text.starts_with("unable to read configuration file /nonexistent/ms.conf: "), "{text}");
        assert!(text.contains("missing"), "{text}");
    }

    #[test]
    fn endless_or_huge_files_fail_at_once() {
        let err = Config::load(Path::new("/dev/zero")).expect_err("must fail");
        assert!(matches!(err, ConfigError::TooLarge { .. }), "{err}");
        assert!(err.to_string().starts_with("/dev/zero is larger than 1048576 bytes"), "{err}");
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("ms.conf");
        let head = "ms-path: /srv\n";
        let text = format!("{head}{}\n", "#".repeat(MAX_CONFIG_LEN as usize - head.len() - 1));
        assert_eq!(text.len() as u64, MAX_CONFIG_LEN);
        std::fs::write(&p, &text).expect("write");
        assert_eq!(Config::load(&p).expect("exactly 1 MiB is still read").ms_path, Path::new("/srv"));
        std::fs::write(&p, format!("{text}x: y\n")).expect("write");
        assert!(matches!(Config::load(&p), Err(ConfigError::TooLarge { .. })));
    }

    #[test]
    fn render_round_trips() {
        let c = parse("ms-path: /srv/ms\npartition-d2: /d/d2\nbackup-keep: 3\nfsync: no\nthreads: 2\n").expect("valid");
        let again = parse(&c.render()).expect("rendered config parses");
        assert_eq!(again.ms_path, c.ms_path);
        assert_eq!(again.partitions, c.partitions);
        assert_eq!(again.backup_keep, 3);
        assert_eq!(again.durability, Durability::NoSync);
        assert_eq!(again.threads, 2);
        assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16M"), Some(16 << 20));
        assert_eq!(parse_size("64k"), Some(65536));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("99999999999999999999G"), None);
        assert_eq!(parse_size(""), None);
    }
}
