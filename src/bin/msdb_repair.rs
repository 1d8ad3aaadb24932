//! `msdb_repair`: a thin shell over [`mstore::cli::msdb_repair_main`].
fn main() -> std::process::ExitCode {
    mstore::cli::msdb_repair_main()
}
