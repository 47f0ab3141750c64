//! A global allocator that refuses (and reports) any single allocation above a cap: the fuzz
//! run then proves that no input makes a parser ask for more, instead of hoping the machine has
//! the memory. It also keeps the peak single request seen.
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub struct Capped;

static CAP: AtomicUsize = AtomicUsize::new(usize::MAX);
static LARGEST: AtomicUsize = AtomicUsize::new(0);
static REPORTING: AtomicBool = AtomicBool::new(false);
/// The input being run, dumped beside the report when the cap is passed.
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static CURRENT_LEN: AtomicUsize = AtomicUsize::new(0);
static CRASH_DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

pub fn set_cap(bytes: usize, crash_dir: std::path::PathBuf) {
    CAP.store(bytes, Ordering::Relaxed);
    LARGEST.store(0, Ordering::Relaxed);
    let _ = CRASH_DIR.set(crash_dir);
}

pub fn largest() -> usize {
    LARGEST.load(Ordering::Relaxed)
}

/// Records the input about to run (valid until the next call).
pub fn set_current(input: &[u8]) {
    CURRENT.store(input.as_ptr() as usize, Ordering::Relaxed);
    CURRENT_LEN.store(input.len(), Ordering::Relaxed);
}

fn check(size: usize) {
    if size > CAP.load(Ordering::Relaxed) && !REPORTING.swap(true, Ordering::SeqCst) {
        let _ = writeln!(
            std::io::stderr(),
            "fuzz: ALLOCATION ABOVE THE CAP: {size} bytes (cap {})",
            CAP.load(Ordering::Relaxed)
        );
        let (ptr, len) = (CURRENT.load(Ordering::Relaxed), CURRENT_LEN.load(Ordering::Relaxed));
        if let (Some(dir), true) = (CRASH_DIR.get(), ptr != 0) {
            // SAFETY: set_current stored a slice that outlives the run of that input.
            let input = unsafe { std::slice::from_raw_parts(ptr as *const u8, len) };
            let path = dir.join("oversize-allocation");
            if std::fs::write(&path, input).is_ok() {
                let _ = writeln!(std::io::stderr(), "fuzz: input written to {}", path.display());
            }
        }
        std::process::abort();
    }
    LARGEST.fetch_max(size, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator with the caller's own arguments.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: the caller upholds GlobalAlloc's contract, which System needs too.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: the caller upholds GlobalAlloc's contract, which System needs too.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        // SAFETY: the caller upholds GlobalAlloc's contract, which System needs too.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds GlobalAlloc's contract, which System needs too.
        unsafe { System.dealloc(ptr, layout) }
    }
}
