//! The questions asked of a whole layer tree (its parameters, buffers, energy counters, firing
//! rates, gradient norms, audit, stored bytes, the AAP switch), each one visitor over
//! [`Layer::visit`] or [`Layer::visit_mut`] instead of one recursive method per question in
//! every container.
use super::{AuditEntry, AuditProbe, Buffer, Layer, Param, Visitor, VisitorMut};
use crate::energy::Counter;
use crate::tensor::Tensor;

/// The walks, for any layer: written once on top of [`Layer::visit`] and [`Layer::visit_mut`].
pub trait Walk: Layer {
    /// Learnable parameters, in a stable order.
    fn params<'a>(&'a mut self, out: &mut Vec<&'a mut Param>) {
        struct Params<'o, 'a>(&'o mut Vec<&'a mut Param>);
        impl<'a> VisitorMut<'a> for Params<'_, 'a> {
            fn param(&mut self, param: &'a mut Param) {
                self.0.push(param);
            }
        }
        self.visit_mut(&mut Params(out));
    }

    /// Non-learnable state to checkpoint (BN running statistics, dropout streams).
    fn buffers<'a>(&'a mut self, out: &mut Vec<Buffer<'a>>) {
        struct Buffers<'o, 'a>(&'o mut Vec<Buffer<'a>>);
        impl<'a> VisitorMut<'a> for Buffers<'_, 'a> {
            fn buffer(&mut self, buffer: Buffer<'a>) {
                self.0.push(buffer);
            }
        }
        self.visit_mut(&mut Buffers(out));
    }

    /// Calls `f` with the name and value of every parameter and, with `buffers`, every averaged
    /// buffer (BN running statistics, not dropout streams), in walk order: what a weight
    /// average covers.
    fn for_each_averaged(&mut self, buffers: bool, f: &mut dyn FnMut(&str, &mut Tensor)) {
        struct Averaged<'f>(bool, &'f mut dyn FnMut(&str, &mut Tensor));
        impl<'a> VisitorMut<'a> for Averaged<'_> {
            fn param(&mut self, param: &'a mut Param) {
                (self.1)(&param.name, &mut param.value);
            }
            fn buffer(&mut self, buffer: Buffer<'a>) {
                if self.0 && buffer.averaged {
                    (self.1)(&buffer.name, buffer.value);
                }
            }
        }
        self.visit_mut(&mut Averaged(buffers, f));
    }

    /// Copies of the buffers inside (BN running statistics, dropout streams), in walk order.
    fn buffer_values(&mut self) -> Vec<Tensor> {
        let mut out = Vec::new();
        self.buffers(&mut out);
        out.iter().map(|b| b.value.clone()).collect()
    }

    /// Sets the buffers inside to `values`, a [`Walk::buffer_values`] of this same layer.
    fn set_buffer_values(&mut self, values: &[Tensor]) {
        let mut out = Vec::new();
        self.buffers(&mut out);
        assert_eq!(out.len(), values.len(), "buffer values of another layer");
        for (b, v) in out.into_iter().zip(values) {
            b.value.copy_from(v);
        }
    }

    /// The energy counters inside, in forward order: one per synaptic layer (conv, linear),
    /// one rate monitor per neuron layer and per block output.
    fn counters<'a>(&'a mut self, out: &mut Vec<Counter<'a>>) {
        struct Counters<'o, 'a>(&'o mut Vec<Counter<'a>>);
        impl<'a> VisitorMut<'a> for Counters<'_, 'a> {
            fn counter(&mut self, counter: Counter<'a>) {
                self.0.push(counter);
            }
        }
        self.visit_mut(&mut Counters(out));
    }

    /// Turns the full-spike audit on or off. While on, every synaptic layer (conv, linear)
    /// notes whether its inputs were all in {0, 1}.
    fn set_audit(&mut self, on: bool) {
        struct SetAudit(bool);
        impl<'a> VisitorMut<'a> for SetAudit {
            fn audit_probe(&mut self, probe: &'a mut AuditProbe) {
                probe.set(self.0);
            }
        }
        self.visit_mut(&mut SetAudit(on));
    }

    /// Runs (`true`) or skips the auxiliary accumulation pathway of dual-stream trunks inside;
    /// skipping it gives the full-spike network's spike head alone.
    fn set_aap(&mut self, on: bool) {
        struct SetAap(bool);
        impl<'a> VisitorMut<'a> for SetAap {
            fn aap_switch(&mut self, switch: &'a mut bool, available: bool) {
                *switch = self.0 && available;
            }
        }
        self.visit_mut(&mut SetAap(on));
    }

    /// Firing rates of every neuron layer (and block output) inside, in forward order.
    fn firing_rates(&self, out: &mut Vec<(String, f32)>) {
        struct Rates<'o>(&'o mut Vec<(String, f32)>);
        impl Visitor for Rates<'_> {
            fn firing_rate(&mut self, name: String, rate: f32) {
                self.0.push((name, rate));
            }
        }
        self.visit(&mut Rates(out));
    }

    /// L2 norms of the gradients that reached each block's outputs in the last backward, as
    /// `(name, norm)`, e.g. `layers.3.stages.7.O` (spike stream) and `...A` (accumulation);
    /// dual-stream trunks report per stage (Appendix C.3 of the paper).
    fn gradient_norms(&self, out: &mut Vec<(String, f32)>) {
        struct Norms<'o>(&'o mut Vec<(String, f32)>);
        impl Visitor for Norms<'_> {
            fn gradient_norm(&mut self, name: String, norm: f32) {
                self.0.push((name, norm));
            }
        }
        self.visit(&mut Norms(out));
    }

    /// What the synaptic layers inside saw since auditing was turned on, in forward order.
    fn audit(&self, out: &mut Vec<AuditEntry>) {
        struct Audit<'o>(&'o mut Vec<AuditEntry>);
        impl Visitor for Audit<'_> {
            fn audit(&mut self, layer: &str, probe: &AuditProbe) {
                probe.report(layer, self.0);
            }
        }
        self.visit(&mut Audit(out));
    }

    /// Bytes kept from the last training forward for the backward pass, by every layer inside
    /// (the BPTT memory figure).
    fn stored_bytes(&self) -> usize {
        struct Bytes(usize);
        impl Visitor for Bytes {
            fn stored_bytes(&mut self, bytes: usize) {
                self.0 += bytes;
            }
        }
        let mut total = Bytes(0);
        self.visit(&mut total);
        total.0
    }
}

impl<L: Layer + ?Sized> Walk for L {}
