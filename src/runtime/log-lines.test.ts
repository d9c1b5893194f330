import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatLogLine, LineSplitter } from './log-lines.ts';

function split(chunks: string[], max: number): [string, boolean][] {
  const out: [string, boolean][] = [];
  const s = new LineSplitter((t, tr) => out.push([t, tr]), max);
  for (const c of chunks) s.push(Buffer.from(c));
  s.end();
  return out;
}

describe('LineSplitter', () => {
  it('joins lines across chunks, drops \\r, keeps a last unterminated line', () => {
    assert.deepEqual(split(['ab', 'c\r\nde', 'f\n\n', 'tail'], 10), [['abc', false], ['def', false], ['', false], ['tail', false]]);
  });

  it('cuts an overlong line at the limit and skips the rest of it, across chunks', () => {
    assert.deepEqual(split(['0123', '456789', 'abc\nok\n'], 5), [['01234', true], ['ok', false]]);
    assert.deepEqual(split(['12345\n'], 5), [['12345', false]], 'exactly the limit is not truncated');
    assert.deepEqual(split(['1234567'], 5), [['12345', true]]);
  });
});

describe('formatLogLine', () => {
  it('prefixes the source, colours it on a terminal, marks stderr and truncation on plain output', () => {
    const line = { source: 'dns/api-0/main', stream: 'stderr' as const, text: 'boom', truncated: true };
    assert.equal(formatLogLine(line, { color: false }), '[dns/api-0/main] (stderr) boom …[line truncated]');
    const coloured = formatLogLine({ ...line, truncated: false }, { color: true });
    const esc = String.fromCharCode(27);
    assert.ok(coloured.startsWith(`${esc}[`) && coloured.endsWith(`[dns/api-0/main]${esc}[0m boom`), coloured);
  });
});
