// The writer walks the folded spec (each BN after a conv folded away), whose layer indices
// differ from the model's; refusals must name the layer as the model's spec numbers it.
import { DualstreamError } from '../../errors'
import type { DualStage, LayerSpec } from '../../spec'

type Lists = Record<string, LayerSpec[] | DualStage[] | null | undefined>

function sublists(l: LayerSpec | DualStage): Lists {
  switch (l.type) {
    case 'sewBlock':
    case 'spikingResnetBlock':
      return { branch: l.branch, shortcut: l.shortcut }
    case 'block':
      return { branch: l.branch, shortcut: l.shortcut, projection: l.projection }
    case 'dualStream':
      return { stages: l.stages }
    default:
      return {}
  }
}

/** Folded path -> the model's path, matching the two lists in order (the folded one lacks BNs). */
function matchLists(
  original: (LayerSpec | DualStage)[],
  folded: (LayerSpec | DualStage)[],
  from: string,
  to: string,
  out: Map<string, string>,
): void {
  let i = 0
  for (const [j, f] of folded.entries()) {
    while (i < original.length && original[i].type !== f.type) i++
    if (i === original.length) return
    out.set(`${to}.${j}`, `${from}.${i}`)
    const [a, b] = [sublists(original[i]), sublists(f)]
    for (const key of Object.keys(b)) {
      const [x, y] = [a[key], b[key]]
      if (x && y) matchLists(x, y, `${from}.${i}.${key}`, `${to}.${j}.${key}`, out)
    }
    i++
  }
}

/** A NIR refusal on the folded spec, renamed to the layer path of the model's own spec. */
export function renameFoldedPath(e: unknown, original: LayerSpec[], folded: LayerSpec[]): unknown {
  if (!(e instanceof DualstreamError) || e.code !== 'ERR_SPEC') return e
  const path = /^(layers(?:\.[\w]+)*) /.exec(e.message)?.[1]
  if (!path) return e
  const map = new Map<string, string>()
  matchLists(original, folded, 'layers', 'layers', map)
  const mine = map.get(path)
  if (!mine || mine === path) return e
  return new DualstreamError(e.code, `${mine}${e.message.slice(path.length)}`, { cause: e })
}
