import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { commandSurface } from '../../src/command-surface.js';
import { COMMANDS } from '../../src/commands.js';
import { RESULT_SCHEMAS, resultJsonSchema, type ResultSchemaName } from '../../src/result-schemas.js';
import { cliRoot } from './helpers.js';

describe('command surface', () => {
  it('matches command-snapshot.json (run `npm run snapshot:update -w @shifter/cli` after an intended change)', () => {
    const pinned = JSON.parse(readFileSync(`${cliRoot}command-snapshot.json`, 'utf8'));
    expect(commandSurface()).toEqual(pinned);
  });

  it('has every command of the issue, each with a summary, a description and examples', () => {
    expect(Object.keys(COMMANDS).sort()).toEqual([
      'autoexpire',
      'expire',
      'images',
      'import',
      'login',
      'lookup',
      'pull',
      'pullnb',
      'queue',
      'status',
    ]);
    for (const command of Object.values(COMMANDS)) {
      expect(command.summary).toBeTruthy();
      expect(command.description).toBeTruthy();
      expect(command.examples?.length).toBeGreaterThan(0);
    }
  });

  it('keeps schemas/*.json in sync with the result schemas (run `npm run schemas -w @shifter/cli`)', () => {
    for (const name of Object.keys(RESULT_SCHEMAS) as ResultSchemaName[]) {
      const file = JSON.parse(readFileSync(`${cliRoot}schemas/${name}.json`, 'utf8'));
      expect(file, name).toEqual(resultJsonSchema(name));
    }
  });
});
