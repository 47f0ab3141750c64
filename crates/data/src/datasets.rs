//! Dataset folders as their original releases lay them out, read lazily: opening a folder lists
//! its samples and labels (from file names and label files), `get(i)` parses one sample. A
//! missing folder or file is an `ERR_IO` error that says what the folder should contain.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use dualstream_core::{Error, Result};

use crate::aedat3::{self, LabelWindow, DVS128_SIZE};
use crate::cifar::{self, CifarKind, CIFAR_PIXELS};
use crate::file::display;
use crate::idx::{self, IdxData};
use crate::{aedat2, nmnist, EventStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// A labelled collection of event recordings.
pub trait EventDataset: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Label of sample `index` without reading it.
    fn label(&self, index: usize) -> usize;
    fn class_names(&self) -> Vec<String>;
    /// (width, height) of the sensor.
    fn sensor_size(&self) -> (u16, u16);
    /// Reads sample `index`: its events and label.
    fn get(&self, index: usize) -> Result<(EventStream, usize)>;
}

/// A labelled collection of 8-bit images, each `channels x height x width` (planar).
pub trait ImageDataset: Send + Sync {
    /// The label of every image, in index order.
    fn labels(&self) -> &[u8];
    fn len(&self) -> usize {
        self.labels().len()
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn label(&self, index: usize) -> usize {
        self.labels()[index] as usize
    }
    fn class_names(&self) -> Vec<String>;
    /// [channels, height, width].
    fn shape(&self) -> [usize; 3];
    fn get(&self, index: usize) -> Result<(Vec<u8>, usize)>;
}

fn check_index(index: usize, len: usize, what: &str) -> Result<()> {
    if index >= len {
        return Err(Error::value(
            format!("{what}.get"),
            format!("a sample index in 0..{len}"),
            index,
        ));
    }
    Ok(())
}

fn missing(path: &Path, expected: &str) -> Error {
    Error::io(display(path), format!("not found; expected {expected}"))
}

/// Entries of `dir` whose names end with `extension`, sorted by file name (byte order, as
/// Python's `sorted` does, which SpikingJelly's folder datasets use).
fn sorted_files(dir: &Path, extension: &str, expected: &str) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|_| missing(dir, expected))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(display(dir), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(extension) && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    if files.is_empty() {
        return Err(Error::io(display(dir), format!("no *{extension} file; expected {expected}")));
    }
    Ok(files)
}

pub const DVS_GESTURE_CLASSES: [&str; 11] = [
    "hand_clapping",
    "right_hand_wave",
    "left_hand_wave",
    "right_arm_clockwise",
    "right_arm_counter_clockwise",
    "left_arm_clockwise",
    "left_arm_counter_clockwise",
    "arm_roll",
    "air_drums",
    "air_guitar",
    "other_gestures",
];

const GESTURE_LAYOUT: &str = "the DVS128 Gesture folder of the original release (DvsGesture/): trials_to_train.txt, \
trials_to_test.txt, and for each trial listed there userXX_<lighting>.aedat and userXX_<lighting>_labels.csv";

/// DVS128 Gesture: one sample per labelled window of each trial listed in
/// `trials_to_train.txt` / `trials_to_test.txt` (1,176 / 288 with the full release). Labels are
/// the CSV classes 1..11 minus one. Consecutive windows of a trial share one parse of its file.
pub struct DvsGesture {
    trials: Vec<(PathBuf, PathBuf)>,
    samples: Vec<(usize, LabelWindow)>,
    /// The last trial read, or the error reading it gave: its windows are asked for in a row,
    /// and a broken file is parsed once, not once per window.
    last_trial: Mutex<Option<(usize, Result<Arc<EventStream>>)>>,
}

impl DvsGesture {
    /// `root` is the `DvsGesture` folder or the folder that contains it.
    pub fn open(root: &Path, split: Split) -> Result<Self> {
        let list_name = match split {
            Split::Train => "trials_to_train.txt",
            Split::Test => "trials_to_test.txt",
        };
        let dir = [root.to_path_buf(), root.join("DvsGesture")]
            .into_iter()
            .find(|d| d.join(list_name).is_file())
            .ok_or_else(|| missing(&root.join(list_name), GESTURE_LAYOUT))?;
        let list_path = dir.join(list_name);
        let list =
            std::fs::read_to_string(&list_path).map_err(|e| Error::io(display(&list_path), e))?;
        let mut trials = Vec::new();
        let mut samples = Vec::new();
        for (i, line) in list.lines().enumerate() {
            let name = line.trim();
            if name.is_empty() {
                continue;
            }
            let Some(stem) = name.strip_suffix(".aedat") else {
                return Err(Error::format(
                    display(&list_path),
                    format!("row {}", i + 1),
                    format!("an .aedat file name, found {name:?}"),
                ));
            };
            let aedat = dir.join(name);
            let labels = dir.join(format!("{stem}_labels.csv"));
            for file in [&aedat, &labels] {
                if !file.is_file() {
                    return Err(missing(
                        file,
                        &format!(
                            "the file listed on row {} of {} ({GESTURE_LAYOUT})",
                            i + 1,
                            display(&list_path)
                        ),
                    ));
                }
            }
            for window in aedat3::read_gesture_labels(&labels)? {
                samples.push((trials.len(), window));
            }
            trials.push((aedat, labels));
        }
        Ok(DvsGesture { trials, samples, last_trial: Mutex::new(None) })
    }

    pub fn trial_count(&self) -> usize {
        self.trials.len()
    }

    fn trial_events(&self, trial: usize) -> Result<Arc<EventStream>> {
        if let Some((cached, events)) =
            self.last_trial.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
        {
            if *cached == trial {
                return events.clone();
            }
        }
        let events =
            aedat3::read_aedat3(&self.trials[trial].0, DVS128_SIZE, DVS128_SIZE).map(Arc::new);
        *self.last_trial.lock().unwrap_or_else(|p| p.into_inner()) = Some((trial, events.clone()));
        events
    }
}

impl EventDataset for DvsGesture {
    fn len(&self) -> usize {
        self.samples.len()
    }
    fn label(&self, index: usize) -> usize {
        self.samples[index].1.label
    }
    fn class_names(&self) -> Vec<String> {
        DVS_GESTURE_CLASSES.iter().map(|s| s.to_string()).collect()
    }
    fn sensor_size(&self) -> (u16, u16) {
        (DVS128_SIZE, DVS128_SIZE)
    }
    fn get(&self, index: usize) -> Result<(EventStream, usize)> {
        check_index(index, self.len(), "DvsGesture")?;
        let (trial, window) = &self.samples[index];
        let events = self.trial_events(*trial)?;
        Ok((aedat3::cut_window(&events, window, &self.trials[*trial].1)?, window.label))
    }
}

/// Files of a class-per-folder dataset with their labels, one recording per sample, and how to
/// read one: CIFAR10-DVS and N-MNIST are this with different layouts and formats.
struct LabelledFiles {
    name: &'static str,
    files: Vec<(PathBuf, usize)>,
    class_names: Vec<String>,
    sensor: (u16, u16),
    read: fn(&Path) -> Result<EventStream>,
}

impl EventDataset for LabelledFiles {
    fn len(&self) -> usize {
        self.files.len()
    }
    fn label(&self, index: usize) -> usize {
        self.files[index].1
    }
    fn class_names(&self) -> Vec<String> {
        self.class_names.clone()
    }
    fn sensor_size(&self) -> (u16, u16) {
        self.sensor
    }
    fn get(&self, index: usize) -> Result<(EventStream, usize)> {
        check_index(index, self.len(), self.name)?;
        let (path, label) = &self.files[index];
        Ok(((self.read)(path)?, *label))
    }
}

/// A dataset made of one `LabelledFiles`: the trait delegates to it.
macro_rules! file_dataset {
    ($t:ty) => {
        impl EventDataset for $t {
            fn len(&self) -> usize {
                self.set.len()
            }
            fn label(&self, index: usize) -> usize {
                self.set.label(index)
            }
            fn class_names(&self) -> Vec<String> {
                self.set.class_names()
            }
            fn sensor_size(&self) -> (u16, u16) {
                self.set.sensor_size()
            }
            fn get(&self, index: usize) -> Result<(EventStream, usize)> {
                self.set.get(index)
            }
        }
    };
}

pub const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// CIFAR10-DVS: `root/<class>/*.aedat` for the 10 CIFAR-10 classes (AEDAT 2.0, 128x128). Split
/// as SpikingJelly's `split_to_train_test_set(0.9, ...)`: per class, in file-name order, the
/// first ceil(0.9 n) files train and the rest test (900 / 100 per class with the full release).
pub struct Cifar10Dvs {
    set: LabelledFiles,
}

impl Cifar10Dvs {
    pub fn open(root: &Path, split: Split) -> Result<Self> {
        let expected = format!(
            "the CIFAR10-DVS folder: one folder per class ({}) of .aedat files",
            CIFAR10_CLASSES.join(", ")
        );
        if !root.is_dir() {
            return Err(missing(root, &expected));
        }
        let mut files = Vec::new();
        for (label, class) in CIFAR10_CLASSES.iter().enumerate() {
            let class_files = sorted_files(&root.join(class), ".aedat", &expected)?;
            let train = (class_files.len() * 9).div_ceil(10);
            let chosen = match split {
                Split::Train => &class_files[..train],
                Split::Test => &class_files[train..],
            };
            files.extend(chosen.iter().map(|f| (f.clone(), label)));
        }
        let class_names = CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect();
        let size = aedat2::CIFAR10_DVS_SIZE;
        let read = |path: &Path| Ok(aedat2::read_aedat2(path)?.1);
        Ok(Cifar10Dvs {
            set: LabelledFiles {
                name: "Cifar10Dvs",
                files,
                class_names,
                sensor: (size, size),
                read,
            },
        })
    }
}

file_dataset!(Cifar10Dvs);

/// N-MNIST: `root/Train/<digit>/*.bin` and `root/Test/<digit>/*.bin` (34x34), in file-name order.
pub struct NMnist {
    set: LabelledFiles,
}

impl NMnist {
    pub fn open(root: &Path, split: Split) -> Result<Self> {
        let part = match split {
            Split::Train => "Train",
            Split::Test => "Test",
        };
        let expected =
            "the N-MNIST folder: Train/ and Test/, each with digit folders 0..9 of .bin files";
        let dir = root.join(part);
        if !dir.is_dir() {
            return Err(missing(&dir, expected));
        }
        let mut files = Vec::new();
        for digit in 0..10 {
            let digit_files = sorted_files(&dir.join(digit.to_string()), ".bin", expected)?;
            files.extend(digit_files.into_iter().map(|f| (f, digit)));
        }
        let class_names = (0..10).map(|d| d.to_string()).collect();
        let sensor = (nmnist::NMNIST_WIDTH, nmnist::NMNIST_HEIGHT);
        let read =
            |path: &Path| nmnist::read_nbin(path, nmnist::NMNIST_WIDTH, nmnist::NMNIST_HEIGHT);
        Ok(NMnist { set: LabelledFiles { name: "NMnist", files, class_names, sensor, read } })
    }
}

file_dataset!(NMnist);

/// CIFAR-10 (`cifar-10-batches-bin/`: data_batch_1..5.bin, test_batch.bin, batches.meta.txt) or
/// CIFAR-100 (`cifar-100-binary/`: train.bin, test.bin, fine_label_names.txt). Images are read
/// one record at a time; labels are read once at open. For CIFAR-100 the label is the fine label.
pub struct CifarFolder {
    kind: CifarKind,
    /// (file, records in it)
    files: Vec<(PathBuf, usize)>,
    labels: Vec<u8>,
    coarse_labels: Vec<u8>,
    class_names: Vec<String>,
}

impl CifarFolder {
    pub fn open(root: &Path, kind: CifarKind, split: Split) -> Result<Self> {
        let (folder, names, meta): (&str, Vec<String>, &str) = match (kind, split) {
            (CifarKind::Cifar10, Split::Train) => (
                "cifar-10-batches-bin",
                (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
                "batches.meta.txt",
            ),
            (CifarKind::Cifar10, Split::Test) => {
                ("cifar-10-batches-bin", vec!["test_batch.bin".into()], "batches.meta.txt")
            }
            (CifarKind::Cifar100, Split::Train) => {
                ("cifar-100-binary", vec!["train.bin".into()], "fine_label_names.txt")
            }
            (CifarKind::Cifar100, Split::Test) => {
                ("cifar-100-binary", vec!["test.bin".into()], "fine_label_names.txt")
            }
        };
        let expected = format!(
            "the {} binary version folder ({folder}/) holding {}",
            kind.name(),
            names.join(", ")
        );
        let dir = [root.to_path_buf(), root.join(folder)]
            .into_iter()
            .find(|d| d.join(&names[0]).is_file())
            .ok_or_else(|| missing(&root.join(&names[0]), &expected))?;
        let mut files = Vec::new();
        let (mut labels, mut coarse_labels) = (Vec::new(), Vec::new());
        for name in &names {
            let path = dir.join(name);
            if !path.is_file() {
                return Err(missing(&path, &expected));
            }
            let count = cifar::cifar_record_count(&path, kind)?;
            read_cifar_labels(&path, kind, count, &mut labels, &mut coarse_labels)?;
            files.push((path, count));
        }
        let class_names = match std::fs::read_to_string(dir.join(meta)) {
            Ok(text) => {
                text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
            }
            Err(_) if kind == CifarKind::Cifar10 => {
                CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect()
            }
            Err(_) => (0..100).map(|i| i.to_string()).collect(),
        };
        Ok(CifarFolder { kind, files, labels, coarse_labels, class_names })
    }

    /// CIFAR-100 coarse labels (0..19); empty for CIFAR-10.
    pub fn coarse_labels(&self) -> &[u8] {
        &self.coarse_labels
    }
}

/// Reads only the label bytes of every record (a seek past each image).
fn read_cifar_labels(
    path: &Path,
    kind: CifarKind,
    count: usize,
    labels: &mut Vec<u8>,
    coarse: &mut Vec<u8>,
) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let file = std::fs::File::open(path).map_err(|e| Error::io(display(path), e))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 12, file);
    let mut label = [0u8; 2];
    let n = kind.label_bytes();
    for i in 0..count {
        let offset = (i * kind.record_bytes()) as u64;
        reader
            .seek(SeekFrom::Start(offset))
            .and_then(|_| reader.read_exact(&mut label[..n]))
            .map_err(|e| Error::io(display(path), e))?;
        let (fine, coarse_label) = match kind {
            CifarKind::Cifar10 => (label[0], None),
            CifarKind::Cifar100 => (label[1], Some(label[0])),
        };
        if fine as usize >= kind.classes() || coarse_label.is_some_and(|c| c >= 20) {
            return Err(Error::format(
                display(path),
                format!("byte {offset}"),
                format!(
                    "{} label(s) in range (fine < {}, coarse < 20), found {:?}",
                    kind.name(),
                    kind.classes(),
                    &label[..n]
                ),
            ));
        }
        labels.push(fine);
        coarse.extend(coarse_label);
    }
    Ok(())
}

impl ImageDataset for CifarFolder {
    fn labels(&self) -> &[u8] {
        &self.labels
    }
    fn class_names(&self) -> Vec<String> {
        self.class_names.clone()
    }
    fn shape(&self) -> [usize; 3] {
        [3, 32, 32]
    }
    fn get(&self, index: usize) -> Result<(Vec<u8>, usize)> {
        check_index(index, self.len(), self.kind.name())?;
        let mut local = index;
        for (path, count) in &self.files {
            if local < *count {
                let (pixels, label, _) = cifar::read_cifar_record(path, self.kind, local)?;
                debug_assert_eq!(pixels.len(), CIFAR_PIXELS);
                return Ok((pixels, label as usize));
            }
            local -= count;
        }
        unreachable!("index checked against the record counts")
    }
}

/// The original MNIST / Fashion-MNIST distribution: `train-images-idx3-ubyte` +
/// `train-labels-idx1-ubyte` (or `t10k-*` for test), plain or `.gz`. Read whole at open (a gzip
/// stream cannot be indexed); 47 MB for MNIST's training images.
pub struct IdxImages {
    pixels: Vec<u8>,
    labels: Vec<u8>,
    shape: [usize; 3],
}

impl IdxImages {
    pub fn open(root: &Path, split: Split) -> Result<Self> {
        let prefix = match split {
            Split::Train => "train",
            Split::Test => "t10k",
        };
        let expected = format!(
            "the MNIST / Fashion-MNIST IDX files {prefix}-images-idx3-ubyte and {prefix}-labels-idx1-ubyte (plain or .gz)"
        );
        let find = |name: String| -> Result<PathBuf> {
            [root.join(&name), root.join(format!("{name}.gz"))]
                .into_iter()
                .find(|p| p.is_file())
                .ok_or_else(|| missing(&root.join(&name), &expected))
        };
        let images_path = find(format!("{prefix}-images-idx3-ubyte"))?;
        let labels_path = find(format!("{prefix}-labels-idx1-ubyte"))?;
        let images = idx::read_idx(&images_path)?;
        let labels = idx::read_idx(&labels_path)?;
        let (IdxData::U8(pixels), 3) = (images.data, images.dims.len()) else {
            return Err(Error::format(
                display(&images_path),
                "byte 2",
                "unsigned-byte images of 3 dimensions [n, rows, columns]",
            ));
        };
        let (IdxData::U8(label_values), 1) = (labels.data, labels.dims.len()) else {
            return Err(Error::format(
                display(&labels_path),
                "byte 2",
                "unsigned-byte labels of 1 dimension [n]",
            ));
        };
        if label_values.len() != images.dims[0] {
            return Err(Error::format(
                display(&labels_path),
                "byte 4",
                format!(
                    "{} labels, one per image of {}, found {}",
                    images.dims[0],
                    display(&images_path),
                    label_values.len()
                ),
            ));
        }
        if let Some(i) = label_values.iter().position(|&l| l > 9) {
            return Err(Error::format(
                display(&labels_path),
                format!("byte {}", 8 + i),
                format!("a label in 0..9, found {}", label_values[i]),
            ));
        }
        Ok(IdxImages { pixels, labels: label_values, shape: [1, images.dims[1], images.dims[2]] })
    }
}

impl ImageDataset for IdxImages {
    fn labels(&self) -> &[u8] {
        &self.labels
    }
    /// The digits, or for Fashion-MNIST the class indices: the files hold no names.
    fn class_names(&self) -> Vec<String> {
        (0..10).map(|d| d.to_string()).collect()
    }
    fn shape(&self) -> [usize; 3] {
        self.shape
    }
    fn get(&self, index: usize) -> Result<(Vec<u8>, usize)> {
        check_index(index, self.len(), "Idx")?;
        let size = self.shape.iter().product::<usize>();
        Ok((self.pixels[index * size..(index + 1) * size].to_vec(), self.labels[index] as usize))
    }
}
