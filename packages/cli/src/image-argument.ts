import { ShifterError } from '@shifter/core';

/** Image types a descriptor may start with (upstream's list; `id` and `local` only mean something to the runtime). */
export const IMAGE_TYPES = ['docker', 'custom', 'id', 'local'] as const;

/** A parsed `type:tag` argument. */
export interface ImageArgument {
  /** Image type, e.g. `docker`. */
  type: string;
  /** Tag as the gateway expects it, e.g. `ubuntu:22.04` or `127.0.0.1:5000/test/busybox:latest`. */
  tag: string;
}

/**
 * Split `type:tag` or a bare tag the way the runtime does: the text before the first `:` is the type only when it is
 * one of {@link IMAGE_TYPES}; otherwise the whole string is the tag and `defaultType` applies (so
 * `ubuntu:22.04` and `registry:5000/x:1` are bare tags).
 *
 * @param text - the argument as typed
 * @param defaultType - `defaultImageType` of `udiRoot.conf`
 * @throws ShifterError `SHIFTER_REF_INVALID` when the tag is empty or holds whitespace or control characters
 */
export function parseImageArgument(text: string, defaultType: string): ImageArgument {
  const colon = text.indexOf(':');
  const prefix = colon > 0 ? text.slice(0, colon) : '';
  const known = (IMAGE_TYPES as readonly string[]).includes(prefix);
  const type = known ? prefix : defaultType;
  const tag = known ? text.slice(colon + 1) : text;
  // NOTE: upstream silently dropped characters outside its allowed set, which turned typos into other images;
  // refusing is safer. The gateway validates the reference fully.
  if (tag === '' || /[\s\u0000-\u001f\u007f]/.test(tag)) {
    throw new ShifterError(
      'SHIFTER_REF_INVALID',
      `"${text}" is not an image: use TYPE:TAG or TAG, e.g. docker:ubuntu:22.04`,
      {
        details: { argument: text },
      },
    );
  }
  return { type, tag };
}
