//! The trunk's memory-lean training mode. A segment is a block stage and the pooling stages
//! after it (the first segment also starts at stage 0). The forward keeps only each segment's
//! input: its spike stream O bit-packed (1 bit a value) and its accumulation stream A as f32
//! (A is not binary); everything inside a segment is freed once its forward is done. Just
//! before a segment's backward its forward runs again from that input, with the blocks'
//! buffers (BN running statistics) set to their values before the first run and restored
//! after, so it computes the same numbers bit for bit and the statistics move once per step.
use super::stage::{release, run_stage, Stage};
use crate::error::Result;
use crate::layer::{Buffer, VisitorMut};
use crate::nn::dual_stream_block::DualStreamBlock;
use crate::tensor::{SpikeBits, Tensor};

#[derive(Default)]
#[doc(hidden)]
pub struct Lean {
    /// The mode is on for the next training forward.
    pub on: bool,
    /// The last forward ran in training with the mode on.
    pub ran: bool,
    /// Per stage: its output O packed, where it is a segment's input.
    packed: Vec<SpikeBits>,
    /// Per stage: the output O was packed (and its f32 copy freed).
    is_packed: Vec<bool>,
    /// Per stage: a block's buffers before the last training forward.
    buffers: Vec<Vec<Tensor>>,
}

/// Whether stage `i` starts a segment.
fn starts(stages: &[Stage], i: usize) -> bool {
    i == 0 || matches!(stages[i], Stage::Block(_))
}

/// Whether stage `i` ends a segment.
pub(super) fn ends(stages: &[Stage], i: usize) -> bool {
    i + 1 == stages.len() || matches!(stages[i + 1], Stage::Block(_))
}

/// The segment `start..=end` that stage `i` belongs to.
fn segment(stages: &[Stage], i: usize) -> (usize, usize) {
    let start = (0..=i).rev().find(|&k| starts(stages, k)).unwrap_or(0);
    let end = (i..stages.len()).find(|&k| ends(stages, k)).unwrap_or(stages.len() - 1);
    (start, end)
}

fn block_buffers(block: &mut DualStreamBlock) -> Vec<Tensor> {
    struct Values(Vec<Tensor>);
    impl<'a> VisitorMut<'a> for Values {
        fn buffer(&mut self, buffer: Buffer<'a>) {
            self.0.push(buffer.value.clone());
        }
    }
    let mut values = Values(Vec::new());
    block.visit_mut(&mut values);
    values.0
}

fn set_block_buffers(block: &mut DualStreamBlock, values: &[Tensor]) {
    struct Set<'v>(std::slice::Iter<'v, Tensor>);
    impl<'a> VisitorMut<'a> for Set<'_> {
        fn buffer(&mut self, buffer: Buffer<'a>) {
            buffer.value.copy_from(self.0.next().expect("buffer values of another block"));
        }
    }
    block.visit_mut(&mut Set(values.iter()));
}

impl Lean {
    /// Before a training forward: sizes the per-stage records.
    pub fn begin(&mut self, stages: usize, training: bool) {
        self.ran = training && self.on;
        self.packed.resize_with(stages, SpikeBits::default);
        self.is_packed.clear();
        self.is_packed.resize(stages, false);
        self.buffers.resize_with(stages, Vec::new);
    }

    /// Before stage `i`'s forward: a block's buffers, for the second run.
    pub fn before_stage(&mut self, stage: &mut Stage, i: usize) {
        if let (true, Stage::Block(b)) = (self.ran, stage) {
            self.buffers[i] = block_buffers(b);
            // Its stores are released when its segment's forward is done.
            b.set_keep(false);
        }
    }

    /// After stage `e`, the end of a segment, ran forward: frees what the segment stored
    /// inside, and keeps its input O packed.
    pub fn end_forward(
        &mut self,
        stages: &mut [Stage],
        o: &mut [Tensor],
        a: &mut [Tensor],
        e: usize,
    ) {
        if !self.ran {
            return;
        }
        let (s, _) = segment(stages, e);
        for k in s..=e {
            release(&mut stages[k]);
            if k < e {
                o[k] = Tensor::default();
                a[k] = Tensor::default();
            }
        }
        if s > 0 && self.packed[s - 1].pack(&o[s - 1]) {
            self.is_packed[s - 1] = true;
            o[s - 1] = Tensor::default();
        }
    }

    /// Before the backward of stage `e`, the end of a segment: the segment's forward again.
    pub fn rerun(
        &mut self,
        stages: &mut [Stage],
        o: &mut [Tensor],
        a: &mut [Tensor],
        input: &Tensor,
        aap: bool,
        e: usize,
    ) -> Result<()> {
        let (s, _) = segment(stages, e);
        if s > 0 && self.is_packed[s - 1] {
            self.packed[s - 1].unpack_into(&mut o[s - 1]);
        }
        for k in s..=e {
            let (o_done, o_rest) = o.split_at_mut(k);
            let (a_done, a_rest) = a.split_at_mut(k);
            let o_in = if k == 0 { input } else { &o_done[k - 1] };
            let a_in = if k == 0 { input } else { &a_done[k - 1] };
            let outputs = (&mut o_rest[0], &mut a_rest[0]);
            let after = match &mut stages[k] {
                Stage::Block(b) => {
                    let after = block_buffers(b);
                    set_block_buffers(b, &self.buffers[k]);
                    b.set_keep(true);
                    Some(after)
                }
                Stage::Pool { .. } => None,
            };
            let run = run_stage(&mut stages[k], (o_in, a_in), outputs, aap, true);
            if let (Some(after), Stage::Block(b)) = (after, &mut stages[k]) {
                set_block_buffers(b, &after);
            }
            run?;
        }
        Ok(())
    }

    /// After the backward of stage `s`, the start of a segment: frees the segment again, with
    /// its outputs and its unpacked input.
    pub fn end_backward(
        &mut self,
        stages: &mut [Stage],
        o: &mut [Tensor],
        a: &mut [Tensor],
        s: usize,
    ) {
        let (_, e) = segment(stages, s);
        for k in s..=e {
            release(&mut stages[k]);
            o[k] = Tensor::default();
            a[k] = Tensor::default();
        }
        if s > 0 && self.is_packed[s - 1] {
            o[s - 1] = Tensor::default();
        }
    }

    /// Bytes of the packed segment inputs.
    pub fn packed_bytes(&self) -> usize {
        self.packed.iter().zip(&self.is_packed).filter(|(_, &p)| p).map(|(b, _)| b.bytes()).sum()
    }
}

/// Whether stage `i` starts a segment (its backward ends that segment's).
pub(super) fn starts_segment(stages: &[Stage], i: usize) -> bool {
    starts(stages, i)
}
