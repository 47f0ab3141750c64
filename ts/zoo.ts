// Ready-made networks. The default Fashion-MNIST network is what `dualstream train` runs.
import { batchNorm2d, conv2d, flatten, linear, lif, maxPool2d, surrogate } from './layers'
import type { LayerSpec } from './spec'

/**
 * A small convolutional SNN for 28x28 grey images:
 * conv3x3(1->c1)-BN-LIF-maxpool2, conv3x3(c1->c2)-BN-LIF-maxpool2, flatten, linear(->classes).
 * LIF tau 2, ATan surrogate, detach_reset, hard reset: SpikingJelly's usual settings.
 */
export function convSnn(options: { inChannels?: number; size?: number; classes?: number; widths?: [number, number] } = {}): LayerSpec[] {
  const { inChannels = 1, size = 28, classes = 10, widths = [32, 32] } = options
  const [c1, c2] = widths
  const neuron = () => lif({ tau: 2, detachReset: true, surrogate: surrogate.atan(2) })
  const out = Math.floor(Math.floor(size / 2) / 2)
  return [
    conv2d(inChannels, c1, 3, { padding: 1, bias: false }),
    batchNorm2d(c1),
    neuron(),
    maxPool2d(2),
    conv2d(c1, c2, 3, { padding: 1, bias: false }),
    batchNorm2d(c2),
    neuron(),
    maxPool2d(2),
    flatten(),
    linear(c2 * out * out, classes),
  ]
}
