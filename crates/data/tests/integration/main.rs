//! The integration tests of dualstream-data, linked into one test binary: every file under
//! `tests/` would otherwise be its own binary, each linked against the whole crate.

mod common;
mod corrupt;
mod datasets;
mod hostile;
mod imagefolder;
mod real_samples;
mod round_trips;
mod spikingjelly_frames;
mod unit;
