import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ShifterError } from '../errors/index.js';

/**
 * The `.meta` file next to every `<id>.squashfs`: what the runtime needs to start the image without asking the
 * gateway. The exact text format (keys, the plain upstream-compatible syntax and the percent-encoded escape forms)
 * is specified in docs/meta-format.md; `meta-vectors.json` holds test vectors shared with the C reader.
 */
export interface MetaFile {
  /** Image file format; this product only writes `squashfs`. */
  format: string;
  /** Entrypoint argv, or null when the image has none (an empty list is written as absent). */
  entrypoint: string[] | null;
  /** Command argv, or null when the image has none (an empty list is written as absent). */
  cmd: string[] | null;
  /** Working directory, or null. */
  workdir: string | null;
  /** `KEY=value` environment strings, in image order. */
  env: string[];
  /** Uids allowed to use a private image; absent or empty for public images. */
  userACL?: number[];
  /** Gids allowed to use a private image; absent or empty for public images. */
  groupACL?: number[];
  /** The user who imported the file (upstream `USER:` of imported images); not the image config's User. */
  user?: string;
}

/** Input of {@link formatMeta}: the image's metadata plus format and ACLs. */
export type FormatMetaInput = Pick<MetaFile, 'entrypoint' | 'cmd' | 'workdir' | 'env'> & {
  format: 'squashfs';
  userACL?: number[];
  groupACL?: number[];
  user?: string | null;
};

// SECURITY/NOTE: upstream's C reader (shifter_parseConfig + split_json_array) splits each line at the first ':',
// trims whitespace from key and value, skips lines starting with '#', joins a value ending in '\' with the next line,
// and splits lists only on single quotes, after checking the value starts with "[u'". Anything that collides with
// one of those rules cannot be written plainly; it gets the percent-encoded form instead (docs/meta-format.md).

const CONTROL = /[\u0000-\u001f\u007f]/;
const WHITESPACE_EDGE = /^[\t\n\v\f\r ]|[\t\n\v\f\r ]$/;

function isPlainListItem(item: string): boolean {
  return !item.includes("'") && !CONTROL.test(item);
}

function isPlainScalar(value: string): boolean {
  return (
    value.length > 0 &&
    !CONTROL.test(value) &&
    !WHITESPACE_EDGE.test(value) &&
    !value.startsWith('%') &&
    !value.endsWith('\\')
  );
}

/**
 * Percent-encode a string: its UTF-8 bytes, with every byte outside printable ASCII (0x21–0x7E) and the three bytes
 * `%`, `'` and `\` written as `%XX` (upper-case hex). Lone surrogates become U+FFFD first (they have no UTF-8 form).
 *
 * @param value - any string
 * @returns the encoded text, which contains no whitespace, quotes or backslashes
 */
export function percentEncodeMeta(value: string): string {
  const bytes = Buffer.from(value, 'utf8');
  let out = '';
  for (const byte of bytes) {
    if (byte >= 0x21 && byte <= 0x7e && byte !== 0x25 && byte !== 0x27 && byte !== 0x5c) {
      out += String.fromCharCode(byte);
    } else {
      out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    }
  }
  return out;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function invalid(message: string, details: Record<string, unknown>): ShifterError {
  return new ShifterError('SHIFTER_META_INVALID', message, { details });
}

/**
 * Decode {@link percentEncodeMeta}'s output.
 *
 * @param text - encoded text
 * @returns the decoded string
 * @throws {@link ShifterError} `SHIFTER_META_INVALID` on a `%` not followed by two hex digits or bytes that are not UTF-8
 */
export function percentDecodeMeta(text: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x25) {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw invalid('bad percent escape in .meta value', { value: text });
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (ch < 0x80) {
      bytes.push(ch);
    } else {
      for (const byte of Buffer.from(text[i] ?? '', 'utf8')) bytes.push(byte);
    }
  }
  try {
    return utf8.decode(Uint8Array.from(bytes));
  } catch (error) {
    throw invalid('percent-encoded .meta value is not UTF-8', { value: text, cause: String(error) });
  }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

// NOTE: a JS string from JSON may hold lone surrogates ("\ud800"), which have no UTF-8 form; they become U+FFFD,
// as they would when the file is written as UTF-8 anyway. Doing it first keeps the returned text and the file equal.
function wellFormed(value: string): string {
  return value.replace(LONE_SURROGATE, '\uFFFD');
}

function formatList(rawItems: string[]): string {
  const items = rawItems.map(wellFormed);
  if (items.every(isPlainListItem)) return `[${items.map((item) => `u'${item}'`).join(', ')}]`;
  return `%[${items.map((item) => `'${percentEncodeMeta(item)}'`).join(', ')}]`;
}

function formatScalar(rawValue: string): string {
  const value = wellFormed(rawValue);
  return isPlainScalar(value) ? value : `%${percentEncodeMeta(value)}`;
}

function formatIds(ids: number[], field: string): string {
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id > 0xfffffffe) {
      throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', `${field} holds an invalid id: ${id}`, {
        details: { field, id },
      });
    }
  }
  return ids.join(',');
}

/**
 * Render a `.meta` file. Values upstream's C reader can hold are written in its syntax (lists as `[u'a', u'b']`);
 * anything else (a `'` or control character in a list item; a newline, edge whitespace, leading `%` or trailing `\`
 * in a scalar) is written in the percent-encoded form of docs/meta-format.md. No image is ever refused.
 *
 * Line order: FORMAT, ENTRY, CMD, WORKDIR, USERACL, GROUPACL, USER, then one ENV line per variable. Empty lists and
 * null values are omitted; ACL lines only appear when the list is non-empty (private images).
 *
 * @param meta - metadata, format and ACLs
 * @returns the file text, ending with a newline
 * @throws {@link ShifterError} `SHIFTER_USAGE_INVALID_ARGUMENT` when an ACL id is not a valid uid/gid
 */
export function formatMeta(meta: FormatMetaInput): string {
  const lines = [`FORMAT: ${meta.format}`];
  if (meta.entrypoint && meta.entrypoint.length > 0) lines.push(`ENTRY: ${formatList(meta.entrypoint)}`);
  if (meta.cmd && meta.cmd.length > 0) lines.push(`CMD: ${formatList(meta.cmd)}`);
  if (meta.workdir) lines.push(`WORKDIR: ${formatScalar(meta.workdir)}`);
  if (meta.userACL && meta.userACL.length > 0) lines.push(`USERACL: ${formatIds(meta.userACL, 'userACL')}`);
  if (meta.groupACL && meta.groupACL.length > 0) lines.push(`GROUPACL: ${formatIds(meta.groupACL, 'groupACL')}`);
  if (meta.user) lines.push(`USER: ${formatScalar(meta.user)}`);
  for (const variable of meta.env) lines.push(`ENV: ${formatScalar(variable)}`);
  return `${lines.join('\n')}\n`;
}

function splitQuoted(body: string, key: string): string[] {
  // Same rule as upstream's split_json_array: items are the text between pairs of single quotes; anything outside
  // quotes (the `u` prefixes, commas, spaces) is ignored.
  const items: string[] = [];
  let start = -1;
  for (let i = 0; i < body.length; i++) {
    if (body[i] !== "'") continue;
    if (start < 0) start = i + 1;
    else {
      items.push(body.slice(start, i));
      start = -1;
    }
  }
  if (start >= 0) throw invalid(`unterminated quote in .meta ${key} list`, { key, value: body });
  return items;
}

function parseList(value: string, key: string): string[] | null {
  if (value.startsWith('%[')) {
    if (!value.endsWith(']')) throw invalid(`.meta ${key} list does not end with ]`, { key, value });
    return splitQuoted(value.slice(2, -1), key).map(percentDecodeMeta);
  }
  // Accept both our `[u'a']` and Python 3's `['a']`; the C reader of upstream only accepted the former.
  if (value.startsWith("[u'") || value.startsWith("['")) {
    if (!value.endsWith(']')) throw invalid(`.meta ${key} list does not end with ]`, { key, value });
    return splitQuoted(value.slice(1, -1), key);
  }
  if (value === '[]') return null;
  // Upstream: a value that is not a list is one argument.
  return [value];
}

function parseScalar(value: string): string {
  return value.startsWith('%') ? percentDecodeMeta(value.slice(1)) : value;
}

function parseIds(value: string, key: string): number[] {
  if (value === '') return [];
  return value.split(',').map((part) => {
    const trimmed = part.trim();
    if (!/^\d+$/.test(trimmed)) throw invalid(`.meta ${key} holds a non-numeric id`, { key, value });
    return Number(trimmed);
  });
}

/**
 * Parse a `.meta` file written by {@link formatMeta} or by upstream Shifter's gateway.
 *
 * Follows upstream's reader: lines starting with `#` and lines without `:` are skipped, keys and values are
 * trimmed, a value ending in `\` continues on the next line (joined with a space), unknown keys are ignored. The
 * last ENTRY/CMD/WORKDIR/FORMAT line wins; ENV lines accumulate.
 *
 * @param text - the file's text
 * @returns the parsed file; `format` is `''` when there is no FORMAT line
 * @throws {@link ShifterError} `SHIFTER_META_INVALID` on a malformed list, escape or id
 */
export function parseMeta(text: string): MetaFile {
  const meta: MetaFile = { format: '', entrypoint: null, cmd: null, workdir: null, env: [] };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i] ?? '';
    if (line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const key = line.slice(0, colon).trim();
    let value = line.slice(colon + 1).trim();
    while (value.endsWith('\\') && i + 1 < lines.length) {
      i++;
      line = lines[i] ?? '';
      value = `${value.slice(0, -1).trim()} ${line.trim()}`.trim();
    }
    switch (key) {
      case 'FORMAT':
        meta.format = value;
        break;
      case 'ENTRY':
        meta.entrypoint = parseList(value, key);
        break;
      case 'CMD':
        meta.cmd = parseList(value, key);
        break;
      case 'WORKDIR':
        meta.workdir = value === '' ? null : parseScalar(value);
        break;
      case 'ENV':
        meta.env.push(parseScalar(value));
        break;
      case 'USERACL':
        meta.userACL = parseIds(value, key);
        break;
      case 'GROUPACL':
        meta.groupACL = parseIds(value, key);
        break;
      case 'USER':
        meta.user = parseScalar(value);
        break;
      default:
        break;
    }
  }
  return meta;
}

/**
 * Write a `.meta` file atomically: the text goes to a temporary name in the same directory, is fsync'ed, then
 * renamed over `path`. On failure the temporary file is removed and `path` is untouched.
 *
 * @param path - destination, e.g. `<imageDir>/<id>.meta`
 * @param meta - what {@link formatMeta} takes
 * @returns the text written
 * @throws {@link ShifterError} `SHIFTER_IO_FAILED` when the file cannot be written; `SHIFTER_USAGE_INVALID_ARGUMENT` for bad ACL ids
 */
export function writeMetaFile(path: string, meta: FormatMetaInput): string {
  const text = formatMeta(meta);
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(temp, 'wx', 0o644);
    writeSync(fd, text);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(temp, path);
    return text;
  } catch (error) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(temp);
    } catch {
      // already gone
    }
    throw new ShifterError('SHIFTER_IO_FAILED', `cannot write ${path}: ${(error as Error).message}`, {
      cause: error,
      details: { path },
    });
  }
}
