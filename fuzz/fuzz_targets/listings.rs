//! Fuzz target `listings`: see `mstore::fuzzing`. Seeds: `corpus/fuzz/listings/`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mstore::fuzzing::run("listings", data));
