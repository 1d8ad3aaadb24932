//! Fuzz target `cache`: see `mstore::fuzzing`. Seeds: `corpus/fuzz/cache/`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mstore::fuzzing::run("cache", data));
