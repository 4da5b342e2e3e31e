/**
 * What the store contract suites share: the factory type, the clock they drive and how a test expects an error code.
 *
 * @packageDocumentation
 */
import { afterEach, beforeEach, expect } from 'vitest';
import { ShifterError } from '../../errors/index.js';

/** What a factory returns: the store, and optionally how to clean up after it (close it, drop a database). */
export interface StoreContractSubject<S> {
  /** A fresh, empty store. */
  readonly store: S;
  /** Called after each test. */
  readonly teardown?: () => Promise<void>;
}

/**
 * Makes a fresh, empty store for one test. It must pass `now` to the store as its clock: the suites move time to
 * exercise leases and expiry.
 */
export type StoreContractFactory<S> = (options: { readonly now: () => number }) => Promise<StoreContractSubject<S>>;

/** The time every contract test starts at (epoch ms). */
export const CONTRACT_T0 = 1_800_000_000_000;

/** The test clock and store of one suite; `store` is valid inside a test. */
export interface ContractHarness<S> {
  /** The store of the running test. */
  readonly store: S;
  /** The clock's time now. */
  readonly clock: number;
  /** Move the clock forward. */
  advance(ms: number): void;
}

/** Register the beforeEach/afterEach that give each test of the calling suite a fresh store at {@link CONTRACT_T0}. */
export function useContractStore<S>(factory: StoreContractFactory<S>): ContractHarness<S> {
  let store: S | undefined;
  let teardown: (() => Promise<void>) | undefined;
  let clock = CONTRACT_T0;
  beforeEach(async () => {
    clock = CONTRACT_T0;
    const made = await factory({ now: () => clock });
    store = made.store;
    teardown = made.teardown;
  });
  afterEach(async () => {
    await teardown?.();
    store = undefined;
  });
  return {
    get store(): S {
      if (store === undefined) throw new Error('the store exists only inside a test');
      return store;
    },
    get clock(): number {
      return clock;
    },
    advance(ms: number): void {
      clock += ms;
    },
  };
}

/** Await `promise` and expect it to reject with a ShifterError of `code`; returns that error. */
export async function expectCode(promise: Promise<unknown>, code: string): Promise<ShifterError> {
  try {
    await promise;
  } catch (error) {
    expect(ShifterError.isInstance(error), `expected a ShifterError, got ${String(error)}`).toBe(true);
    expect((error as ShifterError).code).toBe(code);
    return error as ShifterError;
  }
  throw new Error(`expected ${code}, but the call succeeded`);
}
