/** One challenge of a `WWW-Authenticate` header. */
export interface AuthChallenge {
  /** Scheme in lower case (`bearer`, `basic`). */
  scheme: string;
  /** Parameters with lower-case names (`realm`, `service`, `scope`, `error`). */
  params: Record<string, string>;
}

const TOKEN_CHAR = /[A-Za-z0-9!#$%&'*+.^_`|~-]/;
const TOKEN68_CHAR = /[A-Za-z0-9\-._~+/=]/;

/**
 * Parse `WWW-Authenticate` header values (RFC 9110 §11.6.1): several challenges per header, several parameters per
 * challenge, quoted values that may contain commas and escaped quotes, token68 credentials.
 *
 * Never throws: unparsable parts are skipped, so a hostile header can only yield fewer challenges.
 * @param header - one header value or the list of values undici gives for repeated headers
 */
export function parseWwwAuthenticate(header: string | string[] | undefined): AuthChallenge[] {
  if (header === undefined) return [];
  if (Array.isArray(header)) return header.flatMap((value) => parseWwwAuthenticate(value));
  const input = header.slice(0, 16 * 1024);
  const challenges: AuthChallenge[] = [];
  let pos = 0;
  const skip = (pattern: RegExp): void => {
    while (pos < input.length && pattern.test(input[pos]!)) pos += 1;
  };
  const readWhile = (pattern: RegExp): string => {
    const start = pos;
    skip(pattern);
    return input.slice(start, pos);
  };
  const readQuoted = (): string => {
    let value = '';
    pos += 1; // opening quote
    while (pos < input.length && input[pos] !== '"') {
      if (input[pos] === '\\' && pos + 1 < input.length) pos += 1;
      value += input[pos];
      pos += 1;
    }
    pos += 1; // closing quote
    return value;
  };

  while (pos < input.length) {
    skip(/[\s,]/);
    const scheme = readWhile(TOKEN_CHAR);
    if (scheme.length === 0) {
      pos += 1; // skip garbage
      continue;
    }
    const challenge: AuthChallenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    for (;;) {
      skip(/[ \t]/);
      const start = pos;
      const name = readWhile(TOKEN_CHAR);
      skip(/[ \t]/);
      if (name.length > 0 && input[pos] === '=' && input[pos + 1] !== '=') {
        pos += 1;
        skip(/[ \t]/);
        const value = input[pos] === '"' ? readQuoted() : readWhile(/[^\s,]/);
        challenge.params[name.toLowerCase()] = value;
        skip(/[ \t]/);
        if (input[pos] === ',') {
          pos += 1;
          continue;
        }
        break;
      }
      // Either a token68 right after the scheme or the start of the next challenge.
      pos = start;
      if (Object.keys(challenge.params).length === 0) {
        const token68 = readWhile(TOKEN68_CHAR);
        skip(/[ \t]/);
        if (token68.length > 0 && (pos >= input.length || input[pos] === ',')) {
          challenge.params.token68 = token68;
          continue;
        }
        pos = start;
      }
      break;
    }
  }
  return challenges;
}
