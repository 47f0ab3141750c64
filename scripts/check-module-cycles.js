#!/usr/bin/env node
// Reports import cycles in a Rust crate: between its top-level modules, and between the files
// inside each top-level module. A file depends on another when its non-test code names an item
// of it (`use crate::a::b::C`, an inline `crate::a::b::f()`, `super::x`, a child module's
// `kernel::f()`). Re-exports (`pub use child::Name` in a module file) are followed to the file
// that defines the name, and are not dependencies themselves. Test code (`#[cfg(test)]` items
// and files declared by `#[cfg(test)] mod x;`) is left out: tests may reach upwards.
//
// Usage: node scripts/check-module-cycles.js [crate/src ...] [--graph]
// Exits 1 when a cycle is found.

const fs = require('node:fs')
const path = require('node:path')

const args = process.argv.slice(2)
const showGraph = args.includes('--graph')
const roots = args.filter((a) => !a.startsWith('--'))
if (roots.length === 0) roots.push(path.join(__dirname, '..', 'crates', 'core', 'src'))

/** Source without comments, string and char literals (kept as empty quotes). */
function stripCode(src) {
  let out = ''
  let i = 0
  const n = src.length
  while (i < n) {
    const c = src[i]
    const d = src[i + 1]
    if (c === '/' && d === '/') {
      while (i < n && src[i] !== '\n') i++
    } else if (c === '/' && d === '*') {
      let depth = 1
      i += 2
      while (i < n && depth > 0) {
        if (src[i] === '/' && src[i + 1] === '*') {
          depth++
          i += 2
        } else if (src[i] === '*' && src[i + 1] === '/') {
          depth--
          i += 2
        } else i++
      }
      out += ' '
    } else if (c === 'r' && /^r#*"/.test(src.slice(i, i + 10)) && !/\w/.test(src[i - 1] || '')) {
      const hashes = src.slice(i + 1).match(/^#*/)[0]
      const end = `"${hashes}`
      const close = src.indexOf(end, i + 2 + hashes.length)
      i = close < 0 ? n : close + end.length
      out += '""'
    } else if (c === '"') {
      i++
      while (i < n && src[i] !== '"') i += src[i] === '\\' ? 2 : 1
      i++
      out += '""'
    } else if (c === "'" && /^'(\\.|[^\\'])'/.test(src.slice(i, i + 4))) {
      const m = src.slice(i).match(/^'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'/)
      i += m ? m[0].length : 1
      out += "' '"
    } else {
      out += c
      i++
    }
  }
  return out
}

/** Index just past the item starting at `from` (a `;`-ended item or a `{...}` block). */
function itemEnd(code, from) {
  let i = from
  let depth = 0
  for (; i < code.length; i++) {
    const c = code[i]
    if (c === '(' || c === '[') depth++
    else if (c === ')' || c === ']') depth--
    else if (c === ';' && depth === 0) return i + 1
    else if (c === '{' && depth === 0) break
  }
  let braces = 0
  for (; i < code.length; i++) {
    if (code[i] === '{') braces++
    else if (code[i] === '}' && --braces === 0) return i + 1
  }
  return code.length
}

/** Removes `#[cfg(test)]` items; returns the code and the names of test-only `mod x;` files. */
function dropTestItems(code) {
  const testMods = []
  const re = /#\[cfg\(test\)\]/g
  let out = ''
  let last = 0
  for (let m = re.exec(code); m; m = re.exec(code)) {
    if (m.index < last) continue
    let start = m.index + m[0].length
    // Further attributes on the same item.
    for (let attr = code.slice(start).match(/^\s*#\[/); attr; attr = code.slice(start).match(/^\s*#\[/)) {
      let depth = 0
      let i = start + attr[0].length - 1
      for (; i < code.length; i++) {
        if (code[i] === '[') depth++
        else if (code[i] === ']' && --depth === 0) break
      }
      start = i + 1
    }
    const end = itemEnd(code, start)
    const item = code.slice(start, end)
    const decl = item.match(/^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;/)
    if (decl) testMods.push(decl[1])
    out += code.slice(last, m.index)
    last = end
    re.lastIndex = end
  }
  out += code.slice(last)
  return { code: out, testMods }
}

/** Expands a use tree (`a::{b, c::d as e, f::*}`) into paths (arrays of segments). */
function expandUseTree(tree) {
  tree = tree.replace(/\s+/g, '')
  const out = []
  function walk(prefix, t) {
    const brace = t.indexOf('{')
    if (brace < 0) {
      const seg = t
        .replace(/as\w+$/, '')
        .split('::')
        .filter(Boolean)
      const full = [...prefix, ...seg]
      if (full[full.length - 1] === 'self') full.pop()
      out.push(full)
      return
    }
    const head = t.slice(0, brace).split('::').filter(Boolean)
    const inner = t.slice(brace + 1, t.lastIndexOf('}'))
    let depth = 0
    let part = ''
    const parts = []
    for (const ch of inner) {
      if (ch === '{') depth++
      if (ch === '}') depth--
      if (ch === ',' && depth === 0) {
        parts.push(part)
        part = ''
      } else part += ch
    }
    if (part) parts.push(part)
    for (const p of parts) if (p) walk([...prefix, ...head], p)
  }
  walk([], tree.replace(/(\w)as(\w)/g, '$1 as $2').replace(/ as \w+/g, ''))
  return out
}

function analyseCrate(srcRoot) {
  /** module path (joined by ::) -> file info */
  const modules = new Map()
  function visit(file, modPath) {
    const raw = fs.readFileSync(file, 'utf8')
    const { code, testMods } = dropTestItems(stripCode(raw))
    const info = { file, modPath, code, children: [], reexports: new Map(), uses: [] }
    modules.set(modPath.join('::'), info)
    const dir =
      path.basename(file) === 'mod.rs' || path.basename(file) === 'lib.rs'
        ? path.dirname(file)
        : path.join(path.dirname(file), path.basename(file, '.rs'))
    for (const m of code.matchAll(/(?:^|[;}\s])(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;/g)) {
      const name = m[1]
      if (testMods.includes(name)) continue
      const candidates = [path.join(dir, `${name}.rs`), path.join(dir, name, 'mod.rs')]
      const child = candidates.find((c) => fs.existsSync(c))
      if (!child) continue
      info.children.push(name)
      visit(child, [...modPath, name])
    }
  }
  visit(path.join(srcRoot, 'lib.rs'), [])

  // Absolute form of a path written in module `modPath`, or null for an external path.
  function absolute(info, segs) {
    const [first, ...rest] = segs
    if (first === 'crate') return rest
    if (first === 'self') return [...info.modPath, ...rest]
    if (first === 'super') {
      let base = info.modPath.slice(0, -1)
      let r = rest
      while (r[0] === 'super') {
        base = base.slice(0, -1)
        r = r.slice(1)
      }
      return [...base, ...r]
    }
    if (info.children.includes(first)) return [...info.modPath, ...segs]
    return null
  }

  // Collect uses and re-exports.
  for (const info of modules.values()) {
    const code = info.code
    const useRe = /(^|[;{}\s])(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);/g
    let stripped = code
    for (const m of code.matchAll(useRe)) {
      const isPub = Boolean(m[2])
      for (const segs of expandUseTree(m[3])) {
        const abs = absolute(info, segs)
        if (!abs) continue
        const last = segs[segs.length - 1]
        const ownChild =
          abs.length > info.modPath.length &&
          abs.slice(0, info.modPath.length).join('::') === info.modPath.join('::') &&
          info.children.includes(abs[info.modPath.length])
        if (isPub && ownChild) {
          const alias = m[3].match(new RegExp(`\\b${last}\\s+as\\s+(\\w+)`))
          info.reexports.set(alias ? alias[1] : last, abs)
        } else info.uses.push(abs)
      }
      stripped = stripped.replace(m[0], m[1])
    }
    const childAlt = info.children.length ? `|${info.children.join('|')}` : ''
    const pathRe = new RegExp(`(?<![\\w:])(?:crate|super|self${childAlt})(?:::\\w+)+`, 'g')
    for (const m of stripped.matchAll(pathRe)) {
      const abs = absolute(info, m[0].split('::'))
      if (abs) info.uses.push(abs)
    }
  }

  // The file (module path) that defines `abs`, following re-exports.
  function resolve(abs, depth = 0) {
    for (let k = abs.length; k >= 0; k--) {
      const key = abs.slice(0, k).join('::')
      const info = modules.get(key)
      if (!info) continue
      const next = abs[k]
      if (next !== undefined && info.reexports.has(next) && depth < 16) {
        return resolve([...info.reexports.get(next), ...abs.slice(k + 1)], depth + 1)
      }
      return key
    }
    return ''
  }

  const edges = new Map()
  for (const [key, info] of modules) {
    const set = new Set()
    for (const abs of info.uses) {
      const target = resolve(abs)
      if (target !== key && target !== '') set.add(target)
    }
    edges.set(key, set)
  }
  return { modules, edges }
}

/** Strongly connected components with more than one node (Tarjan). */
function cycles(nodes, adj) {
  let index = 0
  const idx = new Map()
  const low = new Map()
  const stack = []
  const on = new Set()
  const out = []
  function strong(v) {
    idx.set(v, index)
    low.set(v, index++)
    stack.push(v)
    on.add(v)
    for (const w of adj.get(v) || []) {
      if (!idx.has(w)) {
        strong(w)
        low.set(v, Math.min(low.get(v), low.get(w)))
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)))
    }
    if (low.get(v) === idx.get(v)) {
      const comp = []
      let w
      do {
        w = stack.pop()
        on.delete(w)
        comp.push(w)
      } while (w !== v)
      if (comp.length > 1) out.push(comp.sort())
    }
  }
  for (const v of nodes) if (!idx.has(v)) strong(v)
  return out
}

/** The edges inside one component, for the report. */
function describe(comp, adj) {
  const inComp = new Set(comp)
  return comp
    .map(
      (v) =>
        `    ${v} -> ${[...(adj.get(v) || [])]
          .filter((w) => inComp.has(w))
          .sort()
          .join(', ')}`,
    )
    .join('\n')
}

let failures = 0
for (const root of roots) {
  const { edges } = analyseCrate(root)
  const top = (key) => key.split('::')[0]
  const topAdj = new Map()
  for (const [from, tos] of edges) {
    if (from === '') continue
    if (!topAdj.has(top(from))) topAdj.set(top(from), new Set())
    for (const to of tos) if (top(to) !== top(from)) topAdj.get(top(from)).add(top(to))
  }
  const label = path.relative(process.cwd(), root) || root
  if (showGraph) {
    console.log(`${label}: module dependencies`)
    for (const [m, tos] of [...topAdj].sort()) console.log(`  ${m} -> ${[...tos].sort().join(', ')}`)
  }
  const found = []
  for (const comp of cycles([...topAdj.keys()].sort(), topAdj)) {
    found.push(`  between top-level modules ${comp.join(', ')}:\n${describe(comp, topAdj)}`)
  }
  for (const m of [...topAdj.keys()].sort()) {
    const files = [...edges.keys()].filter((k) => top(k) === m && k !== '')
    const adj = new Map(files.map((f) => [f, new Set([...edges.get(f)].filter((t) => top(t) === m))]))
    for (const comp of cycles(files.sort(), adj)) {
      found.push(`  between files of ${m}: ${comp.join(', ')}:\n${describe(comp, adj)}`)
    }
  }
  if (found.length) {
    failures += found.length
    console.log(`${label}: ${found.length} import cycle(s)\n${found.join('\n')}`)
  } else {
    console.log(`${label}: no import cycles (${edges.size} files, ${topAdj.size} top-level modules)`)
  }
}
process.exit(failures ? 1 : 0)
