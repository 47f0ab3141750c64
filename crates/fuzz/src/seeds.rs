//! The seed corpus of each target: files written by the crate's writers (so every format
//! feature the writers use is covered), real recordings from a samples folder, and model specs.
use std::path::Path;

use dualstream_data::aedat4::WriteCompression;
use dualstream_data::cifar::{CifarImages, CifarKind};
use dualstream_data::idx::{IdxArray, IdxData};
use dualstream_data::{aedat2, aedat3, aedat4, cifar, idx, nmnist, EventStream};

use crate::mutate::Rng;

fn events(width: u16, height: u16, n: usize, seed: u64) -> EventStream {
    let mut rng = Rng::new(seed);
    let mut e = EventStream::new(width, height);
    let mut t = 0i64;
    for _ in 0..n {
        t += rng.below(50) as i64;
        e.push(
            t,
            rng.below(width as usize) as u16,
            rng.below(height as usize) as u16,
            rng.below(2) as u8,
        );
    }
    e
}

/// Writes with `write` into a temporary file and returns its bytes.
fn written(write: impl FnOnce(&Path) -> dualstream_core::Result<()>) -> Vec<u8> {
    let path = std::env::temp_dir().join(format!("dualstream-fuzz-seed-{}", std::process::id()));
    write(&path).expect("a seed writer failed");
    let bytes = std::fs::read(&path).expect("read a seed back");
    let _ = std::fs::remove_file(&path);
    bytes
}

fn synthetic(target: &str) -> Vec<Vec<u8>> {
    match target {
        "nbin" => vec![
            written(|p| nmnist::write_nbin(p, &events(34, 34, 300, 1))),
            written(|p| nmnist::write_nbin(p, &events(34, 34, 5, 2))),
        ],
        "aedat2" => vec![
            written(|p| {
                aedat2::write_aedat2(p, &events(128, 128, 300, 3), Some(1_600_000_000_000))
            }),
            written(|p| aedat2::write_aedat2(p, &events(128, 128, 3, 4), None)),
        ],
        "aedat3" => vec![
            written(|p| aedat3::write_aedat3(p, &events(128, 128, 300, 5))),
            written(|p| aedat3::write_aedat3(p, &events(128, 128, 5000, 6))),
        ],
        "aedat4" => vec![
            written(|p| {
                aedat4::write_aedat4(p, &events(64, 48, 300, 7), WriteCompression::Lz4, 100)
            }),
            written(|p| {
                aedat4::write_aedat4(p, &events(64, 48, 300, 8), WriteCompression::None, 120)
            }),
        ],
        "idx" => vec![
            written(|p| {
                idx::write_idx(
                    p,
                    &IdxArray {
                        dims: vec![10, 4, 4],
                        data: IdxData::U8((0..160).map(|v| v as u8).collect()),
                    },
                )
            }),
            written(|p| {
                idx::write_idx(
                    p,
                    &IdxArray {
                        dims: vec![3, 5],
                        data: IdxData::F32((0..15).map(|v| v as f32 * 0.5).collect()),
                    },
                )
            }),
            written(|p| {
                idx::write_idx(
                    p,
                    &IdxArray { dims: vec![6], data: IdxData::I16(vec![-3, 1, 2, 300, 0, 9]) },
                )
            }),
        ],
        "cifar" => vec![
            written(|p| {
                let pixels = (0..3 * 3072).map(|v| (v % 251) as u8).collect();
                cifar::write_cifar(
                    p,
                    &CifarImages {
                        kind: CifarKind::Cifar10,
                        pixels,
                        labels: vec![0, 9, 4],
                        coarse_labels: vec![],
                    },
                )
            }),
            written(|p| {
                let pixels = (0..2 * 3072).map(|v| (v % 13) as u8).collect();
                cifar::write_cifar(
                    p,
                    &CifarImages {
                        kind: CifarKind::Cifar100,
                        pixels,
                        labels: vec![99, 3],
                        coarse_labels: vec![19, 0],
                    },
                )
            }),
        ],
        "spec" => SPECS.iter().map(|s| s.as_bytes().to_vec()).collect(),
        _ => vec![],
    }
}

const SPECS: [&str; 4] = [
    r#"{"timeSteps":4,"inputShape":[1,28,28],"layers":[{"type":"conv2d","inChannels":1,"outChannels":8,"kernelSize":[3,3],"padding":[1,1]},{"type":"batchNorm2d","numFeatures":8},{"type":"lif"},{"type":"maxPool2d","kernelSize":[2,2]},{"type":"flatten"},{"type":"linear","inFeatures":1568,"outFeatures":10}]}"#,
    r#"{"timeSteps":2,"inputShape":[2,8,8],"encoding":"sequence","layers":[{"type":"conv2d","inChannels":2,"outChannels":4,"kernelSize":[3,3],"stride":[2,2],"padding":[1,1],"bias":false},{"type":"if"},{"type":"sewBlock","connect":"add","branch":[{"type":"conv2d","inChannels":4,"outChannels":4,"kernelSize":[3,3],"padding":[1,1]},{"type":"plif"}]},{"type":"globalAvgPool"},{"type":"flatten"},{"type":"dropout","p":0.2},{"type":"linear","inFeatures":4,"outFeatures":3}]}"#,
    r#"{"timeSteps":2,"inputShape":[1,8,8],"layers":[{"type":"conv2d","inChannels":1,"outChannels":4,"kernelSize":[3,3],"padding":[1,1]},{"type":"lif"},{"type":"dualStream","head":{"inFeatures":4,"outFeatures":5},"stages":[{"type":"block","connect":"iand","branch":[{"type":"conv2d","inChannels":4,"outChannels":4,"kernelSize":[3,3],"padding":[1,1]},{"type":"batchNorm2d","numFeatures":4},{"type":"lif"}]},{"type":"avgPool2d","kernelSize":[2,2]}]}]}"#,
    r#"{"timeSteps":3,"inputShape":[6],"layers":[{"type":"linear","inFeatures":6,"outFeatures":5},{"type":"relu"},{"type":"spikingResnetBlock","branch":[{"type":"linear","inFeatures":5,"outFeatures":5}]},{"type":"linear","inFeatures":5,"outFeatures":2}]}"#,
];

/// Which target a real sample file seeds, from its extension and first line.
fn target_of(path: &Path, bytes: &[u8]) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?;
    match ext {
        "bin" => Some("nbin"),
        "aedat4" => Some("aedat4"),
        "aedat" if bytes.starts_with(b"#!AER-DAT2") => Some("aedat2"),
        "aedat" if bytes.starts_with(b"#!AER-DAT3") => Some("aedat3"),
        "aedat" => Some("aedat2"),
        _ => None,
    }
}

/// The seeds of `target`: synthetic files, then the samples folder's files of that format
/// (each cut to its first 64 KB so that an execution stays fast: a whole 1 MB recording
/// runs ~100 times a second, its first packets ~100 times faster).
pub fn corpus(target: &str, samples: Option<&Path>) -> Vec<Vec<u8>> {
    let mut out = synthetic(target);
    if let Some(dir) = samples {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        for path in files {
            let Ok(bytes) = std::fs::read(&path) else { continue };
            if target_of(&path, &bytes) == Some(target) {
                let keep = bytes.len().min(1 << 16);
                out.push(bytes[..keep].to_vec());
            }
        }
    }
    out
}
