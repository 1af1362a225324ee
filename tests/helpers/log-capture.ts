import { Writable } from 'node:stream';
import { createLogger } from '../../src/logger.ts';

/** A logger whose lines are kept, parsed (debug and up by default). */
export function logCapture(level = 'debug') {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  return { logger: createLogger(level, sink), lines };
}
