// Regenerates packages/cli/schemas/*.json from src/result-schemas.ts: `npm run schemas -w @shifter/cli`.
import { writeFileSync } from 'node:fs';
import { RESULT_SCHEMAS, resultJsonSchema, type ResultSchemaName } from '../src/result-schemas.js';

for (const name of Object.keys(RESULT_SCHEMAS) as ResultSchemaName[]) {
  const file = new URL(`../schemas/${name}.json`, import.meta.url);
  writeFileSync(file, `${JSON.stringify(resultJsonSchema(name), null, 2)}\n`);
  console.log(`wrote schemas/${name}.json`);
}
