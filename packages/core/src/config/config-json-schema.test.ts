import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ShifterConfigSchema } from './config-schema.js';

describe('config.schema.json', () => {
  it('is generated from ShifterConfigSchema', async () => {
    const schema = z.toJSONSchema(ShifterConfigSchema, { io: 'input', unrepresentable: 'any' });
    await expect(`${JSON.stringify(schema, null, 2)}\n`).toMatchFileSnapshot('../../config.schema.json');
  });
});
