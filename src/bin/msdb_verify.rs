//! `msdb_verify`: a thin shell over [`mstore::cli::msdb_verify_main`].
fn main() -> std::process::ExitCode {
    mstore::cli::msdb_verify_main()
}
