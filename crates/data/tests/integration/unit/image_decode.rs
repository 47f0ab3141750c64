//! Tests of `dualstream_data::image_decode`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `image_decode` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_data::image_decode::*;
}
#[test]
fn dimension_limit_uses_checked_arithmetic() {
    assert!(check_dimensions("a.png", 100, 100, 3).is_ok());
    assert!(check_dimensions("a.png", 0, 100, 3).is_err());
    let err = check_dimensions("a.png", 65535, 65535, 3).unwrap_err().to_string();
    assert!(err.contains("a.png") && err.contains("65535 x 65535"), "{err}");
    assert!(check_dimensions("a.png", usize::MAX, 2, 3).is_err());
}

#[test]
fn unknown_formats_are_named() {
    let err = decode_image(b"BM\0\0\0\0", "x.jpg").unwrap_err().to_string();
    assert!(err.contains("x.jpg") && err.contains("BMP"), "{err}");
    let err = decode_image(b"", "y.png").unwrap_err().to_string();
    assert!(err.contains("y.png") && err.contains("empty"), "{err}");
}

#[test]
fn oversized_headers_fail_before_decoding() {
    // A PNG header claiming 60000 x 60000 RGBA, with no image data after it.
    let mut png = PNG_MAGIC.to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&60000u32.to_be_bytes());
    ihdr.extend_from_slice(&60000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    let err = decode_image(&png, "huge.png").unwrap_err().to_string();
    assert!(err.contains("huge.png") && err.contains("60000 x 60000"), "{err}");
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
