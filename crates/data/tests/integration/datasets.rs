//! Dataset folders laid out like the original releases, built in a temp dir by our writers.

use crate::common::{random_events, TempDir};
use dualstream_data::aedat3::{self, LabelWindow};
use dualstream_data::cifar::{self, CifarImages, CifarKind};
use dualstream_data::datasets::{
    Cifar10Dvs, CifarFolder, DvsGesture, EventDataset, IdxImages, ImageDataset, NMnist, Split,
    CIFAR10_CLASSES,
};
use dualstream_data::idx::{self, IdxArray, IdxData};
use dualstream_data::{aedat2, nmnist};

fn io_message(err: dualstream_core::Error) -> String {
    assert_eq!(err.code(), "ERR_IO", "{err}");
    err.to_string()
}

#[test]
fn dvs_gesture_folder_windows_and_split() {
    let root = TempDir::new("gesture");
    let dir = root.0.join("DvsGesture");
    std::fs::create_dir_all(&dir).unwrap();
    let mut recordings = Vec::new();
    for (k, trial) in ["user01_fluorescent", "user01_lab", "user02_natural"].iter().enumerate() {
        let events = random_events(128, 128, 4000, 20 + k as u64, 100);
        aedat3::write_aedat3(&dir.join(format!("{trial}.aedat")), &events).unwrap();
        let windows: Vec<LabelWindow> = (0..3)
            .map(|w| {
                let class = (k * 3 + w) as u8 + 1;
                let start = events.t[w * 1000];
                LabelWindow {
                    class,
                    label: class as usize - 1,
                    start,
                    end: events.t[w * 1000 + 500],
                    row: w + 2,
                }
            })
            .collect();
        aedat3::write_gesture_labels(&dir.join(format!("{trial}_labels.csv")), &windows).unwrap();
        recordings.push((events, windows));
    }
    std::fs::write(
        dir.join("trials_to_train.txt"),
        "user01_fluorescent.aedat\nuser01_lab.aedat\n\n",
    )
    .unwrap();
    std::fs::write(dir.join("trials_to_test.txt"), "user02_natural.aedat\n").unwrap();

    // The folder itself or its parent both work.
    let train = DvsGesture::open(&root.0, Split::Train).unwrap();
    let test = DvsGesture::open(&dir, Split::Test).unwrap();
    assert_eq!((train.len(), test.len(), train.trial_count()), (6, 3, 2));
    assert_eq!((0..6).map(|i| train.label(i)).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);
    assert_eq!(train.class_names().len(), 11);
    // Sample 4 is window 1 of trial 1: the events with start <= t < end, label class - 1.
    let (events, label) = train.get(4).unwrap();
    let (all, windows) = &recordings[1];
    let expected: Vec<i64> =
        all.t.iter().copied().filter(|&t| t >= windows[1].start && t < windows[1].end).collect();
    assert_eq!((events.t, label), (expected, 4));
    let (events, label) = test.get(2).unwrap();
    assert_eq!((events.len() >= 500, label), (true, 8));
    assert!(test.get(3).is_err());

    // A listed trial whose label file is missing.
    std::fs::remove_file(dir.join("user02_natural_labels.csv")).unwrap();
    let Err(err) = DvsGesture::open(&root.0, Split::Test) else { panic!("opened without labels") };
    let msg = io_message(err);
    assert!(msg.contains("user02_natural_labels.csv") && msg.contains("row 1"), "{msg}");
    let Err(err) = DvsGesture::open(&root.0.join("nowhere"), Split::Train) else { panic!() };
    let msg = io_message(err);
    assert!(msg.contains("trials_to_train.txt") && msg.contains("_labels.csv"), "{msg}");
}

#[test]
fn cifar10_dvs_folder_split_per_class() {
    let root = TempDir::new("c10dvs");
    for (c, class) in CIFAR10_CLASSES.iter().enumerate() {
        let dir = root.0.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        // 11 files: ceil(0.9 * 11) = 10 train, 1 test; names sort as strings (…_1, _10, _2).
        for i in 0..11 {
            let events = random_events(128, 128, 20, (c * 100 + i) as u64, 10);
            aedat2::write_aedat2(&dir.join(format!("cifar10_{class}_{i}.aedat")), &events, None)
                .unwrap();
        }
    }
    let train = Cifar10Dvs::open(&root.0, Split::Train).unwrap();
    let test = Cifar10Dvs::open(&root.0, Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (100, 10));
    assert_eq!((train.label(9), train.label(10), test.label(9)), (0, 1, 9));
    // The test file of each class is the last in name order: cifar10_<class>_9.aedat.
    let (events, label) = test.get(3).unwrap();
    let expected = aedat2::read_aedat2(&root.0.join("cat/cifar10_cat_9.aedat")).unwrap().1;
    assert_eq!((events, label), (expected, 3));

    std::fs::remove_dir_all(root.0.join("truck")).unwrap();
    let Err(err) = Cifar10Dvs::open(&root.0, Split::Train) else { panic!() };
    let msg = io_message(err);
    assert!(msg.contains("truck") && msg.contains("airplane, automobile"), "{msg}");
}

#[test]
fn nmnist_folder() {
    let root = TempDir::new("nmnist");
    for split in ["Train", "Test"] {
        for d in 0..10 {
            let dir = root.0.join(split).join(d.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..2 {
                nmnist::write_nbin(
                    &dir.join(format!("{:05}.bin", i + d * 10)),
                    &random_events(34, 34, 30, (d * 7 + i) as u64, 5),
                )
                .unwrap();
            }
        }
    }
    let train = NMnist::open(&root.0, Split::Train).unwrap();
    assert_eq!(train.len(), 20);
    assert_eq!((train.label(0), train.label(19)), (0, 9));
    let (events, label) = train.get(5).unwrap();
    assert_eq!(events, nmnist::read_nbin(&root.0.join("Train/2/00021.bin"), 34, 34).unwrap());
    assert_eq!(label, 2);
    std::fs::remove_dir_all(root.0.join("Test")).unwrap();
    let Err(err) = NMnist::open(&root.0, Split::Test) else { panic!() };
    assert!(io_message(err).contains("Train/ and Test/"));
}

#[test]
fn cifar_folders() {
    let root = TempDir::new("cifar-folder");
    let dir = root.0.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    for b in 1..=5 {
        let n = b; // batches of 1..5 images: 15 in all
        let images = CifarImages {
            kind: CifarKind::Cifar10,
            pixels: (0..n * 3072).map(|i| (i + b) as u8).collect(),
            labels: (0..n).map(|i| ((i + b) % 10) as u8).collect(),
            coarse_labels: vec![],
        };
        cifar::write_cifar(&dir.join(format!("data_batch_{b}.bin")), &images).unwrap();
    }
    let train = CifarFolder::open(&root.0, CifarKind::Cifar10, Split::Train).unwrap();
    assert_eq!(train.len(), 15);
    assert_eq!(train.class_names()[0], "airplane");
    // Index 3 is the first image of batch 3 (batches hold 1, 2, 3, ... images).
    let (pixels, label) = train.get(3).unwrap();
    assert_eq!((pixels[0], pixels[3071], label), (3, (3071 + 3) as u8, 3));
    assert_eq!(train.shape(), [3, 32, 32]);
    let Err(err) = CifarFolder::open(&root.0, CifarKind::Cifar10, Split::Test) else { panic!() };
    assert!(io_message(err).contains("test_batch.bin"));

    let dir100 = root.0.join("cifar-100-binary");
    std::fs::create_dir_all(&dir100).unwrap();
    let images = CifarImages {
        kind: CifarKind::Cifar100,
        pixels: vec![1; 2 * 3072],
        labels: vec![42, 99],
        coarse_labels: vec![3, 19],
    };
    cifar::write_cifar(&dir100.join("test.bin"), &images).unwrap();
    std::fs::write(
        dir100.join("fine_label_names.txt"),
        (0..100).map(|i| format!("class{i}\n")).collect::<String>(),
    )
    .unwrap();
    let test = CifarFolder::open(&root.0, CifarKind::Cifar100, Split::Test).unwrap();
    assert_eq!((test.len(), test.label(1), test.coarse_labels()), (2, 99, &[3u8, 19][..]));
    assert_eq!(test.class_names()[42], "class42");
}

#[test]
fn idx_folder() {
    let root = TempDir::new("idx-folder");
    let images = IdxArray { dims: vec![3, 2, 2], data: IdxData::U8((0..12).collect()) };
    idx::write_idx(&root.path("t10k-images-idx3-ubyte"), &images).unwrap();
    idx::write_idx(
        &root.path("t10k-labels-idx1-ubyte"),
        &IdxArray { dims: vec![3], data: IdxData::U8(vec![7, 0, 9]) },
    )
    .unwrap();
    let test = IdxImages::open(&root.0, Split::Test).unwrap();
    assert_eq!((test.len(), test.shape()), (3, [1, 2, 2]));
    assert_eq!(test.get(2).unwrap(), (vec![8, 9, 10, 11], 9));
    let Err(err) = IdxImages::open(&root.0, Split::Train) else { panic!() };
    assert!(io_message(err).contains("train-images-idx3-ubyte"));
    // Label count must match the image count.
    idx::write_idx(
        &root.path("t10k-labels-idx1-ubyte"),
        &IdxArray { dims: vec![2], data: IdxData::U8(vec![7, 0]) },
    )
    .unwrap();
    let Err(err) = IdxImages::open(&root.0, Split::Test) else { panic!() };
    assert_eq!(err.code(), "ERR_FORMAT");
    assert!(err.to_string().contains("3 labels, one per image"), "{err}");
}
