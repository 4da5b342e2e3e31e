import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Config } from '@oclif/core/config';
import { captureOutput } from '@oclif/test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { GatewayImage } from '@shifter/core';
import { COMMANDS } from '../../src/commands.js';

export const cliRoot = fileURLToPath(new URL('../../', import.meta.url));

let config: Config | undefined;

/** oclif configuration of the package, without command discovery (commands are run directly from the map). */
async function oclifConfig(): Promise<Config> {
  if (!config) {
    const pjson = JSON.parse(readFileSync(`${cliRoot}package.json`, 'utf8'));
    delete pjson.oclif.commands;
    config = await Config.load({ root: cliRoot, pjson });
  }
  return config;
}

/** What a command run printed and how it ended. */
export interface CliRun {
  stdout: string;
  stderr: string;
  exitCode: number;
  result: unknown;
}

/**
 * Run `shifterimg <argv>` in-process and capture its output and exit code.
 * @param argv - command id then its arguments
 */
export async function runCli(argv: string[]): Promise<CliRun> {
  const [id, ...rest] = argv;
  // Typed loosely: each command class returns its own result type, so the union of classes has no common `run`.
  const command = COMMANDS[id as keyof typeof COMMANDS] as unknown as
    { run(argv: string[], config: Config): Promise<unknown> } | undefined;
  if (!command) throw new Error(`no command ${id}`);
  const loaded = await oclifConfig();
  const { stdout, stderr, error, result } = await captureOutput(() => command.run(rest, loaded), { stripAnsi: false });
  const exitCode = error ? ((error as { oclif?: { exit?: number } }).oclif?.exit ?? 1) : 0;
  return { stdout, stderr, exitCode, result };
}

const ajv = new Ajv2020({ allErrors: true, strict: false });
const validators = new Map<string, ReturnType<typeof ajv.compile>>();

/**
 * Validate `value` against `schemas/<name>.json`; returns the error list (empty when valid).
 * @param name - schema file name without `.json`
 * @param value - the parsed `--json` output
 */
export function schemaErrors(name: string, value: unknown): string[] {
  let validate = validators.get(name);
  if (!validate) {
    validate = ajv.compile(JSON.parse(readFileSync(`${cliRoot}schemas/${name}.json`, 'utf8')));
    validators.set(name, validate);
  }
  return validate(value) ? [] : (validate.errors ?? []).map((error) => `${error.instancePath} ${error.message}`);
}

/** A READY image answer. */
export function image(overrides: Partial<GatewayImage> = {}): GatewayImage {
  return {
    id: '8ff77067439e7fd03e6f2c0b9e7f7da4e7c9a1e0d5f6a7b8c9d0e1f2a3b4c5d6',
    system: 'vmcluster',
    itype: 'docker',
    tag: ['ubuntu:latest'],
    status: 'READY',
    userACL: [],
    groupACL: [],
    ENV: ['PATH=/usr/bin:/bin'],
    ENTRY: 'MISSING',
    WORKDIR: '/',
    LABELS: {},
    last_pull: 1_501_498_622,
    status_message: 'Image ready',
    ...overrides,
  };
}
