//! `msdb_backup`: a thin shell over [`mstore::cli::msdb_backup_main`].
fn main() -> std::process::ExitCode {
    mstore::cli::msdb_backup_main()
}
