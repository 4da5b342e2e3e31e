/**
 * Reading `gatewayCaPath`: the trust anchors a client of `https://` gateways verifies them with.
 *
 * @packageDocumentation
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { ConfigError } from '../errors/index.js';

const PEM_CERTIFICATE = '-----BEGIN CERTIFICATE-----';
/** Names `openssl rehash` gives CA certificates (`<subject hash>.<n>`); CRLs are `<hash>.r<n>` and skipped. */
const HASHED_NAME = /^[0-9a-f]{8}\.[0-9]+$/;

function invalid(path: string, message: string, cause?: unknown): ConfigError {
  return new ConfigError('SHIFTER_CONFIG_INVALID', `gatewayCaPath ${path}: ${message}`, {
    details: { key: 'gatewayCaPath', path },
    ...(cause ? { cause } : {}),
  });
}

/**
 * Read the trust anchors `gatewayCaPath` names, with the runtime's rules: a PEM file (one CA or a bundle) or a
 * directory hashed with `openssl rehash` (its `<hash>.<n>` entries are read); the path must be absolute.
 *
 * @param path - value of `gatewayCaPath`
 * @returns PEM texts for {@link GatewayClientOptions.ca}, one per file
 * @throws {@link ConfigError} `SHIFTER_CONFIG_INVALID` when the path is relative, unreadable, or holds no certificate
 */
export async function readTrustAnchors(path: string): Promise<string[]> {
  if (!isAbsolute(path)) throw invalid(path, 'must be an absolute path');
  let files: string[];
  try {
    const info = await stat(path);
    if (info.isDirectory()) {
      const names = (await readdir(path)).filter((name) => HASHED_NAME.test(name)).sort();
      files = names.map((name) => join(path, name));
    } else files = [path];
  } catch (error) {
    throw invalid(path, `cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`, error);
  }
  const texts: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      throw invalid(path, file === path ? `cannot be read (${code})` : `cannot read ${file} (${code})`, error);
    }
    if (text.includes(PEM_CERTIFICATE)) texts.push(text);
  }
  if (texts.length === 0) {
    throw invalid(path, 'holds no PEM certificate (a PEM file, or a directory hashed with `openssl rehash`)');
  }
  return texts;
}
