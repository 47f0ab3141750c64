//! The integration tests of dualstream-core, linked into one test binary: every file under
//! `tests/` would otherwise be its own binary, each linked against the whole crate.

mod energy;
mod mean_head;
mod memory_lean;
mod pool_3x3;
mod spikingjelly;
mod unit;
