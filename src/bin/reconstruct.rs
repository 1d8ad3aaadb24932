//! `reconstruct`: the guide's command. Every binary is the same program ([`mstore::cli::main`]), which runs
//! the command named by the file name it is invoked under; this one defaults to `reconstruct`.
fn main() -> std::process::ExitCode {
    mstore::cli::main("reconstruct")
}
