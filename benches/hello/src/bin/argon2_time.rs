//! Times one argon2id hash with the RustCrypto `argon2` crate (the one gatehouse uses), on one
//! thread, reusing the block buffer as gatehouse's hashing threads do.
//! Usage: argon2-time MEMORY_KIB ITERATIONS PARALLELISM RUNS
//! Prints one JSON line: {"runs":N,"median_ms":..,"min_ms":..,"max_ms":..}
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::time::Instant;

fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numeric arguments"))
        .collect();
    let (m, t, p, runs) = match args[..] {
        [m, t, p, runs] => (m, t, p, runs.max(1)),
        _ => (19456, 2, 1, 15),
    };
    let params = Params::new(m, t, p, Some(32)).expect("valid argon2 parameters");
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut blocks = vec![Block::default(); params.block_count()];
    let mut out = [0u8; 32];
    let salt = [7u8; 16];
    // One warm-up hash (page faults of the block buffer).
    argon
        .hash_password_into_with_memory(b"correct horse battery", &salt, &mut out, &mut blocks)
        .expect("hash");
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        argon
            .hash_password_into_with_memory(b"correct horse battery", &salt, &mut out, &mut blocks)
            .expect("hash");
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{{\"runs\":{},\"median_ms\":{:.3},\"min_ms\":{:.3},\"max_ms\":{:.3}}}",
        runs,
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
}
