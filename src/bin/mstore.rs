//! `mstore`: the umbrella command. Every binary is the same program ([`mstore::cli::main`]), which runs
//! the command named by the file name it is invoked under; this one defaults to `mstore`.
fn main() -> std::process::ExitCode {
    mstore::cli::main("mstore")
}
