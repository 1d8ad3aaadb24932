//! What the Debian package ships, checked without building it (`cargo xtask deb --check`
//! builds, installs, uses and purges it; it needs cargo-deb and root, so it runs by hand):
//! the example ms.conf is a valid configuration the README's Security section agrees
//! with, the cron jobs are disabled and each is a valid command line, the maintainer
//! scripts parse, and every guide name is a link in /usr/bin.

use std::path::Path;
use std::process::Command;

fn file(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn the_example_configuration_is_the_default_layout() {
    let text = file("debian/ms.conf");
    let cfg = mstore::config::Config::parse(Path::new("/etc/md/store/ms.conf"), text.as_bytes()).expect("parses");
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    assert_eq!((cfg.runtime_user.as_str(), cfg.runtime_group.as_str()), ("sms", "sms"));
    assert_eq!(cfg.ms_path, Path::new("/var/md/store"));
    assert_eq!(cfg.database_path, Path::new("/var/md/store/database"));
    assert_eq!(cfg.partitions.get("default").map(|p| p.as_path()), Some(Path::new("/var/md/store/spool")));
    // postinst makes exactly these, for the runtime user, 0750; and ms.conf root:sms 0640.
    let postinst = file("debian/postinst");
    for d in ["/var/md/store", "/var/md/store/database", "/var/md/store/spool"] {
        assert!(postinst.contains(d), "postinst does not make {d}");
    }
    assert!(postinst.contains("install -d -o sms -g sms -m 0750"), "{postinst}");
    assert!(postinst.contains("dpkg-statoverride --update --add root sms 0640"), "{postinst}");
}

#[test]
fn the_scheduled_jobs_are_disabled_and_each_is_a_valid_command() {
    let cron = file("debian/cron.d");
    let mut jobs = 0;
    for line in cron.lines() {
        let l = line.trim();
        assert!(l.is_empty() || l.starts_with('#'), "an active job at install: {line}");
        // A disabled job: `#m h dom mon dow user command...`.
        let Some(job) = l.strip_prefix('#').filter(|j| j.starts_with(|c: char| c.is_ascii_digit())) else {
            continue;
        };
        let words: Vec<&str> = job.split_whitespace().collect();
        assert_eq!(words[5], "sms", "{line}: runs as the runtime user");
        let argv = &words[6..];
        let prog = Path::new(argv[0]).file_name().and_then(|n| n.to_str()).expect("program");
        let cmd = mstore::cli::command(prog).unwrap_or_else(|| panic!("{line}: {prog} is none of ours"));
        let argv: Vec<&str> = std::iter::once(prog).chain(argv[1..].iter().copied()).collect();
        if let Err(e) = cmd.try_get_matches_from(&argv) {
            panic!("{line}: {e}");
        }
        jobs += 1;
    }
    assert_eq!(jobs, 2, "the daily backup and the nightly verify:\n{cron}");
}

#[test]
fn the_maintainer_scripts_parse_and_every_guide_name_is_linked() {
    for s in ["debian/postinst", "debian/postrm"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(s);
        let o = Command::new("sh").arg("-n").arg(&path).output().expect("sh");
        assert!(o.status.success(), "{s}: {}", String::from_utf8_lossy(&o.stderr));
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).expect("stat").permissions());
        assert_eq!(mode & 0o111, 0o111, "{s} must be executable");
    }
    let manifest = file("Cargo.toml");
    for (name, _) in mstore::cli::GUIDE_NAMES {
        let link = format!("{{ dest = \"usr/bin/{name}\", link_name = \"mstore\" }}");
        assert!(manifest.contains(&link), "no {link} in [package.metadata.deb]");
    }
    assert!(manifest.contains("[\"debian/ms.conf\", \"etc/md/store/ms.conf\", \"640\"]"));
}
