//! `msdb_restore`: a thin shell over [`mstore::cli::msdb_restore_main`].
fn main() -> std::process::ExitCode {
    mstore::cli::msdb_restore_main()
}
