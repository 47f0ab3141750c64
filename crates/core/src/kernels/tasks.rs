//! Parallel loops over task indices whose body is a `&dyn Fn`. A kernel's task body is often
//! generic (the neuron backward has hundreds of variants); handed to rayon as a closure, every
//! variant compiles rayon's splitting, joining and unwinding machinery again, about half
//! of this crate's code before optimisation. Behind `dyn` that machinery is compiled once
//! per result type, for one indirect call per task (each task is a whole chunk of elements).

use rayon::prelude::*;

/// `[f(0), .., f(tasks - 1)]`, computed on rayon's threads, in index order.
pub fn map_tasks<T: Send>(tasks: usize, f: &(dyn Fn(usize) -> T + Sync)) -> Vec<T> {
    (0..tasks).into_par_iter().map(f).collect()
}

/// `f(0) + .. + f(tasks - 1)`, computed on rayon's threads.
pub fn sum_tasks(tasks: usize, f: &(dyn Fn(usize) -> u64 + Sync)) -> u64 {
    (0..tasks).into_par_iter().map(f).sum()
}
