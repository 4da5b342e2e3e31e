import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type FormatMetaInput,
  formatMeta,
  parseMeta,
  percentDecodeMeta,
  percentEncodeMeta,
  writeMetaFile,
} from './meta-format.js';

// Read with JSON.parse: the vectors hold a lone surrogate escape, which the bundler's JSON loader rejects.
const vectors = JSON.parse(readFileSync(new URL('./meta-vectors.json', import.meta.url), 'utf8')) as {
  format: { name: string; meta: unknown; text: string }[];
  parse: { name: string; meta: unknown; text: string }[];
  invalid: { name: string; text: string }[];
};

const LONE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const clean = (s: string) => s.replace(LONE, '\uFFFD');

/** What parseMeta should give back for a formatMeta input. */
function expectedBack(meta: FormatMetaInput): Record<string, unknown> {
  const list = (l: string[] | null) => (l && l.length > 0 ? l.map(clean) : null);
  const out: Record<string, unknown> = {
    format: meta.format,
    entrypoint: list(meta.entrypoint),
    cmd: list(meta.cmd),
    workdir: meta.workdir ? clean(meta.workdir) : null,
    env: meta.env.map(clean),
  };
  if (meta.userACL?.length) out.userACL = meta.userACL;
  if (meta.groupACL?.length) out.groupACL = meta.groupACL;
  if (meta.user) out.user = clean(meta.user);
  return out;
}

describe('formatMeta / parseMeta vectors', () => {
  for (const vector of vectors.format) {
    it(`formats: ${vector.name}`, () => {
      const meta = vector.meta as unknown as FormatMetaInput;
      expect(formatMeta(meta)).toBe(vector.text);
      expect(parseMeta(vector.text)).toEqual(expectedBack(meta));
    });
  }
  for (const vector of vectors.parse) {
    it(`parses: ${vector.name}`, () => {
      expect(parseMeta(vector.text)).toEqual(vector.meta);
    });
  }
  for (const vector of vectors.invalid) {
    it(`refuses: ${vector.name}`, () => {
      expect(() => parseMeta(vector.text)).toThrow(expect.objectContaining({ code: 'SHIFTER_META_INVALID' }));
    });
  }
});

describe('upstream compatibility', () => {
  it("writes lists in the [u'a', u'b'] form the upstream C reader requires", () => {
    const text = formatMeta({ format: 'squashfs', entrypoint: ['/bin/sh', '-c'], cmd: null, workdir: null, env: [] });
    expect(text).toContain("ENTRY: [u'/bin/sh', u'-c']\n");
  });
  it('omits ACL lines for public images', () => {
    const text = formatMeta({ format: 'squashfs', entrypoint: null, cmd: null, workdir: null, env: [], userACL: [] });
    expect(text).not.toMatch(/ACL/);
  });
  it('refuses an invalid ACL id', () => {
    expect(() =>
      formatMeta({ format: 'squashfs', entrypoint: null, cmd: null, workdir: null, env: [], userACL: [-1] }),
    ).toThrow(expect.objectContaining({ code: 'SHIFTER_USAGE_INVALID_ARGUMENT' }));
  });
});

// A small seeded generator keeps the property test reproducible without a new dependency.
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const ALPHABET = [
  "'",
  '"',
  ',',
  '[',
  ']',
  '%',
  '\\',
  ' ',
  '\t',
  '\n',
  '\r',
  '\u0000',
  '\u007f',
  ':',
  '#',
  '=',
  'u',
  'a',
  'Z',
  '0',
  'ü',
  '日',
  '😀',
  '\ud800',
  '/',
  '-',
];
function randomString(next: () => number, max = 12): string {
  let s = '';
  const length = Math.floor(next() * max);
  for (let i = 0; i < length; i++) s += ALPHABET[Math.floor(next() * ALPHABET.length)];
  return s;
}

describe('round trip property', () => {
  it('parseMeta(formatMeta(x)) gives x back for 2000 random images', () => {
    const next = prng(42);
    for (let n = 0; n < 2000; n++) {
      const list = () =>
        next() < 0.2 ? null : Array.from({ length: Math.floor(next() * 4) }, () => randomString(next));
      const meta: FormatMetaInput = {
        format: 'squashfs',
        entrypoint: list(),
        cmd: list(),
        workdir: next() < 0.3 ? null : randomString(next),
        env: Array.from({ length: Math.floor(next() * 4) }, () => `${randomString(next, 4)}=${randomString(next)}`),
        userACL: next() < 0.5 ? [] : [Math.floor(next() * 65536)],
      };
      const text = formatMeta(meta);
      // Every value sits on one line: the line count is fixed by the keys written.
      expect(text.split('\n').every((line) => line === '' || /^[A-Z]+: /.test(line))).toBe(true);
      expect(parseMeta(text)).toEqual(expectedBack(meta));
    }
  });
  it('percent encoding round-trips and leaves no whitespace, quote or backslash', () => {
    const next = prng(7);
    for (let n = 0; n < 2000; n++) {
      const s = randomString(next, 20);
      const encoded = percentEncodeMeta(s);
      expect(encoded).not.toMatch(/[\s'\\]/);
      expect(percentDecodeMeta(encoded)).toBe(clean(s));
    }
  });
});

describe('writeMetaFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shifter-meta-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  it('writes atomically and leaves no temporary file', () => {
    const path = join(dir, 'abc.meta');
    const text = writeMetaFile(path, {
      format: 'squashfs',
      entrypoint: null,
      cmd: ['/bin/sh'],
      workdir: '/',
      env: ['A=1'],
    });
    expect(readFileSync(path, 'utf8')).toBe(text);
    expect(readdirSync(dir)).toEqual(['abc.meta']);
  });
  it('fails with SHIFTER_IO_FAILED and leaves nothing when the directory is missing', () => {
    expect(() =>
      writeMetaFile(join(dir, 'missing', 'x.meta'), {
        format: 'squashfs',
        entrypoint: null,
        cmd: null,
        workdir: null,
        env: [],
      }),
    ).toThrow(expect.objectContaining({ code: 'SHIFTER_IO_FAILED' }));
    expect(readdirSync(dir)).toEqual(['abc.meta']);
  });
});
