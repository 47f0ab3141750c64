//! Energy accounting (docs/energy.md): synaptic operations split into accumulations (AC)
//! and multiply-accumulates (MAC), firing-rate monitors, and the energy `E = E_AC*AC + E_MAC*MAC`.
//!
//! Counting rules, applied per call of every synaptic layer (conv, linear) while it runs:
//! - dense ops per sample and time step: `k_h*k_w*C_in/groups*C_out*H_out*W_out` for a conv,
//!   `in*out` for a linear layer, plus one op per output for a bias;
//! - the input holds only 0 and 1: AC = weight ops x (ones in the input / input size) + bias ops,
//!   i.e. one accumulation per synapse reached by a spike (exact, from the observed input);
//! - otherwise MAC = dense ops;
//! - a non-binary input that is identical at every time step (a static image fed at each step,
//!   `encoding: direct`) is computed once and reused, so it counts once, not T times. A spike
//!   map repeated over time still counts every step: each spike is an event;
//! - BN costs nothing: it folds into the preceding conv (`crate::fold`, Appendix A);
//! - neuron updates (one per neuron per step) are reported separately, not in the energy.
//!
//! Counters live inside the layers (like the audit probes) and stay off, and free, unless a
//! model turns them on; they accumulate over many batches, so a data set streams through.
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Picojoules per operation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Energies {
    /// `fp32`, `fp16`, `int8` or `custom`.
    pub name: String,
    pub ac_pj: f64,
    pub mac_pj: f64,
}

impl Energies {
    /// The presets: 45 nm figures of Horowitz (2014); fp32 is the paper's.
    pub const PRESETS: [(&'static str, f64, f64); 3] =
        [("fp32", 0.9, 4.6), ("fp16", 0.4, 1.5), ("int8", 0.03, 0.23)];

    pub fn preset(name: &str) -> Result<Energies> {
        Self::PRESETS
            .iter()
            .find(|p| p.0 == name)
            .map(|&(name, ac_pj, mac_pj)| Energies { name: name.to_string(), ac_pj, mac_pj })
            .ok_or_else(|| {
                Error::value("energy preset", "one of \"fp32\", \"fp16\", \"int8\"", name)
            })
    }

    pub fn custom(ac_pj: f64, mac_pj: f64) -> Result<Energies> {
        for (what, v) in [("acPj", ac_pj), ("macPj", mac_pj)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::value(
                    format!("energies {what}"),
                    "a finite number of picojoules >= 0",
                    v,
                ));
            }
        }
        Ok(Energies { name: "custom".to_string(), ac_pj, mac_pj })
    }

    /// Millijoules for `ac` accumulations and `mac` multiply-accumulates (1 mJ = 1e9 pJ).
    pub fn millijoules(&self, ac: f64, mac: f64) -> f64 {
        (self.ac_pj * ac + self.mac_pj * mac) * 1e-9
    }
}

/// What one synaptic layer saw since counting was reset.
#[derive(Clone, Debug, Default)]
pub struct SynapseCounter {
    on: bool,
    samples: u64,
    #[doc(hidden)]
    pub calls: u64,
    binary_calls: u64,
    #[doc(hidden)]
    pub static_calls: u64,
    /// Ones and elements over the binary inputs (for the mean input rate).
    ones: f64,
    elements: f64,
    /// Totals over all samples.
    #[doc(hidden)]
    pub dense: f64,
    #[doc(hidden)]
    pub ac: f64,
    #[doc(hidden)]
    pub ac_worst: f64,
    #[doc(hidden)]
    pub mac: f64,
}

/// Whether every value is 0 or 1.
pub fn is_spikes(data: &[f32]) -> bool {
    data.iter().all(|&v| v == 0.0 || v == 1.0)
}

/// Whether every value is 0 or 1, and how many are 1.
fn spike_count(data: &[f32]) -> Option<u64> {
    let mut ones = 0u64;
    for &v in data {
        if v == 1.0 {
            ones += 1;
        } else if v != 0.0 {
            return None;
        }
    }
    Some(ones)
}

impl SynapseCounter {
    pub fn set_on(&mut self, on: bool) {
        self.on = on;
    }

    pub fn is_on(&self) -> bool {
        self.on
    }

    pub fn reset(&mut self) {
        *self = SynapseCounter { on: self.on, ..Default::default() };
    }

    /// Counts one call on a `[T, N, ...]` input; `weight_ops` and `bias_ops` are per sample and step.
    pub fn observe(&mut self, input: &Tensor, weight_ops: u64, bias_ops: u64) {
        if !self.on || input.numel() == 0 {
            return;
        }
        let (t, n) = (input.shape()[0], input.shape()[1]);
        let per_sample_step = (input.numel() / (t * n)) as f64;
        let (w, b) = (weight_ops as f64, bias_ops as f64);
        let sample_steps = (t * n) as f64;
        self.calls += 1;
        self.samples += n as u64;
        match spike_count(input.data()) {
            Some(ones) => {
                self.binary_calls += 1;
                self.ones += ones as f64;
                self.elements += input.numel() as f64;
                self.dense += (w + b) * sample_steps;
                self.ac += w * ones as f64 / per_sample_step + b * sample_steps;
                self.ac_worst += (w + b) * sample_steps;
            }
            None => {
                let step = input.numel() / t;
                let data = input.data();
                let repeated = t > 1 && data.chunks_exact(step).skip(1).all(|c| c == &data[..step]);
                let steps = if repeated {
                    self.static_calls += 1;
                    1.0
                } else {
                    t as f64
                };
                let ops = (w + b) * n as f64 * steps;
                self.dense += ops;
                self.mac += ops;
            }
        }
    }
}

/// Mean output per time step of a neuron layer or a block (a firing rate for spikes).
#[derive(Clone, Debug, Default)]
pub struct RateMonitor {
    on: bool,
    samples: u64,
    /// Sums of the output values and element counts, per time step.
    sums: Vec<f64>,
    elements: Vec<f64>,
    /// Outputs per sample and step (neurons, for a neuron layer).
    units: u64,
}

impl RateMonitor {
    pub fn set_on(&mut self, on: bool) {
        self.on = on;
    }

    pub fn is_on(&self) -> bool {
        self.on
    }

    pub fn reset(&mut self) {
        *self = RateMonitor { on: self.on, ..Default::default() };
    }

    pub fn observe(&mut self, output: &Tensor) {
        if !self.on || output.numel() == 0 {
            return;
        }
        let (t, n) = (output.shape()[0], output.shape()[1]);
        if self.sums.len() < t {
            self.sums.resize(t, 0.0);
            self.elements.resize(t, 0.0);
        }
        let step = output.numel() / t;
        for (i, chunk) in output.data().chunks_exact(step).enumerate() {
            self.sums[i] += chunk.iter().map(|&v| v as f64).sum::<f64>();
            self.elements[i] += step as f64;
        }
        self.samples += n as u64;
        self.units = (step / n) as u64;
    }
}

/// A counter inside a layer, borrowed so the model can switch, reset and read them all.
pub enum Counter<'a> {
    Synapse {
        name: String,
        kind: &'static str,
        counter: &'a mut SynapseCounter,
    },
    /// `kind`: `neuron` or `block`.
    Rate {
        name: String,
        kind: &'static str,
        monitor: &'a mut RateMonitor,
    },
}

impl<'a> Counter<'a> {
    /// The firing-rate counter of a residual block's output.
    pub fn block_rate(name: String, monitor: &'a mut RateMonitor) -> Self {
        Counter::Rate { name, kind: "block", monitor }
    }

    pub fn set_on(&mut self, on: bool) {
        match self {
            Counter::Synapse { counter, .. } => counter.set_on(on),
            Counter::Rate { monitor, .. } => monitor.set_on(on),
        }
    }

    pub fn reset(&mut self) {
        match self {
            Counter::Synapse { counter, .. } => counter.reset(),
            Counter::Rate { monitor, .. } => monitor.reset(),
        }
    }
}

/// One synaptic layer's operations per sample (summed over the time steps).
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LayerOps {
    pub name: String,
    /// `conv2d`, `linear` or `attention` (one of the two products of spiking self-attention).
    pub kind: String,
    pub dense_ops: f64,
    pub ac: f64,
    /// AC if every input neuron fired at every step.
    pub ac_worst: f64,
    pub mac: f64,
    /// Mean input firing rate over the spike inputs seen (None if none was binary).
    pub input_rate: Option<f64>,
    /// Every input seen held only 0s and 1s.
    pub spike_input: bool,
    /// Every input seen was a non-spike input repeated at every step, counted once.
    pub static_input: bool,
}

/// A neuron layer's or a block output's mean rate.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RateReport {
    pub name: String,
    /// Neurons (outputs) per sample and step.
    pub units: u64,
    pub rate: f64,
    pub rate_per_step: Vec<f64>,
}

#[derive(Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EnergyTotals {
    pub dense_ops: f64,
    pub ac: f64,
    pub ac_worst: f64,
    pub mac: f64,
    /// One per neuron per step (not part of the energy).
    pub neuron_updates: f64,
    /// Dynamic Consumption: E with the measured rates, per sample.
    pub dynamic_mj: f64,
    /// E if every neuron fired at every step, per sample.
    pub worst_mj: f64,
}

/// Everything counted over the evaluated samples, per sample.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnergyReport {
    pub samples: u64,
    pub energies: Energies,
    pub layers: Vec<LayerOps>,
    pub neurons: Vec<RateReport>,
    pub blocks: Vec<RateReport>,
    pub totals: EnergyTotals,
}

impl EnergyReport {
    pub fn from_counters(counters: &[Counter], energies: &Energies) -> EnergyReport {
        let mut layers = Vec::new();
        let (mut neurons, mut blocks) = (Vec::new(), Vec::new());
        let mut samples = 0;
        let mut totals = EnergyTotals::default();
        for c in counters {
            match c {
                Counter::Synapse { name, kind, counter: s } => {
                    if s.calls == 0 {
                        continue;
                    }
                    samples = samples.max(s.samples);
                    let per = |v: f64| v / s.samples as f64;
                    let l = LayerOps {
                        name: name.clone(),
                        kind: kind.to_string(),
                        dense_ops: per(s.dense),
                        ac: per(s.ac),
                        ac_worst: per(s.ac_worst),
                        mac: per(s.mac),
                        input_rate: (s.binary_calls > 0).then(|| s.ones / s.elements),
                        spike_input: s.binary_calls == s.calls,
                        static_input: s.static_calls == s.calls,
                    };
                    totals.dense_ops += l.dense_ops;
                    totals.ac += l.ac;
                    totals.ac_worst += l.ac_worst;
                    totals.mac += l.mac;
                    layers.push(l);
                }
                Counter::Rate { name, kind, monitor: m } => {
                    if m.samples == 0 {
                        continue;
                    }
                    let rate_per_step: Vec<f64> =
                        m.sums.iter().zip(&m.elements).map(|(s, e)| s / e).collect();
                    let r = RateReport {
                        name: name.clone(),
                        units: m.units,
                        rate: m.sums.iter().sum::<f64>() / m.elements.iter().sum::<f64>(),
                        rate_per_step,
                    };
                    if *kind == "neuron" {
                        totals.neuron_updates += (m.units as usize * m.sums.len()) as f64;
                        neurons.push(r);
                    } else {
                        blocks.push(r);
                    }
                }
            }
        }
        totals.dynamic_mj = energies.millijoules(totals.ac, totals.mac);
        totals.worst_mj = energies.millijoules(totals.ac_worst, totals.mac);
        EnergyReport { samples, energies: energies.clone(), layers, neurons, blocks, totals }
    }
}
