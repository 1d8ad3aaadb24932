//! `cargo xtask`: the project's chores (placeholder).
fn main() {}
