import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ShifterConfigSchema } from './config-schema.js';

describe('config.schema.json', () => {
  it('is generated from ShifterConfigSchema', async () => {
    const schema = z.toJSONSchema(ShifterConfigSchema, { io: 'input', unrepresentable: 'any' });
    await expect(`${JSON.stringify(schema, null, 2)}\n`).toMatchFileSnapshot('../../config.schema.json');
  });
});

describe('docs/configuration-reference.md', () => {
  it('is generated from the schema, the environment list and the imagemanager.json mapping', async () => {
    const { renderConfigReference } = await import('./config-reference.js');
    const text = renderConfigReference();
    expect(text).toContain('`systems.<name>.transfer');
    expect(text).toContain('`SHIFTER_MONGO_URL`');
    await expect(text).toMatchFileSnapshot('../../../../docs/configuration-reference.md');
  });
});
