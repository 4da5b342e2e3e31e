import { describe, expect, it } from 'vitest';
import { ManualClock } from './manual-clock.js';

describe('ManualClock', () => {
  it('stands still until advanced, and fires due timers in order, each once per advance', () => {
    const clock = new ManualClock(1_000);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push(`late@${clock.now()}`), 30);
    clock.setTimeout(() => fired.push(`early@${clock.now()}`), 10);
    const every = clock.setInterval(() => fired.push('tick'), 5);
    expect(clock.now()).toBe(1_000);
    clock.advance(9);
    expect(fired).toEqual(['tick']); // the interval fell due once; the 10 ms time-out not yet
    clock.advance(100);
    expect(fired).toEqual(['tick', 'early@1109', 'tick', 'late@1109']);
    clock.clearTimer(every);
    clock.advance(100);
    expect(fired).toHaveLength(4);
    expect(clock.pendingTimers).toBe(0);
  });

  it('fires a 0 ms time-out on advance(0), not before; ignores cleared timers and refuses to go back', () => {
    const clock = new ManualClock(0);
    let fired = 0;
    clock.setTimeout(() => fired++, 0);
    const cleared = clock.setTimeout(() => fired++, 0);
    clock.clearTimer(cleared);
    expect(fired).toBe(0);
    clock.advance(0);
    expect(fired).toBe(1);
    expect(() => clock.advance(-1)).toThrow(RangeError);
  });

  it('runs ahead of a base it follows', () => {
    let wall = 5_000;
    const clock = new ManualClock(() => wall);
    clock.advance(100);
    wall = 6_000;
    expect(clock.now()).toBe(6_100);
  });
});
