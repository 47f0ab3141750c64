// A small XML well-formedness parser for the SVG the plots produce (tests only): every tag
// closes in order, attributes are quoted, entities are known. Returns the element tree.
export interface XmlElement {
  name: string
  attrs: Record<string, string>
  children: XmlElement[]
  text: string
}

const ENTITY = /&(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/y

function checkText(text: string, at: number): string {
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '<') throw new Error(`stray '<' at ${at + i}`)
    if (text[i] === '&') {
      ENTITY.lastIndex = i
      if (!ENTITY.test(text)) throw new Error(`bad entity at ${at + i}: ${text.slice(i, i + 10)}`)
    }
  }
  return text
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&')
}

export function parseXml(source: string): XmlElement {
  const root: XmlElement = { name: '#document', attrs: {}, children: [], text: '' }
  const stack = [root]
  const tag =
    /<(\/?)([A-Za-z_][\w:.-]*)((?:\s+[\w:.-]+\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>|<\?[^>]*\?>|<!--[\s\S]*?-->|<!DOCTYPE[^>]*>/g
  let last = 0
  for (let m = tag.exec(source); m; m = tag.exec(source)) {
    const text = source.slice(last, m.index)
    stack[stack.length - 1].text += checkText(text, last)
    last = tag.lastIndex
    if (!m[2]) continue
    const [, closing, name, attrText, selfClosing] = m
    if (closing) {
      const open = stack.pop()!
      if (open.name !== name) throw new Error(`</${name}> at ${m.index} closes <${open.name}>`)
      continue
    }
    const attrs: Record<string, string> = {}
    for (const a of attrText.matchAll(/([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
      if (a[1] in attrs) throw new Error(`attribute ${a[1]} twice at ${m.index}`)
      attrs[a[1]] = checkText(a[2] ?? a[3], m.index)
    }
    const el: XmlElement = { name, attrs, children: [], text: '' }
    stack[stack.length - 1].children.push(el)
    if (!selfClosing) stack.push(el)
  }
  checkText(source.slice(last), last)
  if (stack.length !== 1) throw new Error(`<${stack[stack.length - 1].name}> is never closed`)
  if (root.children.length !== 1) throw new Error(`expected one root element, found ${root.children.length}`)
  return root.children[0]
}

export function* walk(el: XmlElement): Generator<XmlElement> {
  yield el
  for (const c of el.children) yield* walk(c)
}

/** All text inside `<text>` elements, in document order. */
export function texts(el: XmlElement): string[] {
  return [...walk(el)].filter((e) => e.name === 'text').map((e) => e.text)
}

/** Groups of a Vega mark type (e.g. `line`, `rect`) and how many items each draws. */
export function marks(el: XmlElement, type: string): XmlElement[] {
  return [...walk(el)].filter((e) => e.name === 'g' && (e.attrs.class ?? '').split(' ').includes(`mark-${type}`))
}
