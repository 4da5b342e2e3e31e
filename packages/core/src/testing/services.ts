/**
 * Gates for integration tests that need a real service (registry, MongoDB on two FerretDB backends, Redis, munged,
 * root).
 *
 * `scripts/test-harness.sh start` starts every service on loopback and writes the variables below to
 * `.state/harness.env`; `scripts/test-all.sh` exports them before running vitest. On a developer's machine a missing
 * service skips its tests loudly (the reason is printed); under `CI=true` a missing service fails the run.
 */

/** The environment variables the harness sets, by service. */
export const TEST_SERVICE_VARIABLES = {
  registry: 'SHIFTER_TEST_REGISTRY',
  registryBasic: 'SHIFTER_TEST_REGISTRY_BASIC',
  registryToken: 'SHIFTER_TEST_REGISTRY_TOKEN',
  fixtures: 'SHIFTER_TEST_FIXTURES',
  mongo: 'SHIFTER_TEST_MONGO_URL',
  mongoPg: 'SHIFTER_TEST_MONGO_PG_URL',
  redis: 'SHIFTER_TEST_REDIS_URL',
  munge: 'SHIFTER_TEST_MUNGE_SOCKET',
  user: 'SHIFTER_TEST_USER',
} as const;

/** A service the integration tests can ask for. */
export type TestService = keyof typeof TEST_SERVICE_VARIABLES;

/**
 * Whether the given services are available. Under `CI=true` a missing service throws instead of returning false,
 * so CI never silently skips.
 *
 * @example
 * ```ts
 * describe.skipIf(!haveServices('registry', 'fixtures'))('pull from the test registry', () => { … });
 * ```
 */
export function haveServices(...services: TestService[]): boolean {
  const missing = services.filter((s) => !process.env[TEST_SERVICE_VARIABLES[s]]);
  if (missing.length === 0) return true;
  const names = missing.map((s) => TEST_SERVICE_VARIABLES[s]).join(', ');
  if (process.env.CI === 'true') {
    throw new Error(`integration services missing under CI=true: ${names} (run scripts/test-harness.sh start)`);
  }
  console.warn(`SKIPPING integration tests: ${names} not set (run scripts/test-harness.sh start)`);
  return false;
}

/** Whether this process runs as root; under `CI=true` not being root is a failure for tests that need it. */
export function haveRoot(): boolean {
  if (process.getuid?.() === 0) return true;
  if (process.env.CI === 'true') throw new Error('root-only integration tests must run as root under CI=true');
  console.warn('SKIPPING root-only integration tests: not running as root');
  return false;
}

/** The value of a service variable; throws when unset (call after {@link haveServices}). */
export function serviceValue(service: TestService): string {
  const value = process.env[TEST_SERVICE_VARIABLES[service]];
  if (!value) throw new Error(`${TEST_SERVICE_VARIABLES[service]} is not set`);
  return value;
}
