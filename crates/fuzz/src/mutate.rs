//! Mutations of a seed: bit flips, interesting values written over size fields, inserted,
//! deleted, duplicated and spliced chunks, truncation; for JSON also numbers replaced with
//! extreme ones and layer types swapped. Driven by a seeded xorshift generator, so a run is
//! reproducible from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING_32: [u32; 14] =
    [0, 1, 2, 7, 8, 16, 28, 0x7F, 0xFF, 0xFFFF, 1 << 30, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF];
const INTERESTING_NUMBERS: [&str; 14] = [
    "0",
    "1",
    "2",
    "3",
    "-1",
    "65536",
    "1000000",
    "1000000000",
    "4294967296",
    "1e12",
    "18446744073709551615",
    "1e308",
    "0.5",
    "NaN",
];
const LAYER_TYPES: [&str; 15] = [
    "conv2d",
    "linear",
    "batchNorm2d",
    "maxPool2d",
    "avgPool2d",
    "globalAvgPool",
    "flatten",
    "dropout",
    "if",
    "lif",
    "plif",
    "sewBlock",
    "spikingResnetBlock",
    "relu",
    "dualStream",
];

fn mutate_bytes(data: &mut Vec<u8>, other: &[u8], rng: &mut Rng) {
    let len = data.len();
    match rng.below(9) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = [0, 1, 0x7F, 0x80, 0xFF][rng.below(5)];
        }
        2 if len >= 4 => {
            let i = rng.below(len - 3);
            let v = INTERESTING_32[rng.below(INTERESTING_32.len())];
            let bytes = if rng.below(2) == 0 { v.to_le_bytes() } else { v.to_be_bytes() };
            data[i..i + 4].copy_from_slice(&bytes);
        }
        3 if len > 0 => {
            let i = rng.below(len);
            let n = rng.below((len - i).min(64)) + 1;
            data.drain(i..i + n);
        }
        4 => {
            let i = rng.below(len + 1);
            let n = rng.below(32) + 1;
            let fill: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            data.splice(i..i, fill);
        }
        5 if len > 0 => {
            let i = rng.below(len);
            let n = rng.below((len - i).min(256)) + 1;
            let chunk = data[i..i + n].to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, chunk);
        }
        6 if len > 0 => data.truncate(rng.below(len)),
        7 if !other.is_empty() && len > 0 => {
            let cut = rng.below(len);
            let from = rng.below(other.len());
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        _ if len >= 8 => {
            let i = rng.below(len - 7);
            data[i..i + 8].copy_from_slice(&(rng.next() >> rng.below(64)).to_le_bytes());
        }
        _ => data.push(rng.next() as u8),
    }
}

/// Replaces one JSON number or one layer type name.
fn mutate_json(data: &mut Vec<u8>, rng: &mut Rng) {
    let text = String::from_utf8_lossy(data).into_owned();
    if rng.below(3) == 0 {
        let kinds: Vec<usize> =
            text.match_indices("\"type\":\"").map(|(i, m)| i + m.len()).collect();
        if kinds.is_empty() {
            return;
        }
        let start = kinds[rng.below(kinds.len())];
        let end = start + text[start..].find('"').unwrap_or(0);
        let new = LAYER_TYPES[rng.below(LAYER_TYPES.len())];
        *data = format!("{}{new}{}", &text[..start], &text[end..]).into_bytes();
        return;
    }
    let bytes = text.as_bytes();
    let starts: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit()))
        .collect();
    if starts.is_empty() {
        return;
    }
    let start = starts[rng.below(starts.len())];
    let end =
        start + bytes[start..].iter().take_while(|b| b.is_ascii_digit() || **b == b'.').count();
    let new = INTERESTING_NUMBERS[rng.below(INTERESTING_NUMBERS.len())];
    *data = format!("{}{new}{}", &text[..start], &text[end..]).into_bytes();
}

pub fn mutate(base: &[u8], other: &[u8], rng: &mut Rng, json: bool) -> Vec<u8> {
    let mut data = base.to_vec();
    for _ in 0..rng.below(4) + 1 {
        if json && rng.below(4) != 0 {
            mutate_json(&mut data, rng);
        } else {
            mutate_bytes(&mut data, other, rng);
        }
    }
    data
}

/// A random model spec: a few layers with sizes mostly small, sometimes extreme, blocks nested.
pub fn random_spec(rng: &mut Rng) -> String {
    fn size(rng: &mut Rng) -> u64 {
        match rng.below(10) {
            0 => [0u64, 1 << 20, 1 << 31, 1_000_000_000_000, u32::MAX as u64][rng.below(5)],
            _ => rng.below(16) as u64 + 1,
        }
    }
    fn layers(rng: &mut Rng, depth: usize) -> String {
        let n = rng.below(5) + 1;
        let items: Vec<String> = (0..n)
            .map(|_| match rng.below(if depth > 3 { 8 } else { 11 }) {
                0 => format!(
                    r#"{{"type":"conv2d","inChannels":{},"outChannels":{},"kernelSize":[{},{}],"padding":[{},{}],"stride":[{},{}]}}"#,
                    size(rng), size(rng), size(rng), size(rng), size(rng).wrapping_sub(1), size(rng).wrapping_sub(1), size(rng), size(rng)
                ),
                1 => format!(r#"{{"type":"linear","inFeatures":{},"outFeatures":{}}}"#, size(rng), size(rng)),
                2 => format!(r#"{{"type":"batchNorm2d","numFeatures":{}}}"#, size(rng)),
                3 => format!(r#"{{"type":"maxPool2d","kernelSize":[{},{}]}}"#, size(rng), size(rng)),
                4 => r#"{"type":"flatten"}"#.to_string(),
                5 => r#"{"type":"lif"}"#.to_string(),
                6 => r#"{"type":"globalAvgPool"}"#.to_string(),
                7 => r#"{"type":"relu"}"#.to_string(),
                8 => format!(r#"{{"type":"sewBlock","connect":"add","branch":{}}}"#, layers(rng, depth + 1)),
                9 => format!(r#"{{"type":"spikingResnetBlock","branch":{}}}"#, layers(rng, depth + 1)),
                _ => format!(
                    r#"{{"type":"dualStream","head":{{"inFeatures":{},"outFeatures":{}}},"stages":[{{"type":"block","connect":"iand","branch":{}}}]}}"#,
                    size(rng), size(rng), layers(rng, depth + 1)
                ),
            })
            .collect();
        format!("[{}]", items.join(","))
    }
    let shape: Vec<String> = (0..rng.below(3) + 1).map(|_| size(rng).to_string()).collect();
    format!(
        r#"{{"timeSteps":{},"inputShape":[{}],"layers":{}}}"#,
        size(rng),
        shape.join(","),
        layers(rng, 0)
    )
}
