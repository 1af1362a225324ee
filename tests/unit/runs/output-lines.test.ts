import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { eachLine, TailBuffer, type Line } from '../../../src/runs/output-lines.ts';

async function linesOf(chunks: (string | Buffer)[], max: number): Promise<Line[]> {
  const stream = new PassThrough();
  const seen: Line[] = [];
  const done = eachLine(stream, max, (l) => seen.push(l));
  for (const c of chunks) stream.write(c);
  stream.end();
  await done;
  return seen;
}

describe('eachLine', () => {
  it('when lines are split across chunks, then each arrives whole; a last line without newline too', async () => {
    const lines = await linesOf(['ab', 'c\nd', 'e\r\n\nf'], 100);
    expect(lines.map((l) => l.text)).toEqual(['abc', 'de', '', 'f']);
    expect(lines.every((l) => !l.cut)).toBe(true);
  });

  it('when a multi-byte character is split across chunks, then it is decoded whole', async () => {
    const euro = Buffer.from('€\n');
    const lines = await linesOf([euro.subarray(0, 1), euro.subarray(1)], 100);
    expect(lines.map((l) => l.text)).toEqual(['€']);
  });

  it('when a line is longer than the limit, then only its end is kept, marked cut, with its real size', async () => {
    const long = 'x'.repeat(1000) + 'END';
    const lines = await linesOf([...long.match(/.{1,7}/g)!, '\nnext\n'], 10);
    expect(lines[0]).toEqual({ text: 'xxxxxxxEND', cut: true, bytes: 1003 });
    expect(lines[1]).toEqual({ text: 'next', cut: false, bytes: 4 });
  });
});

describe('TailBuffer', () => {
  it('when everything fits, then it is kept as is', () => {
    const t = new TailBuffer(100);
    t.push('one');
    t.push('two');
    expect(t.text()).toBe('one\ntwo');
    expect(t.truncated).toBe(false);
  });

  it('when more arrives than the bound, then the oldest lines go and the text says so', () => {
    const t = new TailBuffer(20);
    for (let i = 0; i < 100; i++) t.push(`line ${i}`);
    expect(t.text()).toBe('[... truncated ...]\nline 98\nline 99');
  });

  it('when one line is longer than the bound, then its end is kept', () => {
    const t = new TailBuffer(8);
    t.push('abcdefghijklmnop');
    expect(t.text()).toBe('[... truncated ...]\njklmnop');
  });
});
