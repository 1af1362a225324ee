import { describe, expect, it } from 'vitest';
import { Batcher } from '../../../src/shared/batcher.ts';

/** A batcher whose batches the test ends by hand, recording what each batch held. */
function held() {
  const batches: number[][] = [];
  const ends: (() => void)[] = [];
  const batcher = new Batcher<number, number>(
    (inputs) =>
      new Promise((resolve, reject) => {
        batches.push(inputs);
        ends.push(() =>
          inputs.includes(13) && inputs.length > 1
            ? reject(new Error('13 in a batch'))
            : inputs.includes(13)
              ? reject(new Error('13'))
              : resolve(inputs.map((x) => x * 10)),
        );
      }),
    3,
  );
  const tick = () => new Promise((r) => setImmediate(r));
  return { batcher, batches, end: () => ends.shift()!(), tick };
}

describe('Batcher', () => {
  it('when a call is made with nothing running, then it runs at once, alone', async () => {
    const { batcher, batches, end } = held();
    const p = batcher.call(1);
    expect(batches).toEqual([[1]]);
    end();
    expect(await p).toBe(10);
  });

  it('when calls are made while a batch runs, then they run together next, each getting its own result', async () => {
    const { batcher, batches, end, tick } = held();
    const first = batcher.call(1);
    const rest = [batcher.call(2), batcher.call(3)];
    expect(batches).toEqual([[1]]);
    end();
    await tick();
    expect(batches).toEqual([[1], [2, 3]]);
    end();
    expect(await first).toBe(10);
    expect(await Promise.all(rest)).toEqual([20, 30]);
  });

  it('when more calls wait than a batch holds, then they run in batches of at most that many', async () => {
    const { batcher, batches, end, tick } = held();
    const all = [0, 1, 2, 3, 4, 5].map((x) => batcher.call(x));
    for (let i = 0; i < 3; i++) {
      end();
      await tick();
    }
    expect(batches).toEqual([[0], [1, 2, 3], [4, 5]]);
    expect(await Promise.all(all)).toEqual([0, 10, 20, 30, 40, 50]);
  });

  it('when a batch of several fails, then each call runs again alone and only the failing one is rejected', async () => {
    const { batcher, batches, end, tick } = held();
    const first = batcher.call(1);
    const two = batcher.call(2);
    const bad = batcher.call(13);
    end();
    await tick();
    end(); // [2, 13] fails as a batch
    await tick();
    end(); // [2] alone
    await tick();
    end(); // [13] alone
    expect(await first).toBe(10);
    expect(await two).toBe(20);
    await expect(bad).rejects.toThrow(/^13$/);
    expect(batches).toEqual([[1], [2, 13], [2], [13]]);
  });
});
