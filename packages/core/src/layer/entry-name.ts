import { LayerError } from '../errors/index.js';

/** A tar entry name split into path components, with the facts the applier needs. */
export interface EntryName {
  /** Components below the image root; empty for the root itself (`./`). */
  components: string[];
  /** The name exactly as the archive gave it (for error details). */
  raw: string;
}

/**
 * Split a tar entry or hardlink name into components below the image root.
 *
 * Leading `./` and repeated or trailing slashes are dropped. An absolute name and any `..` component are refused:
 * both are legal in a tar but never in an image layer, and accepting them is how extraction escapes its root
 * (CVE-2019-14271 class).
 *
 * @param raw - the name from the tar header (PAX `path`/`linkpath` and GNU long names already applied)
 * @param context - layer digest and what the name is, for the error
 * @throws {@link LayerError} `SHIFTER_LAYER_UNSAFE_PATH` (entry names) or `SHIFTER_LAYER_UNSAFE_LINK` (hardlink
 *   targets) for absolute names, `..` components or NUL bytes
 */
export function splitEntryName(
  raw: string,
  context: { layer: string; entry: string; kind: 'entry' | 'hardlink' },
): EntryName {
  const code = context.kind === 'entry' ? 'SHIFTER_LAYER_UNSAFE_PATH' : 'SHIFTER_LAYER_UNSAFE_LINK';
  const refuse = (why: string) =>
    new LayerError(code, `${context.kind === 'entry' ? 'entry' : 'hardlink target'} ${JSON.stringify(raw)} ${why}`, {
      details: {
        layer: context.layer,
        entry: context.entry,
        ...(context.kind === 'hardlink' ? { linkname: raw } : {}),
      },
    });
  if (raw.startsWith('/')) throw refuse('is absolute');
  if (raw.includes('\0')) throw refuse('contains a NUL byte');
  const components: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw refuse('contains a ".." component');
    components.push(part);
  }
  return { components, raw };
}
