"""Writes the NIR import fixtures: one small network per framework (SpikingJelly, snnTorch,
Norse) exported by that framework's own NIR writer, with the inputs and the output spikes that
the framework itself computes. dualstream's import must reproduce those spikes without Python.

usage: make_fixtures.py OUT_DIR        (committed under __test__/fixtures/nir)

Each fixture is NAME.nir and NAME.json: {framework, dt, timeSteps, inputShape, inputs [N][...],
outputs [N][T][K]}. Inputs are static images fed at every step. Samples whose membranes come
within 1e-3 of a threshold (as the numpy interpreter sees the file) are skipped, so float
rounding differences between engines cannot flip a spike.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from nir_numpy import simulate  # noqa: E402

T, N, SHAPE = 4, 20, (1, 8, 8)
torch.manual_seed(0)
torch.set_grad_enabled(False)


def candidates(count, seed, shape=SHAPE):
    g = np.random.default_rng(seed)
    return (g.random((count,) + shape) * 2.5).astype(np.float32)


def select(path, xs, dt):
    import nir
    graph = nir.read(path)
    keep = []
    for i, x in enumerate(xs):
        _, m = simulate(graph, np.broadcast_to(x, (T, 1) + x.shape).copy(), dt=dt)
        if m > 1e-3:
            keep.append(i)
        if len(keep) == N:
            break
    return xs[keep]


def excite(net):
    # Default initialisations leave deep layers silent; larger weights and positive biases make
    # every layer spike on some inputs.
    for m in net.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.weight.mul_(3.0)
            if m.bias is not None:
                m.bias.add_(0.3)


def save(out, name, framework, dt, xs, ys):
    with open(os.path.join(out, f'{name}.json'), 'w') as f:
        json.dump({'framework': framework, 'dt': dt, 'timeSteps': T, 'inputShape': list(xs.shape[1:]),
                   'inputs': xs.reshape(len(xs), -1).tolist(), 'outputs': ys.tolist()}, f)


def spikingjelly(out):
    from spikingjelly.activation_based import functional, layer, neuron
    from spikingjelly.activation_based.nir_exchange import export_to_nir
    net = torch.nn.Sequential(
        layer.Conv2d(1, 4, 3, padding=1), neuron.IFNode(), layer.AvgPool2d(2), layer.Flatten(),
        layer.Linear(64, 5), neuron.LIFNode(tau=2.0, decay_input=True))
    excite(net)
    path = os.path.join(out, 'spikingjelly.nir')
    export_to_nir(net, torch.zeros(1, *SHAPE), save_path=path, dt=1e-4)
    xs = select(path, candidates(60, 1), 1e-4)
    ys = []
    for x in xs:
        functional.reset_net(net)
        ys.append([net(torch.from_numpy(x)[None])[0].numpy() for _ in range(T)])
    save(out, 'spikingjelly', 'spikingjelly 2.0.0', 1e-4, xs, np.array(ys))


def snntorch(out):
    import snntorch as snn
    from snntorch import utils
    from snntorch.export_nir import export_to_nir
    # Per-neuron parameter tensors: with scalars the writer's nodes fail nir's type check.
    def lif(shape, **k):
        return snn.Leaky(beta=torch.full(shape, 0.5), threshold=torch.ones(shape), init_hidden=True,
                         reset_mechanism='zero', reset_delay=False, **k)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), lif((4, 8, 8)), torch.nn.AvgPool2d((2, 2)), torch.nn.Flatten(0),
        torch.nn.Linear(64, 5), lif((5,), output=True))
    excite(net)
    graph = export_to_nir(net, torch.zeros(*SHAPE))
    import nir
    path = os.path.join(out, 'snntorch.nir')
    nir.write(path, graph)
    xs = select(path, candidates(60, 2), 1e-4)
    ys = []
    for x in xs:
        utils.reset(net)
        # Unbatched samples: snnTorch's writer traces one [C, H, W] sample (Flatten(0) then
        # flattens that sample alone).
        ys.append([net(torch.from_numpy(x))[0].numpy() for _ in range(T)])
    save(out, 'snntorch', 'snntorch 1.0.0', 1e-4, xs, np.array(ys))


def norse(out):
    import nir
    import norse.torch as norse
    # Norse's NIR writer has no Flatten: a network on flat inputs.
    def lif(n):  # per-neuron parameters, as nir's type check needs
        return norse.LIFBoxCell(norse.LIFBoxParameters(
            tau_mem_inv=torch.full((n,), 500.0), v_leak=torch.zeros(n), v_th=torch.ones(n), v_reset=torch.zeros(n)))
    net = norse.SequentialState(torch.nn.Linear(64, 16), lif(16), torch.nn.Linear(16, 5), lif(5))
    excite(net)
    graph = norse.to_nir(net, torch.zeros(64), dt=1e-3)
    path = os.path.join(out, 'norse.nir')
    nir.write(path, graph, compression=None)  # Norse stores scalars, which gzip refuses
    xs = select(path, candidates(60, 3, (64,)) * 4, 1e-3 ** 2)
    ys = []
    for x in xs:
        state, steps = None, []
        for _ in range(T):
            y, state = net(torch.from_numpy(x)[None], state)
            steps.append(y[0].numpy())
        ys.append(steps)
    # Norse 1.1.0 writes tau = dt * tau_mem (with tau_mem = 1/tau_mem_inv in seconds), not
    # tau_mem: in NIR's units its file describes a step of dt**2, which is the dt to import it with.
    save(out, 'norse', 'norse 1.1.0', 1e-3 ** 2, xs, np.array(ys))


if __name__ == '__main__':
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for make in (spikingjelly, snntorch, norse):
        try:
            make(out)
            print('wrote', make.__name__)
        except Exception as e:  # report and continue: each fixture stands alone
            print(f'{make.__name__}: {type(e).__name__}: {e}', file=sys.stderr)
