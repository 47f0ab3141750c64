// The one table between dualstream's layers and NIR's primitives, and the time-step
// convention. docs/deployment.md explains each row.
//
// dt convention (SpikingJelly 2.0.0's nir_exchange, default dt = 1e-4 s): one simulation step
// is `dt` seconds and NIR's continuous equations, taken with one forward-Euler step of `dt`,
// give the discrete neuron exactly:
//   IF  (v += x):                              NIR IF  r = 1/dt
//   LIF decayInput (v += (x - (v - vR))/tau):  NIR LIF tau = tau*dt, r = 1,   v_leak = vR
//   LIF !decayInput (v += x - (v - vR)/tau):   NIR LIF tau = tau*dt, r = tau, v_leak = vR
//   PLIF: a LIF with tau = 1/sigmoid(w) at export time.
// Reset: NIR's IF/LIF reset to v_reset after a spike (hard reset); soft reset is refused.

/** SpikingJelly's and snnTorch's step (Norse 1.1.0's files need 1e-6: see docs/deployment.md). */
export const DEFAULT_DT = 1e-4

/** What each dualstream layer becomes (documentation and error messages read this table). */
export const LAYER_TO_NIR: Record<string, string> = {
  conv2d: 'Conv2d (BN folded into its weight and bias; bias zeros when the conv has none)',
  linear: 'Affine (Linear without bias)',
  batchNorm2d: 'folded into the conv before it; a BN without a conv before it is refused',
  avgPool2d: 'AvgPool2d (no padding; ceil mode only where the windows tile the input)',
  maxPool2d:
    'SumPool2d + Threshold(0.5) when its input is spikes (the max of 0/1 values is their OR; ceil mode only where the windows tile the input)',
  globalAvgPool: 'AvgPool2d over the whole map + Flatten',
  flatten: 'Flatten (start_dim 0)',
  dropout: 'nothing (identity at inference)',
  if: 'IF (r = 1/dt)',
  lif: 'LIF (tau*dt; r = 1 with decayInput, tau without)',
  plif: 'LIF with tau = 1/sigmoid(w)',
  'join and': 'Threshold(1.5) on S + O',
  'join or': 'Threshold(0.5) on S + O',
  'join iand': 'Scale(-1) on S, Threshold(0.5) on O - S',
  'join xor': 'Threshold(0.5) on OR - AND (two levels)',
  'join add': 'Scale(1) on S + O (not a spike)',
  spikingResnet: 'the residual IF reading branch + shortcut (two edges into it)',
}

/** Suggestions for the layers NIR cannot express, by layer type. */
export const INSTEAD: Record<string, string> = {
  maxPool2d: 'put the max pooling after a neuron (on spikes) or use avgPool2d (NIR AvgPool2d)',
  relu: 'a full-spike network has no ReLU; export the FSNN (toFullSpike) or use a spiking neuron',
  batchNorm2d: 'place the BN directly after a conv so that it folds into it',
  softReset: 'train with a hard reset (vReset: 0): NIR neurons reset to v_reset',
}
