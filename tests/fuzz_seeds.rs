//! Replays every fuzz seed and every committed crash input under `corpus/fuzz/<target>/`
//! through its target, as an ordinary test: CI needs no fuzzer. Also checks that the
//! committed seeds are exactly what the generator (`cargo xtask seeds`) makes.

use std::path::PathBuf;

#[path = "../fuzz/bodies.rs"]
mod bodies;

fn dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus/fuzz").join(target)
}

#[test]
fn every_seed_and_crash_input_passes_its_target() {
    let mut total = 0;
    for target in bodies::TARGETS {
        let d = dir(target);
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        let mut n = 0;
        for e in entries {
            let path = e.expect("dir entry").path();
            let data = std::fs::read(&path).expect("read seed");
            bodies::run(target, &data);
            n += 1;
        }
        assert!(n > 0, "no seeds for fuzz target {target} in {}", d.display());
        total += n;
    }
    assert!(total >= bodies::TARGETS.len());
}

#[test]
fn committed_seeds_match_the_generator() {
    for target in bodies::TARGETS {
        for (name, bytes) in bodies::seed_inputs(target) {
            let path = dir(target).join(format!("seed-{name}"));
            let committed =
                std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask seeds`)", path.display()));
            assert_eq!(committed, bytes, "{} is stale: run `cargo xtask seeds`", path.display());
        }
    }
}

/// A poor man's fuzzer for CI: deterministic random mutations of every seed (byte flips,
/// cuts, insertions, splices of interesting values) through its target.
#[test]
fn mutated_seeds_never_break_an_invariant() {
    let mut rng = mstore::synth::Rng::new(0xf022);
    for target in bodies::TARGETS {
        for (_, seed) in bodies::seed_inputs(target) {
            for _ in 0..300 {
                let mut b = seed.clone();
                for _ in 0..1 + rng.below(4) {
                    if b.is_empty() {
                        b.push(rng.below(256) as u8);
                        continue;
                    }
                    let i = rng.below(b.len() as u64) as usize;
                    match rng.below(5) {
                        0 => b[i] ^= 1 << rng.below(8),
                        1 => b.truncate(i),
                        2 => b.insert(i, rng.below(256) as u8),
                        3 => {
                            let v = *rng.pick(&[0u32, 1, 0xff, 0xffff, 0x7fff_ffff, u32::MAX]);
                            for (k, byte) in v.to_le_bytes().iter().enumerate() {
                                if let Some(x) = b.get_mut(i + k) {
                                    *x = *byte;
                                }
                            }
                        }
                        _ => b[i] = rng.below(256) as u8,
                    }
                }
                bodies::run(target, &b);
            }
        }
    }
}
