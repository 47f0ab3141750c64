//! Where a training step's peak heap comes from: runs training steps of a model spec on random
//! binary event frames (a DVS-like input at a given density) under an allocator that counts
//! the live heap bytes, and prints the peak and the large allocations live at that peak with
//! the engine functions that made them.
//!
//! `cargo run --release -p dualstream-core --example memory_peak -- SPEC.json [default|recompute|recompute-whole|recompute-chunked] [batch] [density] [steps]`
//!
//! `recompute-whole` and `recompute-chunked`: the memory-lean mode with its SEW and dual-stream
//! blocks run over all time steps at once, or over chunks of them (`nn::sew_chunks`);
//! `recompute` takes the library's choice.
//!
//! The spec is a sequence-encoded model's, as `benches/workloads.ts` builds them
//! (`JSON.stringify(model.spec)`).
use dualstream_core::loss::LossSpec;
use dualstream_core::model::{Model, Trainer};
use dualstream_core::nn::sew_chunks::with_chunked_backward;
use dualstream_core::optim::schedule::ScheduleSpec;
use dualstream_core::optim::OptimizerSpec;
use dualstream_core::spec::ModelSpec;
use dualstream_core::Tensor;
use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Allocations from this size up are followed one by one (with the stack that made them).
const LARGE: usize = 1 << 20;
/// A new snapshot of the large allocations is taken when the peak has grown this much.
const SNAPSHOT_STEP: usize = 8 << 20;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static TRACKING: AtomicBool = AtomicBool::new(false);
static STATE: Mutex<Option<Tracked>> = Mutex::new(None);

#[derive(Default)]
struct Tracked {
    /// Live large allocations: address -> (bytes, stack id).
    live: HashMap<usize, (usize, usize)>,
    stacks: Vec<Backtrace>,
    /// The large allocations live at the last snapshot, and the heap total then.
    snapshot: Vec<(usize, usize)>,
    snapshot_total: usize,
    /// The stack of the allocation that set the last snapshot's peak.
    peak_at: Option<Backtrace>,
}

thread_local! {
    /// Set while this thread runs the tracking code (which allocates itself).
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

fn inside<R>(f: impl FnOnce() -> R) -> Option<R> {
    INSIDE.with(|c| {
        if c.get() {
            return None;
        }
        c.set(true);
        let r = f();
        c.set(false);
        Some(r)
    })
}

fn on_alloc(ptr: *mut u8, size: usize) {
    let live = LIVE.fetch_add(size, Ordering::SeqCst) + size;
    let peak = PEAK.fetch_max(live, Ordering::SeqCst).max(live);
    if !TRACKING.load(Ordering::Relaxed) {
        return;
    }
    inside(|| {
        let mut guard = STATE.lock().unwrap();
        let state = guard.get_or_insert_with(Tracked::default);
        if size >= LARGE {
            state.stacks.push(Backtrace::force_capture());
            let id = state.stacks.len() - 1;
            state.live.insert(ptr as usize, (size, id));
        }
        if peak == live && live >= state.snapshot_total + SNAPSHOT_STEP {
            state.snapshot = state.live.values().copied().collect();
            state.snapshot_total = live;
            state.peak_at = Some(Backtrace::force_capture());
        }
    });
}

fn on_free(ptr: *mut u8, size: usize) {
    LIVE.fetch_sub(size, Ordering::SeqCst);
    if size >= LARGE && TRACKING.load(Ordering::Relaxed) {
        inside(|| {
            if let Some(state) = STATE.lock().unwrap().as_mut() {
                state.live.remove(&(ptr as usize));
            }
        });
    }
}

// SAFETY: every call forwards to the system allocator with the caller's layout; the counting
// around it does not touch the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            on_alloc(p, layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            on_alloc(p, layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_free(ptr, layout.size());
        // SAFETY: `ptr` came from this allocator with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `GlobalAlloc::realloc` requires, forwarded.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            on_free(ptr, layout.size());
            on_alloc(p, new_size);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The engine frames of a stack, innermost first, without the allocation plumbing.
fn site(stack: &Backtrace) -> String {
    frames_of(stack, 4)
}

/// The innermost `n` engine frames of a stack, as [`site`] picks them.
fn frames_of(stack: &Backtrace, n: usize) -> String {
    let text = stack.to_string();
    let frames: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("dualstream_core::") && !l.starts_with("at "))
        .map(|l| l.split_once(": ").map_or(l, |(_, f)| f))
        .filter(|f| !f.contains("::tensor::") && !f.contains("scratch::") && !f.contains("timed"))
        .take(n)
        .collect();
    frames.join(" < ")
}

const MIB: f64 = 1048576.0;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        "usage: memory_peak SPEC.json [default|recompute|recompute-whole|recompute-chunked] [batch] [density] [steps]";
    let spec: ModelSpec =
        serde_json::from_str(&std::fs::read_to_string(args.get(1).expect(usage)).unwrap()).unwrap();
    let mode = args.get(2).map_or("default", |m| m.as_str());
    let chunked = match mode {
        "recompute-chunked" => Some(true),
        "recompute-whole" => Some(false),
        _ => None,
    };
    let lean = mode.starts_with("recompute");
    let batch: usize = args.get(3).map_or(8, |s| s.parse().unwrap());
    let density: f64 = args.get(4).map_or(0.034, |s| s.parse().unwrap());
    let steps: usize = args.get(5).map_or(2, |s| s.parse().unwrap());
    let mut shape = vec![spec.time_steps, batch];
    shape.extend_from_slice(&spec.input_shape);
    let numel: usize = shape.iter().product();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let x = Tensor::from_vec(&shape, (0..numel).map(|_| (next() < density) as u8 as f32).collect())
        .unwrap();
    let classes = 11;
    let y: Vec<u32> = (0..batch).map(|i| (i % classes) as u32).collect();
    let mut model = Model::from_spec(&spec, 1).unwrap();
    model.set_memory_lean(lean);
    let opt: OptimizerSpec =
        serde_json::from_str(r#"{"type":"sgd","lr":0.01,"momentum":0.9}"#).unwrap();
    let loss: LossSpec = serde_json::from_str(r#"{"type":"crossEntropy"}"#).unwrap();
    let mut trainer = Trainer::new(&opt, &ScheduleSpec::default(), &loss).unwrap();
    let before = LIVE.load(Ordering::SeqCst);
    TRACKING.store(true, Ordering::SeqCst);
    for s in 0..steps {
        let start = std::time::Instant::now();
        let out = dualstream_core::in_pool(|| {
            let mut step = || trainer.train_step(&mut model, &x, &y).unwrap();
            match chunked {
                Some(on) => with_chunked_backward(on, step),
                None => step(),
            }
        });
        println!(
            "step {s}: loss {:.4}, {:.2} s, live heap {:.1} MiB, peak {:.1} MiB, stored by the forward {:.1} MiB",
            out.loss,
            start.elapsed().as_secs_f64(),
            LIVE.load(Ordering::SeqCst) as f64 / MIB,
            PEAK.load(Ordering::SeqCst) as f64 / MIB,
            model.stored_bytes() as f64 / MIB,
        );
    }
    TRACKING.store(false, Ordering::SeqCst);
    let state = STATE.lock().unwrap().take().unwrap_or_default();
    println!(
        "heap before training {:.1} MiB; peak {:.1} MiB; large allocations at the peak:",
        before as f64 / MIB,
        state.snapshot_total as f64 / MIB
    );
    if let Some(stack) = &state.peak_at {
        println!("the allocation that set the peak: {}", frames_of(stack, 10));
    }
    let mut by_site: HashMap<String, (usize, usize)> = HashMap::new();
    for &(bytes, id) in &state.snapshot {
        let e = by_site.entry(site(&state.stacks[id])).or_default();
        e.0 += bytes;
        e.1 += 1;
    }
    let mut rows: Vec<_> = by_site.into_iter().collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.1 .0));
    let mut total = 0;
    for (site, (bytes, count)) in rows {
        total += bytes;
        println!("{:9.1} MiB  x{count:<3} {site}", bytes as f64 / MIB);
    }
    println!("{:9.1} MiB  in large allocations", total as f64 / MIB);
}
