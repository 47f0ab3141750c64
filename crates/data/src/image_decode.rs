//! JPEG and PNG files decoded to 8-bit RGB, as torchvision's `ImageFolder` loader
//! (`PIL.Image.open(f).convert("RGB")`) sees them: grey is replicated to three channels, alpha
//! is dropped, palettes are expanded, CMYK is converted, 16-bit samples keep their high byte.
//! EXIF orientation is not applied (Pillow's `open` does not apply it either). The format comes
//! from the file's first bytes, not its name. Dimensions are checked against a byte limit before
//! any pixel buffer is allocated.
use std::io::Cursor;
use std::path::Path;

use dualstream_core::{Error, Result};
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::file::display;

/// Largest decoded image accepted, in bytes of 8-bit samples at the file's own channel count
/// (256 MiB: a 9,400 x 9,400 RGB photograph; ImageNet's largest is far below).
pub const MAX_DECODED_BYTES: usize = 1 << 28;

/// An 8-bit RGB image, interleaved (`height x width x 3`, row-major), as Pillow's `"RGB"` mode.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

const JPEG_MAGIC: [u8; 3] = [0xFF, 0xD8, 0xFF];
#[doc(hidden)]
pub const PNG_MAGIC: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1A, b'\n'];

/// What a file starts with, for the error when it is neither JPEG nor PNG.
fn sniff(bytes: &[u8]) -> &'static str {
    let starts = |m: &[u8]| bytes.starts_with(m);
    if bytes.is_empty() {
        "an empty file"
    } else if starts(b"BM") {
        "a BMP file"
    } else if starts(b"GIF8") {
        "a GIF file"
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "a WebP file"
    } else if starts(b"II*\0") || starts(b"MM\0*") {
        "a TIFF file"
    } else if starts(b"P") && bytes.len() > 1 && (b'1'..=b'6').contains(&bytes[1]) {
        "a PPM/PGM file"
    } else {
        "bytes of no known image format"
    }
}

/// Fails unless `width x height x channels` bytes fit in [`MAX_DECODED_BYTES`].
pub fn check_dimensions(path: &str, width: usize, height: usize, channels: usize) -> Result<()> {
    let bytes = width.checked_mul(height).and_then(|p| p.checked_mul(channels));
    match bytes {
        Some(b) if b > 0 && b <= MAX_DECODED_BYTES => Ok(()),
        _ => Err(Error::format(
            path,
            "header",
            format!(
                "an image of at most {MAX_DECODED_BYTES} decoded bytes and no empty dimension, \
                 found {width} x {height} x {channels} channels"
            ),
        )),
    }
}

/// Reads and decodes a JPEG or PNG file.
pub fn read_image(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(display(path), e))?;
    decode_image(&bytes, &display(path))
}

/// Decodes JPEG or PNG bytes; `name` is the file named in errors.
pub fn decode_image(bytes: &[u8], name: &str) -> Result<RgbImage> {
    if bytes.starts_with(&JPEG_MAGIC) {
        decode_jpeg(bytes, name)
    } else if bytes.starts_with(&PNG_MAGIC) {
        decode_png(bytes, name)
    } else {
        Err(Error::format(name, "byte 0", format!("a JPEG or PNG image, found {}", sniff(bytes))))
    }
}

fn decode_jpeg(bytes: &[u8], name: &str) -> Result<RgbImage> {
    let bad = |e: zune_jpeg::errors::DecodeErrors| {
        Error::format(name, "JPEG data", format!("a decodable JPEG image ({e})"))
    };
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_max_width(u16::MAX as usize)
        .set_max_height(u16::MAX as usize);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(bad)?;
    let info = decoder.info().ok_or_else(|| {
        Error::format(name, "JPEG header", "a frame header (SOF) before the image data")
    })?;
    let (width, height) = (info.width as usize, info.height as usize);
    check_dimensions(name, width, height, 3)?;
    let pixels = decoder.decode().map_err(bad)?;
    if pixels.len() != width * height * 3 {
        return Err(Error::format(
            name,
            "JPEG data",
            format!(
                "{} RGB bytes for {width} x {height}, decoded {}",
                width * height * 3,
                pixels.len()
            ),
        ));
    }
    Ok(RgbImage { width, height, pixels })
}

fn decode_png(bytes: &[u8], name: &str) -> Result<RgbImage> {
    let bad = |e: png::DecodingError| {
        Error::format(name, "PNG data", format!("a decodable PNG image ({e})"))
    };
    let mut decoder =
        png::Decoder::new_with_limits(Cursor::new(bytes), png::Limits { bytes: MAX_DECODED_BYTES });
    {
        let header = decoder.read_header_info().map_err(bad)?;
        let channels = header.color_type.samples()
            * if header.bit_depth == png::BitDepth::Sixteen { 2 } else { 1 };
        check_dimensions(name, header.width as usize, header.height as usize, channels.max(3))?;
    }
    // Palette and low-bit grey to 8 bits per sample, tRNS to alpha, 16-bit to the high byte.
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(bad)?;
    let size = reader.output_buffer_size().ok_or_else(|| {
        Error::format(name, "PNG header", "an image whose decoded size fits in memory")
    })?;
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf).map_err(bad)?;
    let (width, height) = (frame.width as usize, frame.height as usize);
    let samples = frame.color_type.samples();
    let stride = frame.line_size;
    let mut pixels = Vec::with_capacity(width * height * 3);
    for row in buf.chunks(stride).take(height) {
        for px in row[..width * samples].chunks_exact(samples) {
            match samples {
                // Grey, grey + alpha: the grey value three times (Pillow's L -> RGB).
                1 | 2 => pixels.extend_from_slice(&[px[0], px[0], px[0]]),
                // RGB, RGBA: alpha dropped (Pillow's RGBA -> RGB).
                _ => pixels.extend_from_slice(&px[..3]),
            }
        }
    }
    if pixels.len() != width * height * 3 {
        return Err(Error::format(name, "PNG data", format!("{height} rows of {width} pixels")));
    }
    Ok(RgbImage { width, height, pixels })
}
