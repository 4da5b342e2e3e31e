/**
 * The metadata store contract suite: every {@link MetadataStore} implementation must pass it. It runs the suite of
 * each part — {@link describeImageStoreContract}, {@link describeLookupMetricsStoreContract},
 * {@link describeJobStoreContract} — on the one store, and checks its lifecycle (`close()` is idempotent) after
 * every test (umoci/containers-image habit: one conformance suite, many backends).
 *
 * @packageDocumentation
 */
import { describe } from 'vitest';
import type { MetadataStore } from '../../metadata/metadata-store.js';
import { describeImageStoreContract } from './image-store-contract.js';
import { describeJobStoreContract } from './job-store-contract.js';
import { describeLookupMetricsStoreContract } from './lookup-metrics-store-contract.js';
import type { StoreContractFactory, StoreContractSubject } from './store-contract-support.js';

/** What a factory returns: the store, and optionally how to clean up after it (drop a database, remove a dir). */
export interface StoreUnderTest {
  /** A fresh, empty store. */
  readonly store: MetadataStore;
  /** Called after {@link MetadataStore.close}. */
  readonly teardown?: () => Promise<void>;
}

/**
 * Makes a fresh, empty store for one test. It must pass `now` to the store as its clock: the suite moves time to
 * exercise leases and expiry.
 */
export type MetadataStoreFactory = (options: { readonly now: () => number }) => Promise<StoreUnderTest>;

/**
 * Define the contract tests for one store implementation: the image store, lookup metrics and job store suites,
 * each on a fresh store per test, which is then closed twice (idempotent) before the factory's teardown.
 * @param name - shown in the test names, e.g. `'SqliteMetadataStore'`
 * @param factory - makes a fresh store per test
 * @example
 * ```ts
 * describeMetadataStoreContract('SqliteMetadataStore', async ({ now }) => ({ store: new SqliteMetadataStore({ path: ':memory:', now }) }));
 * ```
 */
export function describeMetadataStoreContract(name: string, factory: MetadataStoreFactory): void {
  const closing: StoreContractFactory<MetadataStore> = async (
    options,
  ): Promise<StoreContractSubject<MetadataStore>> => {
    const { store, teardown } = await factory(options);
    return {
      store,
      teardown: async () => {
        await store.close();
        await store.close(); // idempotent
        await teardown?.();
      },
    };
  };
  describe(`MetadataStore contract: ${name}`, () => {
    describeImageStoreContract(name, closing);
    describeLookupMetricsStoreContract(name, closing);
    describeJobStoreContract(name, closing);
  });
}
