// ESLint with type information (typescript-eslint). The rules are chosen for the bugs they catch, not for style:
// layout is Prettier's job (`npm run format`), and what tsc's strict mode already reports is not repeated here.
// Run: `npm run lint` (scripts/test-runners/lint.sh runs it in the test command).
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      '**/node_modules/**',
      '**/dist/**',
      '**/build/**',
      '.state/**',
      'coverage/**',
      'docs/api/**',
      'bench/out/**',
      'packages/*/bin/**',
    ],
  },
  {
    files: ['**/*.ts', '**/*.mts', '**/*.cts', '**/*.js', '**/*.mjs'],
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      // Promises: a promise nobody awaits loses its rejection (an unhandled rejection ends the process); a promise
      // where a boolean or a void callback is expected is always truthy or never awaited.
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: true }],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      // `return promise` inside try/catch skips the catch and the finally's ordering.
      '@typescript-eslint/return-await': ['error', 'error-handling-correctness-only'],
      // Passing on a caught `unknown` is allowed: it is whatever was thrown.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      '@typescript-eslint/only-throw-error': 'error',
      // Values that print as "[object Object]" in messages and keys.
      '@typescript-eslint/no-base-to-string': 'error',
      '@typescript-eslint/no-for-in-array': 'error',
      '@typescript-eslint/no-implied-eval': 'error',
      // A switch over a union that forgets a member.
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: true, allowDefaultCaseForExhaustiveSwitch: true },
      ],
      // Plain JavaScript mistakes.
      'no-fallthrough': 'error',
      'no-self-compare': 'error',
      'no-dupe-keys': 'error',
      'no-duplicate-case': 'error',
      'no-unreachable': 'error',
      'no-unsafe-finally': 'error',
      'no-cond-assign': ['error', 'except-parens'],
      'no-async-promise-executor': 'error',
      'no-constant-binary-expression': 'error',
      'no-unmodified-loop-condition': 'error',
      'no-sparse-arrays': 'error',
      'use-isnan': 'error',
      'valid-typeof': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
  {
    // Unit tests and the contract suites wait for no wall-clock time (CONTRIBUTING.md, "Time in tests"): code under
    // test takes a clock, a sleep or a deadline signal that the test controls, the test uses vi.useFakeTimers, or it
    // waits for the event it means. A justified exception says why:
    // `// eslint-disable-next-line no-restricted-syntax -- <why this must wait>`.
    files: [
      'packages/*/src/**/*.test.ts',
      'packages/*/test/unit/**/*.ts',
      'test/**/*.test.ts',
      'packages/core/src/testing/contracts/**/*.ts',
    ],
    ignores: ['**/*.int.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        ...['node:timers', 'timers', 'node:timers/promises', 'timers/promises'].map((name) => ({
          name,
          message: 'Unit tests do not wait for wall-clock time: inject a clock or a sleep, or wait for an event.',
        })),
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector:
            "CallExpression[callee.name=/^(setTimeout|setInterval|sleep|delay)$/], CallExpression[callee.object.name='globalThis'][callee.property.name=/^(setTimeout|setInterval)$/]",
          message:
            'Unit tests do not wait for wall-clock time: inject a clock or a sleep, use vi.useFakeTimers, or wait for an event (CONTRIBUTING.md, "Time in tests").',
        },
      ],
    },
  },
  {
    // Plain JavaScript (the oclif launcher, bench load generators, the harness token server): no type information.
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    ...tseslint.configs.disableTypeChecked,
  },
);
