//! The tests of single modules of the library, one file per module (`a_b` tests `a::b`).

pub mod encoders;
pub mod frame_cache;
pub mod frames;
pub mod image_decode;
pub mod pipeline;
pub mod resample;
pub mod synthetic;
pub mod transforms;
