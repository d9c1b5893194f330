// Parses YAML/JSON text into raw documents that remember where every field came from.
import { LineCounter, isMap, isPair, isScalar, isSeq, parseAllDocuments, type Node } from 'yaml';
import type { Diagnostic, Location } from './diagnostics.ts';

/** An input as the CLI read it: a display name (path or `<stdin>`) and its text. */
export interface SourceText {
  name: string;
  text: string;
}

/** Finds the location of a field path inside one object; falls back to the nearest existing parent. */
export type Locator = (path: readonly (string | number)[], at?: 'key' | 'value') => Location;

/** One object from the input: plain data plus a locator into the text it came from. */
export interface RawObject {
  data: unknown;
  file: string;
  locate: Locator;
}

export interface ParsedSource {
  objects: RawObject[];
  diagnostics: Diagnostic[];
}

/** Parses multi-document YAML or JSON. Syntax errors are reported with their position; good documents still load. */
export function parseSource(src: SourceText): ParsedSource {
  const lineCounter = new LineCounter();
  const objects: RawObject[] = [];
  const diagnostics: Diagnostic[] = [];
  const docs = parseAllDocuments(src.text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const toLocation = (offset: number): Location => {
    const pos = lineCounter.linePos(offset);
    return { file: src.name, line: pos.line, column: pos.col };
  };
  for (const doc of Array.isArray(docs) ? docs : []) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const duplicate = e.code === 'DUPLICATE_KEY';
        diagnostics.push({
          severity: 'error',
          code: duplicate ? 'duplicate-key' : 'syntax',
          message: duplicate ? duplicateKeyMessage(src.text, e.pos) : firstLine(e.message),
          location: toLocation(e.pos[0]),
        });
      }
      continue;
    }
    const root = doc.contents;
    // An empty document (between `---` separators, or holding only comments) has no contents or a null scalar.
    if (root === null || (isScalar(root) && root.value === null)) continue;
    const data: unknown = doc.toJS({ maxAliasCount: 1000 });
    objects.push({ data, file: src.name, locate: makeLocator(root, toLocation) });
  }
  return { objects, diagnostics };
}

function duplicateKeyMessage(text: string, pos: [number, number]): string {
  // The error points at the start of the repeated key; read the key itself (plain or quoted).
  const rest = text.slice(pos[0], pos[0] + 200);
  const m = /^"((?:[^"\\\n]|\\.)*)"|^'((?:[^'\n]|'')*)'|^([^:\n,{}[\]]*?)\s*:(?:\s|$)/.exec(rest);
  const key = m ? (m[1] ?? m[2]?.replace(/''/g, "'") ?? m[3] ?? '') : '';
  return key !== '' ? `duplicate key "${key}" (map keys must be unique)` : 'duplicate key (map keys must be unique)';
}

function firstLine(s: string): string {
  const i = s.indexOf('\n');
  return i < 0 ? s : s.slice(0, i);
}

function makeLocator(root: Node, toLocation: (offset: number) => Location): Locator {
  return (path, at = 'value') => {
    let node: unknown = root;
    let best: unknown = root;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      let next: unknown;
      if (isMap(node) && typeof seg === 'string') {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === seg);
        if (pair && isPair(pair)) {
          const last = i === path.length - 1;
          next = last && at === 'key' ? pair.key : (pair.value ?? pair.key);
        }
      } else if (isSeq(node) && typeof seg === 'number') {
        next = node.items[seg];
      }
      if (next === undefined || next === null) break;
      node = next;
      best = next;
    }
    const range = (best as { range?: [number, number, number] }).range;
    return toLocation(range ? range[0] : 0);
  };
}

/** Returns a locator for an object nested inside another one (such as an item of `kind: List`). */
export function subLocator(parent: Locator, prefix: readonly (string | number)[]): Locator {
  return (path, at) => parent([...prefix, ...path], at);
}
