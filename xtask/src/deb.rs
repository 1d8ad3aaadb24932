//! `cargo xtask deb [--check]`: the Debian package, and the check that it installs, works
//! and purges as an administrator expects.
//!
//! Building: the man pages of `dist/` gzipped into `target/deb-man/`, then `cargo deb`
//! (`[package.metadata.deb]` in Cargo.toml; `cargo install cargo-deb --locked` once).
//!
//! `--check` (root; it changes the machine: installs the package, creates the user `sms`,
//! leaves a store under /var/md/store): `dpkg -i`; the files, links, owners and modes;
//! nothing scheduled yet; `mstore init`, then a store life through the guide's names
//! (create, append, reconstruct -r, verify, msdb_backup, msdb_verify, flags) against
//! /etc/md/store/ms.conf, as root (each command switches to `sms`); `mstore doctor` clean;
//! `dpkg --purge`: the programs and ms.conf gone, the store's data still there (then the
//! check removes the store it made; the user `sms` stays, as after a real purge).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

/// Where `--check` leaves its store, and the file that says a store there is its own.
const STORE: &str = "/var/md/store";
const MARK: &str = "/var/md/.mstore-deb-check";
const CONF: &str = "/etc/md/store/ms.conf";

/// Build the package; returns the path of the `.deb`.
pub fn build() -> Result<PathBuf> {
    let root = crate::project_root();
    let man = root.join("target/deb-man");
    let _ = std::fs::remove_dir_all(&man);
    std::fs::create_dir_all(&man)?;
    crate::dist::run(true).context("the package takes dist/ as it is")?;
    for e in std::fs::read_dir(root.join("dist/man"))? {
        let p = e?.path();
        let name = p.file_name().context("file name")?.to_string_lossy().into_owned();
        let out = std::fs::File::create(man.join(format!("{name}.gz")))?;
        let st = Command::new("gzip").args(["-9", "-n", "-c"]).arg(&p).stdout(out).status().context("run gzip")?;
        ensure!(st.success(), "gzip {}: {st}", p.display());
    }
    let has_deb = Command::new("cargo").args(["deb", "--version"]).output().is_ok_and(|o| o.status.success());
    if !has_deb {
        bail!("cargo-deb is not installed: cargo install cargo-deb --locked (it compiles for a few minutes)");
    }
    let out = Command::new("cargo")
        .args(["deb", "--locked", "-p", "mstore"])
        .current_dir(&root)
        .output()
        .context("run cargo deb")?;
    ensure!(out.status.success(), "cargo deb failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let deb = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
    ensure!(deb.ends_with(".deb") && Path::new(&deb).is_file(), "cargo deb printed no package path: {deb:?}");
    println!("{deb}");
    Ok(PathBuf::from(deb))
}

/// Run a command; its standard output, or an error with both outputs.
fn sh(what: &str, cmd: &mut Command) -> Result<String> {
    let o = cmd.output().with_context(|| format!("run {what}"))?;
    ensure!(
        o.status.success(),
        "{what}: {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// A command of the installed package, as root, against /etc/md/store/ms.conf (the default).
fn installed(line: &str) -> Result<String> {
    println!("  $ {line}");
    sh(
        line,
        Command::new("/bin/sh").arg("-c").arg(line).env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").env_remove("MS_CONF"),
    )
}

/// Owner name, group name and mode of a path (not following a link).
fn owner(path: &str) -> Result<(String, String, u32)> {
    let m = std::fs::symlink_metadata(path).with_context(|| format!("stat {path}"))?;
    let user = sh("id", Command::new("id").args(["-nu", &m.uid().to_string()]))?.trim().to_string();
    let group = sh("getent", Command::new("getent").args(["group", &m.gid().to_string()]))?;
    let group = group.split(':').next().unwrap_or_default().to_string();
    Ok((user, group, m.mode() & 0o7777))
}

fn expect_owner(path: &str, user: &str, group: &str, mode: u32) -> Result<()> {
    let got = owner(path)?;
    ensure!(got == (user.into(), group.into(), mode), "{path}: {got:?}, want {user}:{group} {mode:04o}");
    println!("  {path}: {user}:{group} {mode:04o}");
    Ok(())
}

/// Install, use, check, purge.
pub fn check(deb: &Path) -> Result<()> {
    let uid = sh("id -u", Command::new("id").arg("-u"))?;
    ensure!(uid.trim() == "0", "cargo xtask deb --check installs a package: run it as root");
    if Path::new(STORE).exists() {
        ensure!(
            Path::new(MARK).exists(),
            "{STORE} exists and was not made by an earlier check: move it away first (the check would use it)"
        );
        std::fs::remove_dir_all(STORE)?;
    }
    let _ = Command::new("dpkg").args(["--purge", "mstore"]).output();

    println!("== dpkg -i {}", deb.display());
    sh("dpkg -i", Command::new("dpkg").arg("-i").arg(deb))?;
    for name in mstore::cli::program_names() {
        let path = format!("/usr/bin/{name}");
        let m = std::fs::symlink_metadata(&path).with_context(|| format!("{path} is not installed"))?;
        if name == "mstore" {
            ensure!(m.is_file() && m.mode() & 0o777 == 0o755, "{path}: mode {:o}", m.mode());
        } else {
            ensure!(std::fs::read_link(&path)? == Path::new("mstore"), "{path} is not a link to mstore");
        }
        let v = Command::new(&path).arg("-v").output()?;
        ensure!(String::from_utf8_lossy(&v.stderr).starts_with(&format!("{name} (M-Store toolkit)")), "{path} -v");
        ensure!(Path::new(&format!("/usr/share/man/man1/{name}.1.gz")).is_file(), "no man page for {name}");
        for c in [
            format!("/usr/share/bash-completion/completions/{name}"),
            format!("/usr/share/zsh/vendor-completions/_{name}"),
            format!("/usr/share/fish/vendor_completions.d/{name}.fish"),
        ] {
            ensure!(Path::new(&c).is_file(), "{c} missing");
        }
    }
    sh("id sms", Command::new("id").arg("sms"))?;
    let conffiles =
        sh("dpkg-query", Command::new("dpkg-query").args(["--showformat=${Conffiles}", "--show", "mstore"]))?;
    for f in [CONF, "/etc/cron.d/mstore"] {
        ensure!(conffiles.contains(f), "{f} is not a conffile: {conffiles}");
    }
    expect_owner(CONF, "root", "sms", 0o640)?;
    for d in [STORE, "/var/md/store/database", "/var/md/store/spool"] {
        expect_owner(d, "sms", "sms", 0o750)?;
    }
    let files = sh("dpkg -L", Command::new("dpkg").args(["-L", "mstore"]))?;
    ensure!(!files.contains("systemd"), "the package ships a service or timer: {files}");
    let cron = std::fs::read_to_string("/etc/cron.d/mstore")?;
    let active: Vec<&str> = cron.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).collect();
    ensure!(active.is_empty(), "/etc/cron.d/mstore schedules jobs at install: {active:?}");
    for job in ["/usr/bin/msdb_backup -f /etc/md/store/ms.conf", "/usr/bin/mstore verify --quick"] {
        ensure!(cron.contains(job), "/etc/cron.d/mstore has no {job}");
    }
    std::fs::write(MARK, "made by cargo xtask deb --check\n")?;

    println!("== a store through the installed commands, as root, against {CONF}");
    installed("mstore init")?;
    let msg = std::env::temp_dir().join("mstore-deb-check.eml");
    std::fs::write(&msg, "From: a@example.com\r\nTo: joe@example.com\r\nSubject: deb check\r\n\r\nhello\r\n")?;
    std::fs::set_permissions(&msg, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    installed("mstore create example.com user/joe")?;
    installed(&format!("mstore append example.com user/joe {} --flags '\\Seen,$Work'", msg.display()))?;
    installed(&format!("mstore append example.com user/joe {}", msg.display()))?;
    installed("mstore flags example.com user/joe 2 '+\\Flagged'")?;
    std::fs::remove_file(msg)?;
    let index = find_file(Path::new(STORE), "ms.index").context("no ms.index below the store")?;
    std::fs::remove_file(&index)?;
    let r = Command::new("/bin/sh").args(["-c", "reconstruct -r example.com"]).env("PATH", "/usr/bin:/bin").output()?;
    println!("  $ reconstruct -r example.com\n{}", String::from_utf8_lossy(&r.stdout));
    ensure!(r.status.code() == Some(1), "reconstruct after losing ms.index: {r:?}");
    let show = installed("mstore show example.com user/joe --json")?;
    ensure!(show.contains("\\\\Seen") && show.contains("$Work") && show.contains("\\\\Flagged"), "flags lost: {show}");
    installed("mstore verify")?;
    installed("mstore verify --quick --quiet")?;
    installed("su -s /bin/sh sms -c 'msdb_backup -f /etc/md/store/ms.conf'")?;
    installed("msdb_backup")?;
    installed("msdb_verify")?;
    println!("== mstore doctor");
    println!("{}", installed("mstore doctor")?);
    for (path, user, mode) in
        [(STORE, "sms", 0o750), ("/var/md/store/database", "sms", 0o750), ("/var/md/store/spool", "sms", 0o750)]
    {
        expect_owner(path, user, "sms", mode)?;
    }

    println!("== dpkg --purge mstore");
    sh("dpkg --purge", Command::new("dpkg").args(["--purge", "mstore"]))?;
    for gone in ["/usr/bin/mstore", "/usr/bin/reconstruct", CONF, "/etc/cron.d/mstore"] {
        ensure!(!Path::new(gone).exists(), "{gone} is still there after the purge");
    }
    let kept = find_file(Path::new(STORE), "ms.index").context("the purge removed the store's mail")?;
    ensure!(Path::new("/var/md/store/database").is_dir(), "the purge removed the database home");
    println!("  kept: {} and the database home", kept.display());
    // The check's own store has served; the user `sms` stays, as after a real purge.
    std::fs::remove_dir_all(STORE)?;
    std::fs::remove_file(MARK)?;
    let _ = std::fs::remove_dir("/var/md");
    println!("deb check: ok (its store under {STORE} removed; the user sms kept)");
    Ok(())
}

fn find_file(root: &Path, name: &str) -> Option<PathBuf> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == name) {
                return Some(p);
            }
        }
    }
    None
}
