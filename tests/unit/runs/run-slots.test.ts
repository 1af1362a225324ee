import { describe, expect, it } from 'vitest';
import { RunSlots } from '../../../src/runs/run-slots.ts';

/** Records which acquisitions have been granted, in order. */
function track(slots: RunSlots) {
  const granted: string[] = [];
  const acquire = (id: string) => slots.acquire(id).then(() => void granted.push(id));
  return { granted, acquire };
}

// Lets every already-resolved promise callback run.
const settle = () => new Promise<void>((r) => setImmediate(r));

describe('RunSlots', () => {
  it('when fewer than max are held, then acquire is granted at once', async () => {
    const { granted, acquire } = track(new RunSlots(2));
    void acquire('a');
    void acquire('b');
    await settle();
    expect(granted).toEqual(['a', 'b']);
  });

  it('when all slots are held, then the next acquire waits until one is released', async () => {
    const slots = new RunSlots(1);
    const { granted, acquire } = track(slots);
    void acquire('a');
    void acquire('b');
    await settle();
    expect(granted).toEqual(['a']);
    slots.release();
    await settle();
    expect(granted).toEqual(['a', 'b']);
  });

  it('when several wait, then they are granted in the order they asked', async () => {
    const slots = new RunSlots(1);
    const { granted, acquire } = track(slots);
    for (const id of ['a', 'b', 'c', 'd']) void acquire(id);
    await settle();
    for (let i = 0; i < 3; i++) {
      slots.release();
      await settle();
    }
    expect(granted).toEqual(['a', 'b', 'c', 'd']);
  });

  it('when a slot is handed to a waiter, then the count stays at max: a newcomer still waits', async () => {
    const slots = new RunSlots(1);
    const { granted, acquire } = track(slots);
    void acquire('a');
    void acquire('b');
    await settle();
    slots.release(); // passes a's slot to b
    void acquire('c');
    await settle();
    expect(granted).toEqual(['a', 'b']);
    slots.release();
    await settle();
    expect(granted).toEqual(['a', 'b', 'c']);
  });

  it('when every holder releases with nobody waiting, then max slots are free again', async () => {
    const slots = new RunSlots(2);
    const first = track(slots);
    void first.acquire('a');
    void first.acquire('b');
    await settle();
    slots.release();
    slots.release();
    const second = track(slots);
    void second.acquire('c');
    void second.acquire('d');
    void second.acquire('e');
    await settle();
    expect(second.granted).toEqual(['c', 'd']);
  });

  it('when a waiter withdraws, then it is never granted and the next waiter gets the slot', async () => {
    const slots = new RunSlots(1);
    const { granted, acquire } = track(slots);
    void acquire('a');
    void acquire('b');
    void acquire('c');
    await settle();
    expect(slots.withdraw('b')).toBe(true);
    slots.release();
    await settle();
    expect(granted).toEqual(['a', 'c']);
  });

  it('when an id that is not waiting withdraws, then withdraw says false and changes nothing', async () => {
    const slots = new RunSlots(1);
    const { granted, acquire } = track(slots);
    void acquire('a');
    void acquire('b');
    await settle();
    expect(slots.withdraw('a')).toBe(false); // holds a slot, is not waiting
    expect(slots.withdraw('zzz')).toBe(false);
    slots.release();
    await settle();
    expect(granted).toEqual(['a', 'b']);
  });

  it('when the last waiter withdraws, then a release frees the slot for a newcomer', async () => {
    const slots = new RunSlots(1);
    const { granted, acquire } = track(slots);
    void acquire('a');
    void acquire('b');
    await settle();
    slots.withdraw('b');
    slots.release();
    void acquire('c');
    await settle();
    expect(granted).toEqual(['a', 'c']);
  });

  it('when an apply queues behind gathers, then it is granted the next free slot before them', async () => {
    const slots = new RunSlots(1);
    const granted: string[] = [];
    const acquire = (id: string, priority: number) =>
      void slots.acquire(id, priority).then(() => void granted.push(id));
    acquire('running-gather', 1);
    acquire('gather-1', 1);
    acquire('gather-2', 1);
    acquire('apply-1', 0);
    acquire('apply-2', 0);
    for (let i = 0; i < 4; i++) {
      await settle();
      slots.release();
    }
    await settle();
    expect(granted).toEqual(['running-gather', 'apply-1', 'apply-2', 'gather-1', 'gather-2']);
  });
});
