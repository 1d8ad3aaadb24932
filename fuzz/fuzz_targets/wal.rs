//! Fuzz target `wal`: see `mstore::fuzzing`. Seeds: `corpus/fuzz/wal/`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mstore::fuzzing::run("wal", data));
