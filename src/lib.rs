//! M-Store: the storage layer of an IMAP message store and the repair kit around it.
//!
//! See `ARCHITECTURE.md` at the repository root for the map of this crate.
//!
//! # The API
//!
//! An embedding program needs the names re-exported here: a [`Config`] (`ms.conf`), a
//! [`Store`] (the mailbox list and the partitions), a [`Mailbox`] (messages, flags and the
//! write protocol), and the two repair entry points, [`reconstruct::run`] and
//! [`verify::run`], with their reports. The readers of each on-disk format are in
//! [`codec`] (one module per format, specs in `formats/`). Every error is an [`Error`]
//! that names the file and, for a damaged one, the byte offset.
//!
//! A store, a mailbox, a message and a flag change (each write is durable when it
//! returns; `fsync: no` here only to keep the example fast):
//!
//! ```
//! use mstore::{Config, CreateOptions, FlagOp, MailboxName, NewMessage, Store, SystemFlags};
//!
//! # fn main() -> mstore::Result<()> {
//! let dir = tempfile::tempdir().expect("tempdir");
//! let (user, group) = mstore::current_user_and_group();
//! let conf = dir.path().join("ms.conf");
//! std::fs::write(&conf, format!("ms-path: ms\nruntime-user: {user}\nruntime-group: {group}\nfsync: no\n"))
//!     .expect("write ms.conf");
//! let store = Store::init(Config::load(&conf)?)?;
//! let name = MailboxName::parse("user/joe")?;
//! let mut inbox = store.create_mailbox("example.com", &name, CreateOptions::default())?;
//! let uids = inbox.append(&[NewMessage {
//!     bytes: b"Subject: hello\r\n\r\nHello, Joe.\r\n",
//!     internal_date: None,
//!     system_flags: 0,
//!     user_flags: vec!["$Label1".into()],
//! }])?;
//! inbox.store_flags(&uids, FlagOp::Add, SystemFlags::SEEN, &[])?;
//! drop(inbox);
//!
//! let inbox = store.open_mailbox("example.com", &name)?;
//! let r = &inbox.records()[0];
//! assert_eq!(r.uid, uids[0]);
//! assert_ne!(r.system_flags.0 & SystemFlags::SEEN, 0);
//! assert_eq!(&*inbox.read_message(r.uid)?, b"Subject: hello\r\n\r\nHello, Joe.\r\n");
//! # Ok(()) }
//! ```
//!
//! After a disk failure: the index is lost; `reconstruct` rebuilds it from the message
//! files and the change log, flags included, and `verify` finds the store clean again:
//!
//! ```
//! # use mstore::{Config, CreateOptions, FlagOp, MailboxName, NewMessage, Store, SystemFlags};
//! # fn main() -> mstore::Result<()> {
//! # let dir = tempfile::tempdir().expect("tempdir");
//! # let (user, group) = mstore::current_user_and_group();
//! # let conf = dir.path().join("ms.conf");
//! # std::fs::write(&conf, format!("ms-path: ms\nruntime-user: {user}\nruntime-group: {group}\nfsync: no\n"))
//! #     .expect("write ms.conf");
//! # let store = Store::init(Config::load(&conf)?)?;
//! # let name = MailboxName::parse("user/joe")?;
//! # let mut inbox = store.create_mailbox("example.com", &name, CreateOptions::default())?;
//! # let msg = NewMessage { bytes: b"Subject: a\n\nx\n", internal_date: None, system_flags: 0, user_flags: vec![] };
//! # let uids = inbox.append(&[msg])?;
//! # inbox.store_flags(&uids, FlagOp::Add, SystemFlags::FLAGGED, &[])?;
//! # drop(inbox);
//! use mstore::{reconstruct, verify};
//!
//! let dir = store.open_mailbox("example.com", &name)?.place().dir.clone();
//! std::fs::remove_file(dir.join("ms.index")).expect("lose the index");
//!
//! let selection = reconstruct::Selection { domain: "example.com".into(), mailboxes: vec!["user/joe".into()], ..Default::default() };
//! let report = reconstruct::run(&store, &selection, &reconstruct::Options::default(), &reconstruct::NoProgress)?;
//! assert_eq!(report.exit_code(), 1, "repaired");
//! let inbox = store.open_mailbox("example.com", &name)?;
//! assert_ne!(inbox.records()[0].system_flags.0 & SystemFlags::FLAGGED, 0, "the flag came back from the change log");
//!
//! let scope = verify::Scope { domain: Some("example.com".into()), ..Default::default() };
//! let found = verify::run(&store, &scope, &verify::Options::default(), &verify::NoProgress)?;
//! assert!(found.findings.is_empty(), "{:?}", found.findings);
//! # Ok(()) }
//! ```
//!
//! Reading a damaged file record by record, as the repair tools do ([`codec::index`]):
//!
//! ```
//! use mstore::codec::index;
//!
//! let garbage = vec![0x5a_u8; 1000];
//! assert!(index::decode(&garbage).is_err(), "not an index: a typed error with the byte offset");
//! let salvaged = index::salvage(&garbage);
//! assert!(salvaged.header.is_none() && salvaged.records.is_empty());
//! ```
//!
//! The toolkit's other rooms are private, except `cli`, `fs`, `io`, `import`, `rescue` and
//! `synth`: public for the toolkit's own binaries, test kit, tests and `xtask`, hidden from
//! these docs, and promising no stability.

#![deny(unsafe_code)]

pub mod codec;
pub mod config;
pub mod db;
pub mod error;
pub mod finding;
pub mod flags;
pub mod format;
pub mod layout;
pub mod message;
pub mod reconstruct;
pub mod report;
pub mod store;
pub mod verify;

#[doc(hidden)]
pub mod cli;
mod doctor;
mod estimate;
#[doc(hidden)]
pub mod fs;
#[doc(hidden)]
pub mod import;
#[doc(hidden)]
pub mod io;
mod ledger;
mod privs;
#[doc(hidden)]
pub mod rescue;
mod scan;
mod survey;
#[doc(hidden)]
pub mod synth;
mod uidset;
mod util;

pub use config::Config;
pub use error::{Error, Result};
pub use flags::SystemFlags;
pub use layout::MailboxName;
pub use privs::current_user_and_group;
pub use store::{CreateOptions, FlagOp, Mailbox, NewMessage, Store};
