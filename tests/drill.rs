//! The real disk-failure drill, small (seconds): a demo store of 200 messages on a
//! loop-mounted ext4 image, the directory blocks of its three largest mailboxes zeroed, then
//! 5% of the inode-table blocks, `e2fsck -fy`, `mstore rescue` with the image taken before
//! fsck. Every message must come back with its UID, flags and internal date, or be named in
//! the loss ledger; a second rescue must change nothing. The full matrix is
//! `cargo xtask drill` (README, "After a disk failure").

mod support;

#[path = "../xtask/src/drill.rs"]
#[allow(dead_code)]
mod drill;

fn options(work: &std::path::Path) -> drill::Options {
    drill::Options {
        messages: 200,
        work: work.to_path_buf(),
        mstore: std::path::PathBuf::from(env!("CARGO_BIN_EXE_mstore")),
        // MSTORE_DRILL_KEEP=1 keeps the images, the store and the copies (to look at a
        // failure), under MSTORE_DRILL_WORK when it is set.
        keep: std::env::var_os("MSTORE_DRILL_KEEP").is_some(),
        seed: 11,
    }
}

#[test]
fn ext4_drill_directory_blocks_and_inode_tables() {
    if !support::root("the ext4 drill (loop devices, mount, e2fsck)") {
        return;
    }
    if let Err(why) = drill::available() {
        let ok = support::require(support::Need::Root, false, "the ext4 drill", &why);
        assert!(!ok);
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = std::env::var_os("MSTORE_DRILL_WORK").map_or_else(|| tmp.path().to_path_buf(), std::path::PathBuf::from);
    for sc in [drill::Scenario::DirBlocks, drill::Scenario::Inodes] {
        let row = drill::scenario(&options(&work), sc).unwrap_or_else(|e| panic!("{}: {e}", sc.name()));
        assert!(row.hit > 0, "{}: the damage reached nothing: {row:?}", sc.name());
        assert_eq!(row.lost, 0, "{}: {row:?}", sc.name());
        assert!(!row.second_run_changed, "{}: a second rescue changed the store: {row:?}", sc.name());
        assert!(row.rescue == 1 || row.rescue == 4, "{}: {row:?}", sc.name());
        assert!(row.fsck <= 2, "{}: e2fsck left errors: {row:?}", sc.name());
    }
}
