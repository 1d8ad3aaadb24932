//! `msdb_recover`: a thin shell over [`mstore::cli::msdb_recover_main`].
fn main() -> std::process::ExitCode {
    mstore::cli::msdb_recover_main()
}
