//! Fuzz target `journal`: the body is `fuzz/bodies.rs`. Seeds: `corpus/fuzz/journal/`.
#![no_main]
#[allow(dead_code)]
#[path = "../bodies.rs"]
mod bodies;
libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::run("journal", data));
