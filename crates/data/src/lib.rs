//! dualstream-data: reading datasets from their original files (no downloads), turning event
//! streams into frames, augmenting and encoding samples. Pure Rust; errors are the engine's
//! `Error` so they reach JavaScript with a code (`ERR_FORMAT` names the file and byte offset).

pub mod events;

pub use events::EventStream;

pub mod aedat2;
pub mod aedat3;
pub mod aedat4;
pub mod cifar;
pub mod datasets;
pub mod encoders;
pub mod file;
pub mod frame_cache;
pub mod frames;
pub mod idx;
pub mod image_decode;
pub mod image_folder;
pub mod nmnist;
pub mod pipeline;
pub mod resample;
pub mod synthetic;
pub mod transforms;
