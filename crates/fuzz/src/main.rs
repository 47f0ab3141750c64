//! Mutation fuzzing of every parser that reads untrusted bytes: N-MNIST `.bin`, AEDAT 2/3.1/4,
//! IDX, CIFAR and the model spec JSON (the safetensors checkpoint reader is TypeScript and is
//! fuzzed by `scripts/fuzz-safetensors.ts`). Runs on stable Rust: a seeded generator mutates a
//! seed corpus (files written by the crate's own writers, plus real recordings from
//! `--samples DIR`), and each input must end in `Ok` or an `Err`: a panic is a crash, and so is
//! any single allocation above `--cap` bytes (the global allocator aborts the run on it, after
//! writing the input to the crash folder). `scripts/fuzz.sh` runs every target.
//!
//! Usage: dualstream-fuzz <target> [--execs N] [--seconds S] [--seed K] [--cap BYTES]
//!        [--samples DIR] [--crashes DIR]
//! (the `spec` target caps `--cap` at 1 MiB: see `SPEC_CAP`).
//! Targets: nbin, aedat2, aedat3, aedat4, idx, cifar, spec. Prints one JSON line of results.
mod alloc;
mod mutate;
mod seeds;

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Instant;

use dualstream_core::model::Model;
use dualstream_core::spec::ModelSpec;
use dualstream_data::cifar::CifarKind;
use dualstream_data::file::Source;
use dualstream_data::{aedat2, aedat3, aedat4, cifar, idx, nmnist};

#[global_allocator]
static ALLOCATOR: alloc::Capped = alloc::Capped;

pub const TARGETS: [&str; 7] = ["nbin", "aedat2", "aedat3", "aedat4", "idx", "cifar", "spec"];

/// The `spec` target's cap (allocation limit and allocator cap alike) when `--cap` is larger:
/// every spec-derived size goes through the same checked computation whatever the limit, and a
/// small one keeps each accepted model quick to initialise (a 64 MiB weight takes milliseconds
/// to fill, which would bound the target to a few hundred executions a second).
const SPEC_CAP: usize = 1 << 20;

/// Runs one input through a target's parser. `Ok(true)`: parsed; `Ok(false)`: refused with an
/// error (the expected outcome for most mutated inputs).
fn run(target: &str, input: &[u8]) -> bool {
    let src = || Source::new(Cursor::new(input), "fuzz-input");
    match target {
        "nbin" => nmnist::read_nbin_from(src(), 34, 34).is_ok(),
        "aedat2" => aedat2::read_aedat2_from(src()).is_ok(),
        "aedat3" => aedat3::read_aedat3_from(src(), 128, 128).is_ok(),
        "aedat4" => aedat4::read_aedat4_from(src()).is_ok(),
        "idx" => idx::read_idx_from(src()).is_ok(),
        "cifar" => {
            let a = cifar::read_cifar_from(src(), CifarKind::Cifar10).is_ok();
            let b = cifar::read_cifar_from(src(), CifarKind::Cifar100).is_ok();
            a || b
        }
        "spec" => match serde_json::from_slice::<ModelSpec>(input) {
            Ok(spec) => match Model::from_spec(&spec, 0) {
                Ok(model) => model.layer_shapes().is_ok(),
                Err(_) => false,
            },
            Err(_) => false,
        },
        _ => unreachable!("checked in main"),
    }
}

struct Args {
    target: String,
    execs: u64,
    seconds: f64,
    seed: u64,
    cap: usize,
    samples: Option<PathBuf>,
    crashes: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut argv = std::env::args().skip(1);
    let target = argv.next().ok_or("expected a target: ".to_string() + &TARGETS.join(", "))?;
    if !TARGETS.contains(&target.as_str()) {
        return Err(format!("unknown target {target:?}; expected one of {}", TARGETS.join(", ")));
    }
    let mut args = Args {
        target,
        execs: 100_000,
        seconds: f64::INFINITY,
        seed: 1,
        cap: 64 << 20,
        samples: None,
        crashes: PathBuf::from("target/fuzz-crashes"),
    };
    while let Some(flag) = argv.next() {
        let value = argv.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value:?}: {e}");
        match flag.as_str() {
            "--execs" => args.execs = value.parse().map_err(|e| bad(&e))?,
            "--seconds" => args.seconds = value.parse().map_err(|e| bad(&e))?,
            "--seed" => args.seed = value.parse().map_err(|e| bad(&e))?,
            "--cap" => args.cap = value.parse().map_err(|e| bad(&e))?,
            "--samples" => args.samples = Some(PathBuf::from(value)),
            "--crashes" => args.crashes = PathBuf::from(value),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(args)
}

fn main() {
    let mut args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("dualstream-fuzz: {e}");
            std::process::exit(2);
        }
    };
    std::fs::create_dir_all(&args.crashes).expect("create the crash folder");
    if args.target == "spec" {
        args.cap = args.cap.min(SPEC_CAP);
    }
    let corpus = seeds::corpus(&args.target, args.samples.as_deref());
    // Seeds must parse: a harness whose seeds are all refused would only test the first bytes.
    let parsed_seeds = corpus.iter().filter(|s| run(&args.target, s)).count();
    // The parsers' own limit equals the allocator's cap: a size they accept must fit it.
    dualstream_core::limits::set_max_bytes(args.cap as u64);
    alloc::set_cap(args.cap, args.crashes.clone());
    std::panic::set_hook(Box::new(|_| {}));

    let mut rng = mutate::Rng::new(args.seed);
    let (mut ok, mut refused, mut panics) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    let mut execs = 0u64;
    while execs < args.execs {
        if execs.is_multiple_of(256) && started.elapsed().as_secs_f64() >= args.seconds {
            break;
        }
        let input = if args.target == "spec" && rng.below(2) == 0 {
            mutate::random_spec(&mut rng).into_bytes()
        } else {
            let base = &corpus[rng.below(corpus.len())];
            let other = &corpus[rng.below(corpus.len())];
            mutate::mutate(base, other, &mut rng, args.target == "spec")
        };
        alloc::set_current(&input);
        match catch_unwind(AssertUnwindSafe(|| run(&args.target, &input))) {
            Ok(true) => ok += 1,
            Ok(false) => refused += 1,
            Err(_) => {
                panics += 1;
                let path = args.crashes.join(format!("{}-panic-{execs}", args.target));
                let _ = std::fs::write(&path, &input);
                eprintln!(
                    "fuzz: {} panicked on input {execs}, written to {}",
                    args.target,
                    path.display()
                );
            }
        }
        execs += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "target": args.target,
            "execs": execs,
            "seconds": (seconds * 10.0).round() / 10.0,
            "execsPerSecond": (execs as f64 / seconds).round(),
            "secondsFor10M": (1e7 * seconds / execs.max(1) as f64).round(),
            "parsed": ok,
            "refused": refused,
            "panics": panics,
            "allocationsAboveCap": 0,
            "largestAllocation": alloc::largest(),
            "capBytes": args.cap,
            "seed": args.seed,
            "seeds": corpus.len(),
            "seedsParsed": parsed_seeds,
        })
    );
    std::process::exit(if panics > 0 { 1 } else { 0 });
}
