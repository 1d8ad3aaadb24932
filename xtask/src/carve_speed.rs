//! `cargo xtask drill --carve-speed`: how fast a carving pass reads a device, against a
//! plain sequential read of the same image, both cold (the page cache dropped before each;
//! root only) and warm (the image cached: what the pass costs in CPU).
//!
//! The image is pseudo-random bytes with `n` messages planted at 4 KiB boundaries (where a
//! file system puts file data); the pass looks for them among `10 n` records (most of a
//! real store's missing records are not on the device).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use mstore::rescue::carve::{Sought, carve, read_full};
use mstore::store::derive::{content_hash, prefix_hash};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn message(r: &mut Rng, i: usize) -> Vec<u8> {
    let size = 2048 + (r.next() % 40_000) as usize;
    let mut m = format!(
        "Received: from mx.example.com by store; Mon, 1 Jan 2024 10:{:02}:00 +0000\r\nFrom: a{i}@example.com\r\nSubject: carve {i}\r\n\r\n",
        i % 60
    )
    .into_bytes();
    while m.len() < size {
        m.extend_from_slice(format!("{:016x} ", r.next()).as_bytes());
    }
    m.truncate(size);
    m
}

fn drop_caches() -> Result<(), String> {
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").map_err(|e| format!("drop caches (needs root): {e}"))
}

fn plain_read(img: &Path) -> Result<u64, String> {
    let f = File::open(img).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 8 << 20];
    let mut pos = 0u64;
    loop {
        let n = read_full(&f, &mut buf, pos).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        pos += n as u64;
    }
    Ok(pos)
}

/// Build the image under `work`, time the passes, print a table.
pub fn run(work: &Path, mib: u64, n: usize, rounds: usize) -> Result<(), String> {
    std::fs::create_dir_all(work).map_err(|e| e.to_string())?;
    let img = work.join("carve-speed.img");
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let len = mib << 20;
    let mut sought = Vec::new();
    {
        let mut f = File::create(&img).map_err(|e| e.to_string())?;
        let stride = len / n as u64;
        let mut chunk = vec![0u8; stride as usize];
        for i in 0..n {
            for w in chunk.chunks_mut(8) {
                let x = r.next().to_le_bytes();
                w.copy_from_slice(&x[..w.len()]);
            }
            let m = message(&mut r, i);
            let at = 4096 * (1 + (r.next() % ((stride / 4096).saturating_sub(12).max(1)))) as usize;
            if at + m.len() <= chunk.len() {
                chunk[at..at + m.len()].copy_from_slice(&m);
                sought.push(Sought { id: i, size: m.len() as u64, hash: content_hash(&m), prefix: prefix_hash(&m) });
            }
            f.write_all(&chunk).map_err(|e| e.to_string())?;
        }
        f.sync_all().map_err(|e| e.to_string())?;
    }
    let planted = sought.len();
    for k in 0..planted * 9 {
        let m = message(&mut r, n + k);
        sought.push(Sought { id: n + k, size: m.len() as u64, hash: content_hash(&m), prefix: prefix_hash(&m) });
    }
    let size = std::fs::metadata(&img).map_err(|e| e.to_string())?.len();
    let mb = size as f64 / 1e6;
    println!(
        "carving: image {:.0} MB, {planted} messages on it, {} records sought; {rounds} rounds, interleaved",
        mb,
        sought.len()
    );
    println!("| run | plain read MB/s | carve MB/s | carve time / read time |");
    println!("|---|---|---|---|");
    for cold in [true, false] {
        let mut ratios = Vec::new();
        for _ in 0..rounds {
            if cold {
                drop_caches()?;
            } else {
                plain_read(&img)?;
            }
            let t = Instant::now();
            plain_read(&img)?;
            let read = t.elapsed().as_secs_f64();
            if cold {
                drop_caches()?;
            }
            let t = Instant::now();
            let c = carve(&img, &sought, |_| {}).map_err(|e| e.to_string())?;
            let cv = t.elapsed().as_secs_f64();
            if c.found.len() != planted {
                return Err(format!("carving found {} of {planted} planted messages", c.found.len()));
            }
            ratios.push(cv / read);
            println!(
                "| {} | {:.0} | {:.0} | {:.2} |",
                if cold { "cold" } else { "warm" },
                mb / read,
                mb / cv,
                cv / read
            );
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "| {} median | | | {:.2} (spread {:.2}-{:.2}) |",
            if cold { "cold" } else { "warm" },
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }
    let _ = std::fs::remove_file(&img);
    Ok(())
}
