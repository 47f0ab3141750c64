// The TypeScript spec types (ts/spec.ts) and the Rust spec (crates/core/src/spec.rs) describe
// the same JSON. The Rust parser rejects an unknown layer kind or field by listing every kind or
// field it knows (serde's deny_unknown_fields), so each record of ts/spec.ts is compared with the
// list the engine gives for it: a kind or field added on one side only fails here.
import { join } from 'node:path'
import test from 'ava'
import ts from 'typescript'
import * as build from '../ts/layers'
import type { LayerSpec, ModelSpec } from '../ts/spec'

import native = require('../ts/native')

/** The TypeScript side: each record's properties, read from ts/spec.ts by the compiler. */
function tsRecords() {
  const file = join(__dirname, '..', 'ts', 'spec.ts')
  const program = ts.createProgram([file], { strict: true })
  const checker = program.getTypeChecker()
  const source = program.getSourceFile(file)
  if (!source) throw new Error(`cannot read ${file}`)
  const named = new Map<string, ts.Type>()
  ts.forEachChild(source, (node) => {
    if (ts.isTypeAliasDeclaration(node) || ts.isInterfaceDeclaration(node)) {
      named.set(node.name.text, checker.getTypeAtLocation(node.name))
    }
  })
  const get = (name: string) => {
    const type = named.get(name)
    if (!type) throw new Error(`ts/spec.ts has no type ${name}`)
    return type
  }
  const fields = (type: ts.Type, omit = ['type']) =>
    checker
      .getPropertiesOfType(type)
      .map((p) => p.name)
      .filter((n) => !omit.includes(n))
      .sort()
  // Each member of a union tagged by `type`: its kinds and the properties besides `type`.
  const tagged = (name: string) => {
    const byKind = new Map<string, string[]>()
    const union = get(name)
    for (const member of union.isUnion() ? union.types : [union]) {
      const tag = checker.getPropertyOfType(member, 'type')
      if (!tag) throw new Error(`a member of ${name} has no type property`)
      const tagType = checker.getTypeOfSymbol(tag)
      for (const literal of tagType.isUnion() ? tagType.types : [tagType]) {
        if (!literal.isStringLiteral()) throw new Error(`${name}: a type tag is not a string literal`)
        byKind.set(literal.value, fields(member))
      }
    }
    return byKind
  }
  const dual = get('DualStreamSpec')
  const head = checker.getPropertyOfType(dual, 'head')
  if (!head) throw new Error('DualStreamSpec has no head')
  return {
    model: fields(get('ModelSpec'), []),
    layers: tagged('LayerSpec'),
    stages: tagged('DualStage'),
    surrogates: tagged('SurrogateSpec'),
    neuron: fields(get('NeuronParams'), []),
    head: fields(checker.getTypeOfSymbol(head), []),
  }
}

/** The engine's parse error for `spec` (it must reject it). */
function rejection(spec: unknown): { code: unknown; message: string } {
  try {
    new native.NativeModel(JSON.stringify(spec), 0)
  } catch (e) {
    return e as { code: unknown; message: string }
  }
  throw new Error(`the engine accepted ${JSON.stringify(spec)}`)
}

/** The names serde lists after "expected one of" (or `[]` for "there are no fields"). */
function listed(spec: unknown): string[] {
  const e = rejection(spec)
  if (/there are no fields/.test(e.message)) return []
  const list = /expected (?:one of )?((?:`[^`]*`(?:, | or )?)+)/.exec(e.message)
  if (!list) throw new Error(`no list of names in: ${e.message}`)
  return [...list[1].matchAll(/`([^`]*)`/g)].map((m) => m[1]).sort()
}

const model = (layers: unknown[]) => ({ timeSteps: 1, inputShape: [1, 8, 8], encoding: 'direct', layers })
const neuron = build.lif() as Record<string, unknown>
const head = { inFeatures: 4, outFeatures: 2, bias: true }

/** An unknown field in a record of each kind, so the engine lists the kind's fields. */
const probe = {
  layer: (type: string) => model([{ type, zzUnknown: 1 }]),
  stage: (type: string) => model([{ type: 'dualStream', stages: [{ type, zzUnknown: 1 }], head, aap: true }]),
  surrogate: (type: string) => model([{ ...neuron, surrogate: { type, zzUnknown: 1 } }]),
  neuron: () => model([{ ...neuron, zzUnknown: 1 }]),
  head: () => model([{ type: 'dualStream', stages: [], head: { ...head, zzUnknown: 1 }, aap: true }]),
  model: () => ({ ...model([]), zzUnknown: 1 }),
}

test('an engine spec error is a native Error with code ERR_SPEC and a message without a code prefix', (t) => {
  const e = rejection(probe.layer('zzUnknown'))
  t.true(e instanceof Error)
  t.is(e.code, 'ERR_SPEC')
  t.regex(e.message, /^model spec: .*unknown variant `zzUnknown`/)
})

test('ts/spec.ts and the Rust spec have the same layer, stage and surrogate kinds', (t) => {
  const records = tsRecords()
  t.deepEqual(listed(probe.layer('zzUnknown')), [...records.layers.keys()].sort())
  t.deepEqual(listed(probe.stage('zzUnknown')), [...records.stages.keys()].sort())
  t.deepEqual(listed(probe.surrogate('zzUnknown')), [...records.surrogates.keys()].sort())
})

test('every record of ts/spec.ts has the fields of its Rust counterpart', (t) => {
  const records = tsRecords()
  t.deepEqual(listed(probe.model()), records.model, 'ModelSpec')
  t.deepEqual(listed(probe.neuron()), records.neuron, 'NeuronParams')
  t.deepEqual(listed(probe.head()), records.head, 'DualStreamSpec.head')
  for (const [kind, fields] of records.layers) {
    // Kinds without fields are unit variants in Rust: serde ignores other keys there.
    if (fields.length === 0) continue
    t.deepEqual(listed(probe.layer(kind)), fields, `layer ${kind}`)
  }
  for (const [kind, fields] of records.stages) t.deepEqual(listed(probe.stage(kind)), fields, `stage ${kind}`)
  for (const [kind, fields] of records.surrogates) {
    t.deepEqual(listed(probe.surrogate(kind)), fields, `surrogate ${kind}`)
  }
})

test('every layer builder gives a spec the engine accepts, with every field of its kind', (t) => {
  const records = tsRecords()
  const neurons = [build.ifNode(), build.lif(), build.plif(), build.lif({ surrogate: build.surrogate.atan() })]
  const layers: LayerSpec[] = [
    build.conv2d(1, 4, 3, { padding: 1 }),
    build.batchNorm2d(4),
    build.batchNorm2d(4, { affine: false }),
    ...neurons,
    build.maxPool2d(2),
    build.maxPool2d(2, { ceilMode: true, stride: 1 }),
    build.avgPool2d(1),
    build.avgPool2d(3, { padding: 1, stride: 1, ceilMode: true, countIncludePad: false }),
    build.sewBlock({ branch: [build.conv2d(4, 4, 3, { padding: 1 }), build.lif()], connect: 'add' }),
    build.spikingResnetBlock({ branch: [build.conv2d(4, 4, 3, { padding: 1 }), build.lif()] }),
    build.relu(),
    build.dropout(0.1),
    build.globalAvgPool(),
    build.flatten(),
    build.linear(4, 2),
  ]
  const spec: ModelSpec = model(layers) as ModelSpec
  t.notThrows(() => new native.NativeModel(JSON.stringify(spec), 0))
  // Token layers: [4, 8, 8] -> 64 tokens of 4 channels.
  const tokenLayers: LayerSpec[] = [
    build.tokens(),
    build.linear(4, 12, { bias: false }),
    build.batchNorm1d(12),
    build.lif(),
    build.spikingAttention(4, 2),
    build.tokenMean(),
    build.linear(4, 2),
  ]
  const tokenSpec = model([build.conv2d(1, 4, 3, { padding: 1 }), build.lif(), ...tokenLayers]) as ModelSpec
  t.notThrows(() => new native.NativeModel(JSON.stringify(tokenSpec), 0))
  const dual = build.dualStream({
    stages: [
      build.dualStreamBlock({ branch: [build.conv2d(4, 4, 3, { padding: 1 }), build.lif()], connect: 'and' }),
      build.maxPool2d(2),
      build.dualBasicBlock(4, 4),
      build.avgPool2d(1),
    ],
    classes: 2,
  })
  const dualSpec = model([build.conv2d(1, 4, 3, { padding: 1 }), build.lif(), dual])
  t.notThrows(() => new native.NativeModel(JSON.stringify(dualSpec), 0))
  // The builders write every field their kind has (the defaults are explicit in saved specs).
  const seen = new Set<string>()
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk)
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>
      const fields = typeof o.type === 'string' ? (records.layers.get(o.type) ?? records.stages.get(o.type)) : undefined
      if (fields) {
        seen.add(o.type as string)
        // Optional fields the builders write only when they differ from the default.
        const optional = new Set(['headPool', 'affine', 'ceilMode', 'countIncludePad'])
        t.deepEqual(
          Object.keys(o)
            .filter((k) => k !== 'type')
            .sort(),
          fields.filter((f) => !optional.has(f) || f in o),
          `builder of ${o.type}`,
        )
      }
      Object.values(o).forEach(walk)
    }
  }
  walk([spec, dualSpec, tokenSpec])
  t.deepEqual([...seen].sort(), [...new Set([...records.layers.keys(), ...records.stages.keys()])].sort())
})
