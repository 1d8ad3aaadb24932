//! `cargo xtask corpus`: a deterministic, realistic generated store (see `mstore::synth`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use mstore::io::Durability;
use mstore::store::Store;
use mstore::synth;

#[derive(Args)]
pub struct CorpusArgs {
    /// Number of messages.
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Output directory (gets ms.conf and the store).
    #[arg(long)]
    pub out: PathBuf,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Extra users beyond the cast of the guide's examples (default: one per 1,000 messages).
    #[arg(long)]
    pub users: Option<usize>,
    /// Put every message in one mailbox (user/huge of example.com).
    #[arg(long)]
    pub one_mailbox: bool,
}

pub fn run(a: &CorpusArgs) -> Result<()> {
    if a.out.join("ms.conf").exists() {
        bail!("{} already holds a store; remove it first", a.out.display());
    }
    let started = Instant::now();
    let (user, group) = mstore::cli::current_user_and_group();
    let cfg = synth::write_config(&a.out, &user, &group, Durability::NoSync)?;
    let st = Store::init(cfg)?;
    let cast = if a.one_mailbox {
        vec![synth::MailboxPlan { domain: "example.com", name: "user/huge".into(), partition: "default", weight: 1 }]
    } else {
        synth::corpus_cast(a.users.unwrap_or((a.messages / 1000) as usize))
    };
    let threads = st.config().worker_threads();
    let sum = synth::populate(&st, &cast, a.messages, a.seed, threads)?;
    println!(
        "{}: {} messages, {:.1} MiB, {} mailboxes in {} domains, {:.1}s",
        a.out.join("ms.conf").display(),
        sum.messages,
        sum.bytes as f64 / 1048576.0,
        sum.mailboxes,
        sum.domains.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
