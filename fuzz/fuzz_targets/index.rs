//! Fuzz target `index`: see `mstore::fuzzing`. Seeds: `corpus/fuzz/index/`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mstore::fuzzing::run("index", data));
