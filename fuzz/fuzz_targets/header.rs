//! Fuzz target `header`: see `mstore::fuzzing`. Seeds: `corpus/fuzz/header/`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mstore::fuzzing::run("header", data));
