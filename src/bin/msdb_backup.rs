//! `msdb_backup`: the guide's command. Every binary is the same program ([`mstore::cli::main`]), which runs
//! the command named by the file name it is invoked under; this one defaults to `msdb_backup`.
fn main() -> std::process::ExitCode {
    mstore::cli::main("msdb_backup")
}
