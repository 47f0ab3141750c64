// README.md of an exported PyTorch folder.
import type { ModelSpec } from '../../spec'

export function readmeMd(name: string, spec: ModelSpec): string {
  const dual = spec.layers.some((l) => l.type === 'dualStream' && l.aap)
  const input =
    spec.encoding === 'direct'
      ? `[N, ${spec.inputShape.join(', ')}] (repeated over T = ${spec.timeSteps} steps)`
      : `[T = ${spec.timeSteps}, N, ${spec.inputShape.join(', ')}]`
  return `# ${name} (PyTorch / SpikingJelly)

A dualstream model as a Python package: train it at scale with PyTorch DDP, then bring the
weights back to dualstream to evaluate, audit, measure energy and deploy.

| file | what |
| --- | --- |
| \`model.py\` | the network as an \`nn.Module\` (SpikingJelly \`activation_based\` neurons, multi-step) |
| \`weights.safetensors\` | its weights and BN statistics (state_dict names = dualstream's tensor names) |
| \`train.py\` | torchrun/DDP training with dualstream's loss, optimizer and schedule |
| \`config.json\` | the model spec and the run's training configuration |
| \`spec.json\` | the model spec alone (for \`dualstream import --model\`) |

Needs only \`torch\`, \`spikingjelly\` (2.x) and \`safetensors\`.

## Use

\`\`\`python
from model import build, load_weights
net = load_weights(build(), "weights.safetensors").eval()
logits = net.logits(x, mode="fsnn")   # x: ${input}
\`\`\`
${
  dual
    ? `
The model has the auxiliary accumulation pathway (AAP): \`net(x)\` returns \`[T, N, 2K]\`, the spike
head y_s then the accumulation head y_a, sharing one FC. \`mode="fsnn"\` runs the full-spike
network (the AAP off) and predicts with y_s; \`mode="dsnn"\` predicts with y_a.
`
    : ''
}
## Train

\`\`\`sh
torchrun --nproc_per_node=8 train.py --train train.safetensors --val val.safetensors \\
    --epochs 90 --batch-size 32 --out runs/a
\`\`\`

\`--train\`/\`--val\` are safetensors files with \`x\` (float32 samples) and \`y\` (labels);
\`--data-module file.py\` instead names a file whose \`datasets()\` returns \`(train, val)\` torch
Datasets (an ImageNet folder, say). \`--amp\` turns on mixed precision, \`--sync-bn\` synchronises
BatchNorm over processes, \`--init fresh\` starts from PyTorch's initialisation instead of
\`weights.safetensors\`. Checkpoints land in \`<out>/last.safetensors\` and
\`<out>/epoch-<n>.safetensors\`, metrics (training loss and accuracy, validation accuracy per
mode) in \`<out>/metrics.jsonl\`.

## Back to dualstream

\`\`\`sh
dualstream import runs/a/last.safetensors --model spec.json --from dualstream-export --out trained.safetensors
dualstream evaluate trained.safetensors --dataset ...
dualstream export trained.safetensors --out deploy.safetensors   # the full-spike network
\`\`\`
`
}
