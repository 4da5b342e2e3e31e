import { z } from 'zod';
import { CONFIG_ENVIRONMENT, CONFIG_FILE_VARIABLES } from './env.js';
import { IMAGEMANAGER_KEY_MAP } from './imagemanager-json.js';
import { ShifterConfigSchema } from './config-schema.js';

type JsonSchema = {
  type?: string | string[];
  description?: string;
  default?: unknown;
  properties?: Record<string, JsonSchema>;
  additionalProperties?: JsonSchema | boolean;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  items?: JsonSchema;
};

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function typeOf(schema: JsonSchema): string {
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(' \\| ');
  const variants = schema.anyOf ?? schema.oneOf;
  if (variants) return variants.map(typeOf).join(' \\| ');
  if (schema.type === 'array') return `${schema.items ? typeOf(schema.items) : 'any'}[]`;
  if (Array.isArray(schema.type)) return schema.type.join(' \\| ');
  return schema.type ?? 'any';
}

function walk(schema: JsonSchema, path: string, rows: string[]): void {
  const variants = schema.anyOf ?? schema.oneOf;
  if (schema.properties) {
    for (const [key, child] of Object.entries(schema.properties)) walk(child, path ? `${path}.${key}` : key, rows);
    if (path && schema.description) rows.push(`| \`${path}\` | object | | ${cell(schema.description)} |`);
    return;
  }
  if (variants && variants.every((v) => v.properties)) {
    rows.push(
      `| \`${path}\` | one of ${variants.length} shapes by \`kind\` | ${schema.default === undefined ? '' : `\`${cell(JSON.stringify(schema.default))}\``} | ${cell(schema.description ?? '')} |`,
    );
    for (const variant of variants) {
      const kind = variant.properties?.kind?.const;
      for (const [key, child] of Object.entries(variant.properties ?? {})) {
        if (key === 'kind') continue;
        walk(child, `${path}{kind=${String(kind)}}.${key}`, rows);
      }
    }
    return;
  }
  if (typeof schema.additionalProperties === 'object' && schema.type === 'object') {
    rows.push(
      `| \`${path}\` | record | ${schema.default === undefined ? '' : `\`${cell(JSON.stringify(schema.default))}\``} | ${cell(schema.description ?? '')} |`,
    );
    walk(schema.additionalProperties, `${path}.<name>`, rows);
    return;
  }
  const fallback = schema.default === undefined ? '' : `\`${cell(JSON.stringify(schema.default))}\``;
  rows.push(`| \`${path}\` | ${typeOf(schema)} | ${fallback} | ${cell(schema.description ?? '')} |`);
}

/**
 * Render the configuration reference (every field, the environment variables and the imagemanager.json mapping)
 * as Markdown. docs/configuration-reference.md is this output, pinned by a test.
 */
export function renderConfigReference(): string {
  const schema = z.toJSONSchema(ShifterConfigSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  const rows: string[] = [];
  walk(schema, '', rows);
  const lines = [
    '# Configuration reference',
    '',
    '<!-- Generated from packages/core/src/config/config-schema.ts by renderConfigReference(); a test keeps it in sync. -->',
    '',
    'Every field of the one configuration schema (`ShifterConfigSchema`). `packages/core/config.schema.json` is the',
    'same schema as JSON Schema. See [configuration.md](configuration.md) for how files, environment and flags combine.',
    '',
    '| field | type | default | meaning |',
    '|---|---|---|---|',
    ...rows,
    '',
    '## Environment variables',
    '',
    `The config file is named by \`--config\`, else by ${CONFIG_FILE_VARIABLES.map((v) => `\`${v}\``).join(' or ')}.`,
    'Only these variables are read (never a prefix scan):',
    '',
    '| variable | sets |',
    '|---|---|',
    ...CONFIG_ENVIRONMENT.map((variable) => `| \`${variable.name}\` | ${cell(variable.description)} |`),
    '',
    '## Upstream imagemanager.json keys',
    '',
    '| upstream key | Shifter config |',
    '|---|---|',
    ...IMAGEMANAGER_KEY_MAP.map((row) => `| \`${cell(row.upstream)}\` | ${cell(row.shifter)} |`),
    '',
  ];
  return lines.join('\n');
}
