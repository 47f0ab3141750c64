//! Class-per-folder image datasets (ImageNet's `train/<class>/*.JPEG`, `val/<class>/*`), listed
//! exactly as torchvision's `ImageFolder` lists them, so a label index means the same class as
//! in a model trained with PyTorch: classes are the sub-folder names in code-point order; the
//! files of a class are found by walking its folder (following links), folders in path order
//! and files in name order, keeping torchvision's image extensions (case-insensitive). Opening
//! lists files only; `get(i)` decodes one.
use std::path::{Path, PathBuf};

use dualstream_core::{Error, Result};

use crate::file::display;
use crate::image_decode::{read_image, RgbImage};

/// torchvision's `IMG_EXTENSIONS`. Only JPEG and PNG decode; the others are listed (so sample
/// indices agree with torchvision's) and give a clear error when read.
pub const IMAGE_EXTENSIONS: [&str; 9] =
    [".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"];

const LAYOUT: &str = "a folder with one sub-folder of images per class (JPEG or PNG), \
as ImageNet's train/<class>/*.JPEG";

#[derive(Debug, Clone)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    /// (file, label), in torchvision's order.
    samples: Vec<(PathBuf, usize)>,
}

fn has_image_extension(name: &str) -> bool {
    let lower = name.to_lowercase();
    IMAGE_EXTENSIONS.iter().any(|e| lower.ends_with(e))
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(display(dir), e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(display(dir), e))?;
        out.push((entry.file_name().to_string_lossy().into_owned(), entry.path()));
    }
    out.sort();
    Ok(out)
}

/// Every folder under `dir` (itself included), following links, sorted by path as Python's
/// `sorted(os.walk(dir))` sorts them.
fn walk_folders(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
    if depth > 64 {
        return Err(Error::io(display(dir), "folders nested more than 64 deep (a link cycle?)"));
    }
    out.push(dir.to_path_buf());
    for (_, path) in read_dir_sorted(dir)? {
        if path.is_dir() {
            walk_folders(&path, out, depth + 1)?;
        }
    }
    Ok(())
}

impl ImageFolder {
    /// Lists `root`: its sub-folders are the classes.
    pub fn open(root: &Path) -> Result<Self> {
        if !root.is_dir() {
            return Err(Error::io(display(root), format!("not a folder; expected {LAYOUT}")));
        }
        let classes: Vec<String> = read_dir_sorted(root)?
            .into_iter()
            .filter(|(_, p)| p.is_dir())
            .map(|(name, _)| name)
            .collect();
        if classes.is_empty() {
            return Err(Error::io(
                display(root),
                format!("no class sub-folder; expected {LAYOUT}"),
            ));
        }
        let mut samples = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let mut folders = Vec::new();
            walk_folders(&root.join(class), &mut folders, 0)?;
            folders.sort_by(|a, b| {
                a.as_os_str().to_string_lossy().cmp(&b.as_os_str().to_string_lossy())
            });
            let before = samples.len();
            for folder in folders {
                for (name, path) in read_dir_sorted(&folder)? {
                    if has_image_extension(&name) && path.is_file() {
                        samples.push((path, label));
                    }
                }
            }
            if samples.len() == before {
                return Err(Error::io(
                    display(&root.join(class)),
                    format!(
                        "class folder without any image file (extensions {}); expected {LAYOUT}",
                        IMAGE_EXTENSIONS.join(" ")
                    ),
                ));
            }
        }
        Ok(ImageFolder { root: root.to_path_buf(), classes, samples })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn len(&self) -> usize {
        self.samples.len()
    }
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
    pub fn classes(&self) -> &[String] {
        &self.classes
    }
    pub fn label(&self, index: usize) -> usize {
        self.samples[index].1
    }
    pub fn path(&self, index: usize) -> &Path {
        &self.samples[index].0
    }

    /// Decodes sample `index`: its RGB image and label.
    pub fn get(&self, index: usize) -> Result<(RgbImage, usize)> {
        if index >= self.len() {
            return Err(Error::value(
                "ImageFolder.get",
                format!("a sample index in 0..{}", self.len()),
                index,
            ));
        }
        let (path, label) = &self.samples[index];
        Ok((read_image(path)?, *label))
    }
}

/// The folder of a split in an ImageNet-style root: `train/` for training, `val/` (else
/// `test/`) for evaluation.
pub fn split_folder(root: &Path, train: bool) -> Result<PathBuf> {
    let names: &[&str] = if train { &["train"] } else { &["val", "test"] };
    names.iter().map(|n| root.join(n)).find(|p| p.is_dir()).ok_or_else(|| {
        Error::io(
            display(&root.join(names[0])),
            format!(
                "not found; expected an image folder root holding {} with one sub-folder per class",
                if train { "train/" } else { "val/ (or test/)" }
            ),
        )
    })
}

/// Opens a split of an ImageNet-style root. The evaluation split must have the training split's
/// classes (when both exist): otherwise label indices would disagree between them.
pub fn open_split(root: &Path, train: bool) -> Result<ImageFolder> {
    let folder = ImageFolder::open(&split_folder(root, train)?)?;
    if !train {
        if let Ok(train_dir) = split_folder(root, true) {
            let train_classes: Vec<String> = read_dir_sorted(&train_dir)?
                .into_iter()
                .filter(|(_, p)| p.is_dir())
                .map(|(name, _)| name)
                .collect();
            if train_classes != folder.classes {
                let missing: Vec<&String> =
                    train_classes.iter().filter(|c| !folder.classes.contains(c)).take(5).collect();
                let extra: Vec<&String> =
                    folder.classes.iter().filter(|c| !train_classes.contains(c)).take(5).collect();
                return Err(Error::value(
                    format!("image folder {}", display(folder.root())),
                    format!("the {} class folders of {}", train_classes.len(), display(&train_dir)),
                    format!(
                        "{} class folders (missing {missing:?}, extra {extra:?})",
                        folder.classes.len()
                    ),
                ));
            }
        }
    }
    Ok(folder)
}
