//! Replays the fuzz targets' checks (`fuzz/checks.rs`, shared with the
//! libFuzzer binaries) on their seeds and on every input that once made a
//! target fail (`tests/fuzz_regressions/<target>/`), so a fixed crash stays
//! fixed. Also a short deterministic run on generated inputs, so that every
//! `cargo test` mutates the seeds a little without libFuzzer.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

type Check = fn(&[u8]);

const TARGETS: &[(&str, Check)] = &[
    ("request_head", checks::request_head),
    ("response_head", checks::response_head),
    ("chunked", checks::chunked),
    ("config", checks::config),
    ("snapshot", checks::snapshot),
    ("proxy_header", checks::proxy_header),
    ("routes", checks::routes),
    ("auth", checks::auth),
    ("rewrite", checks::rewrite),
    ("range", checks::range),
    ("cache_rules", checks::cache_rules),
    ("x509", checks::x509),
    ("client_fields", checks::client_fields),
    ("log_line", checks::log_line),
    ("jwt", checks::jwt),
    ("ocsp", checks::ocsp),
    ("sub_filter", checks::sub_filter),
    ("gunzip", checks::gunzip),
    ("fastcgi_reply", checks::fastcgi_reply),
    ("client_hello", checks::client_hello),
    ("acme", checks::acme),
    ("dns", checks::dns),
    ("geoip", checks::geoip),
];

/// Every file in `dir`, sorted; none when it does not exist.
fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| {
            let path = e.path();
            (path.display().to_string(), std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn seeds_and_past_crashes_pass_every_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut replayed = 0;
    for (target, check) in TARGETS {
        for dir in [
            root.join("fuzz/seeds").join(target),
            root.join("tests/fuzz_regressions").join(target),
        ] {
            for (name, data) in inputs(&dir) {
                let outcome = std::panic::catch_unwind(|| check(&data));
                assert!(outcome.is_ok(), "{target}: {name} fails");
                replayed += 1;
            }
        }
    }
    assert!(replayed >= TARGETS.len(), "no seeds found");
}

/// A small xorshift generator: deterministic, no crate needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Mutates seeds (flip, insert, delete, duplicate, splice in HTTP-ish
/// tokens) and runs every check on the results: a poor man's fuzzer that
/// runs everywhere in well under a second.
#[test]
fn mutated_seeds_pass_every_check() {
    const TOKENS: &[&[u8]] = &[
        b"\r\n",
        b"\n",
        b"\r",
        b" ",
        b"\t",
        b":",
        b",",
        b";",
        b"\0",
        b"0",
        b"f",
        b"\xff",
        b"chunked",
        b"Content-Length: ",
        b"Transfer-Encoding: ",
        b"Host: ",
        b"HTTP/1.1",
        b"=",
        b"#",
        b"%",
        b"targets",
        b"INVERSO\0",
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (target, check) in TARGETS {
        let seeds = inputs(&root.join("fuzz/seeds").join(target));
        for (_, seed) in &seeds {
            for _ in 0..300 {
                let mut data = seed.clone();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(data.len() + 1);
                    match rng.below(5) {
                        0 if at < data.len() => data[at] ^= 1 << rng.below(8),
                        1 => {
                            let token = TOKENS[rng.below(TOKENS.len())];
                            data.splice(at..at, token.iter().copied());
                        }
                        2 if at < data.len() => {
                            let end = (at + 1 + rng.below(8)).min(data.len());
                            data.drain(at..end);
                        }
                        3 => {
                            let copy = data[at..].to_vec();
                            data.extend_from_slice(&copy);
                        }
                        _ => data.truncate(at),
                    }
                }
                let outcome = std::panic::catch_unwind(|| check(&data));
                assert!(
                    outcome.is_ok(),
                    "{target} fails on {:?}",
                    String::from_utf8_lossy(&data)
                );
            }
        }
    }
}
