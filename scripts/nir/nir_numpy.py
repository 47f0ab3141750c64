"""A reference interpreter of NIR graphs in numpy, written from the NIR primitives' definitions
(the `nir` package's documented equations), independent of dualstream's engine.

Time: one forward-Euler step of `dt` seconds per simulation step. A node's input at step t is
the sum of its predecessors' outputs at step t (NIR edges carry signals unchanged and several
edges into one node add up). Neurons start at v = 0 and, after a spike (v > v_threshold),
are set to v_reset:
  IF:  v <- v + dt * r * I
  LIF: v <- v + dt / tau * (v_leak - v + r * I)
  Threshold: z = 1 if x > threshold else 0
`margin` records the smallest |v - v_threshold| seen (for Threshold nodes |x - threshold|), so
a caller can check that no decision sat within float rounding of its threshold.
"""
import numpy as np


def _conv2d(x, w, b, stride, padding, dilation, groups):
    # x: [N, C, H, W], w: [O, C/groups, kh, kw]
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    ph, pw = padding
    sh, sw = stride
    dh, dw = dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = w[g * og:(g + 1) * og]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw]
                out[:, g * og:(g + 1) * og] += np.tensordot(patch, ws[:, :, i, j], axes=([1], [1])).transpose(0, 3, 1, 2)
    return out + b.reshape(1, -1, 1, 1)


def _pool(x, k, s, p, average):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    oh = (h + 2 * p[0] - k[0]) // s[0] + 1
    ow = (w + 2 * p[1] - k[1]) // s[1] + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(k[0]):
        for j in range(k[1]):
            out += xp[:, :, i: i + s[0] * (oh - 1) + 1: s[0], j: j + s[1] * (ow - 1) + 1: s[1]]
    return out / (k[0] * k[1]) if average else out


def _pair(v):
    v = np.atleast_1d(np.asarray(v)).astype(int)
    return (int(v[0]), int(v[-1]))


def _order(graph):
    preds = {k: [] for k in graph.nodes}
    for a, b in graph.edges:
        preds[b].append(a)
    done, order = set(), []

    def visit(k, stack=()):
        if k in done:
            return
        if k in stack:
            raise ValueError(f'cycle through {k}')
        for p in preds[k]:
            visit(p, stack + (k,))
        done.add(k)
        order.append(k)

    for k in graph.nodes:
        visit(k)
    return order, preds


def simulate(graph, x, dt=1e-4):
    """Runs `graph` on x: [T, N, *input_shape]. Returns (outputs [T, N, ...], margin)."""
    import nir

    order, preds = _order(graph)
    T, N = x.shape[0], x.shape[1]
    state = {}
    margin = np.inf
    outs = []
    for t in range(T):
        val = {}
        for k in order:
            node = graph.nodes[k]
            if isinstance(node, nir.Input):
                val[k] = x[t].astype(np.float64)
                continue
            inp = sum(val[p] for p in preds[k])
            if isinstance(node, nir.Output):
                val[k] = inp
            elif isinstance(node, nir.Conv2d):
                val[k] = _conv2d(inp, node.weight.astype(np.float64), node.bias.astype(np.float64),
                                 _pair(node.stride), _pair(node.padding), _pair(node.dilation), int(node.groups))
            elif isinstance(node, nir.Affine):
                val[k] = inp @ node.weight.astype(np.float64).T + node.bias
            elif isinstance(node, nir.Linear):
                val[k] = inp @ node.weight.astype(np.float64).T
            elif isinstance(node, nir.Scale):
                val[k] = inp * node.scale
            elif isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
                val[k] = _pool(inp, _pair(node.kernel_size), _pair(node.stride), _pair(node.padding),
                               isinstance(node, nir.AvgPool2d))
            elif isinstance(node, nir.Flatten):
                start = node.start_dim + 1 if node.start_dim >= 0 else node.start_dim
                end = node.end_dim + 1 if node.end_dim >= 0 else node.end_dim
                shape = inp.shape
                end = end % len(shape)
                val[k] = inp.reshape(shape[:start] + (-1,) + shape[end + 1:])
            elif isinstance(node, nir.Threshold):
                margin = min(margin, float(np.min(np.abs(inp - node.threshold))))
                val[k] = (inp > node.threshold).astype(np.float64)
            elif isinstance(node, (nir.IF, nir.LIF)):
                v = state.get(k, np.zeros_like(inp))
                if isinstance(node, nir.IF):
                    v = v + dt * node.r * inp
                else:
                    v = v + dt / node.tau * (node.v_leak - v + node.r * inp)
                margin = min(margin, float(np.min(np.abs(v - node.v_threshold))))
                z = (v > node.v_threshold).astype(np.float64)
                state[k] = np.where(z > 0, node.v_reset, v)
                val[k] = z
            else:
                raise ValueError(f'node {k}: {type(node).__name__} is not interpreted')
        outputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Output)]
        outs.append(val[outputs[0]])
    return np.stack(outs), margin
