/**
 * The lookup metrics store contract suite. Every {@link LookupMetricsStore} must pass it.
 *
 * @packageDocumentation
 */
import { describe, expect, it } from 'vitest';
import type { LookupMetric } from '../../metadata/image-record.js';
import type { LookupMetricsStore } from '../../metadata/lookup-metrics-store.js';
import {
  CONTRACT_T0 as T0,
  expectCode,
  type StoreContractFactory,
  useContractStore,
} from './store-contract-support.js';

/**
 * Define the {@link LookupMetricsStore} contract tests for one implementation.
 * @param name - shown in the test names, e.g. `'SqliteMetadataStore'`
 * @param factory - makes a fresh store per test, on the clock it is given
 */
export function describeLookupMetricsStoreContract(
  name: string,
  factory: StoreContractFactory<LookupMetricsStore>,
): void {
  describe(`LookupMetricsStore contract: ${name}`, () => {
    const harness = useContractStore(factory);

    const metric = (i: number, system = 'sysa'): LookupMetric => ({
      user: 'alice',
      uid: 1000,
      system,
      itype: 'docker',
      tag: `img:${i}`,
      imageId: 'ab'.repeat(32),
      time: T0 + i * 1000,
    });

    it('keeps the last N rows per system, oldest first', async () => {
      await harness.store.insertLookupMetrics([]);
      await harness.store.insertLookupMetrics(Array.from({ length: 101 }, (_, i) => metric(i)));
      await harness.store.insertLookupMetrics([metric(500, 'sysb')]);
      const hundred = await harness.store.listLookupMetrics('sysa', 100);
      expect(hundred).toHaveLength(100);
      expect(hundred[0]).toEqual(metric(1));
      expect(hundred[99]).toEqual(metric(100));
      const twenty = await harness.store.listLookupMetrics('sysa', 20);
      expect(twenty).toHaveLength(20);
      expect(twenty.at(-1)?.time).toBe(Math.max(...hundred.map((m) => m.time)));
      expect(await harness.store.listLookupMetrics('sysb', 10)).toEqual([metric(500, 'sysb')]);
      expect(await harness.store.listLookupMetrics('sysc', 10)).toEqual([]);
    });
  });
}
