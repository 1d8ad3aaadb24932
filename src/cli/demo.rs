//! `mstore demo [DIR]`: a sample store with the domains, users and folders of the M-Store
//! administration guide's examples, `DIR/bin` holding the guide's command names as links
//! to this binary, and the lines to paste after which every example runs as written.

use std::io::Write;

use super::args::DemoArgs;
use crate::error::{Error, Result};
use crate::io::Durability;
use crate::report::Exit;
use crate::store::Store;
use crate::synth;
use crate::util::shell_quote;

pub fn run(a: &DemoArgs) -> Result<Exit> {
    let dir = std::path::absolute(&a.dir).map_err(|e| Error::io("resolve", &a.dir, e))?;
    if dir.join("ms.conf").exists() {
        return Err(Error::Invalid(format!(
            "{} already holds a demo store; use it (export MS_CONF={}) or choose another directory",
            dir.display(),
            dir.join("ms.conf").display()
        )));
    }
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(Error::Invalid(format!("{} exists and is not empty; choose another directory", dir.display())));
    }
    let (user, group) = crate::privs::current_user_and_group();
    let cfg = synth::write_config(&dir, &user, &group, Durability::Sync)?;
    let st = Store::init(cfg)?;
    let threads = st.config().worker_threads();
    let sum = synth::populate(&st, &synth::demo_cast(), a.messages, a.seed, threads)?;
    let bin = link_programs(&dir)?;
    let cfg = st.config();
    let conf = cfg.path.display().to_string();
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "Created a demo M-Store in {}", dir.display());
    let _ = writeln!(o, "  configuration  {conf}");
    let _ = writeln!(o, "  ms-path        {}", cfg.ms_path.display());
    for (name, root) in &cfg.partitions {
        let _ = writeln!(o, "  partition      {name}: {}", root.display());
    }
    let _ = writeln!(o, "  runtime user   {}:{}", cfg.runtime_user, cfg.runtime_group);
    let _ = writeln!(
        o,
        "  {} mailboxes in {} domains ({}), {} messages, {:.1} MiB",
        sum.mailboxes,
        sum.domains.len(),
        sum.domains.join(", "),
        sum.messages,
        sum.bytes as f64 / (1024.0 * 1024.0)
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "Paste these two lines into your shell; then every example of the M-Store");
    let _ = writeln!(o, "administration guide runs on this store as written:");
    let _ = writeln!(o, "  export MS_CONF={}", shell_quote(&conf));
    let _ = writeln!(o, "  export PATH={}:\"$PATH\"", shell_quote(&bin.display().to_string()));
    let guide = super::help::GUIDE_EXAMPLES.iter().map(|e| e.0);
    for ex in guide.chain(["msdb_recover", "msdb_backup", "msdb_verify"]) {
        let _ = writeln!(o, "  {ex}");
    }
    let _ = writeln!(o, "Look around (mstore --help lists every command):");
    let _ = writeln!(o, "  mstore ls example.com");
    let _ = writeln!(o, "  mstore show example.com user/joe");
    let _ = writeln!(o, "  mstore verify --quick");
    Ok(Exit::Ok)
}

/// `DIR/bin`: `mstore` and the guide's command names, each a symbolic link to the running
/// binary (which tells them apart by the name it is invoked under).
fn link_programs(dir: &std::path::Path) -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe().map_err(|e| Error::io("find the running binary", "/proc/self/exe", e))?;
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).map_err(|e| Error::io("create", &bin, e))?;
    for name in super::program_names() {
        let link = bin.join(name);
        std::os::unix::fs::symlink(&exe, &link).map_err(|e| Error::io("create the link", &link, e))?;
    }
    Ok(bin)
}
