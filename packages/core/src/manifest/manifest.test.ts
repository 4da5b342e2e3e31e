import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { computeDigest } from '../digest/index.js';
import { MediaType, ACCEPTED_MANIFEST_TYPES, mediaTypeOfContentType } from './media-types.js';
import {
  checkImageManifest,
  isImageIndex,
  parseManifest,
  type ImageIndex,
  type ImageManifest,
} from './parse-manifest.js';
import { DEFAULT_PLATFORM, formatPlatform, parsePlatform, selectPlatform } from './select-platform.js';
import { parseImageConfig } from './image-config.js';

const fixture = (name: string): Buffer =>
  readFileSync(fileURLToPath(new URL(`../../test/fixtures/manifests/${name}`, import.meta.url)));

describe('parseManifest', () => {
  it('reads an umoci OCI manifest without mediaType using Content-Type', () => {
    const bytes = fixture('oci-manifest-umoci.json');
    expect(JSON.parse(bytes.toString()).mediaType).toBeUndefined();
    const manifest = parseManifest(bytes, `${MediaType.OCI_MANIFEST}; charset=utf-8`) as ImageManifest;
    expect(manifest.kind).toBe('oci-manifest');
    expect(manifest.layers).toHaveLength(2);
    expect(manifest.config.size).toBe(559);
    expect(() => checkImageManifest(manifest)).not.toThrow();
  });
  it('infers an OCI manifest from its fields when no type is given at all', () => {
    expect(parseManifest(fixture('oci-manifest-umoci.json')).kind).toBe('oci-manifest');
    expect(parseManifest(fixture('oci-manifest-umoci.json'), 'application/json').kind).toBe('oci-manifest');
  });
  it('reads a Docker schema 2 manifest', () => {
    const manifest = parseManifest(fixture('docker-schema2.json'), 'application/octet-stream') as ImageManifest;
    expect(manifest.kind).toBe('docker-manifest');
    expect(manifest.layers.map((l) => l.mediaType)).toEqual([MediaType.DOCKER_LAYER_GZIP, MediaType.DOCKER_LAYER_GZIP]);
    expect(() => checkImageManifest(manifest)).not.toThrow();
  });
  it('prefers the body mediaType over a contradicting Content-Type', () => {
    expect(parseManifest(fixture('docker-schema2.json'), MediaType.OCI_INDEX).kind).toBe('docker-manifest');
  });
  it('reads indexes and lists', () => {
    const index = parseManifest(fixture('oci-index-attestations.json'));
    expect(isImageIndex(index)).toBe(true);
    expect(index.kind).toBe('oci-index');
    const list = parseManifest(fixture('docker-manifest-list.json'));
    expect(list.kind).toBe('docker-list');
    expect((list as ImageIndex).manifests).toHaveLength(6);
  });
  it('refuses Docker schema 1 by body and by Content-Type', () => {
    for (const [bytes, type] of [
      [fixture('docker-schema1-signed.json'), MediaType.DOCKER_SCHEMA1_SIGNED],
      [fixture('docker-schema1-signed.json'), undefined],
      [Buffer.from('{"schemaVersion":2}'), MediaType.DOCKER_SCHEMA1],
    ] as const) {
      expect(() => parseManifest(bytes, type)).toThrow(
        expect.objectContaining({ code: 'SHIFTER_MANIFEST_UNSUPPORTED', message: expect.stringMatching(/schema 1/) }),
      );
    }
  });
  it('refuses unknown types', () => {
    expect(() => parseManifest(Buffer.from('{"schemaVersion":2,"mediaType":"application/x-evil"}'))).toThrow(
      expect.objectContaining({ code: 'SHIFTER_MANIFEST_UNSUPPORTED' }),
    );
  });
  it.each([
    ['not JSON', '{', /not valid JSON/],
    ['an array', '[]', /not a JSON object/],
    ['null', 'null', /not a JSON object/],
    [
      'bad digest',
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OCI_MANIFEST,
        config: { mediaType: MediaType.OCI_CONFIG, digest: 'sha256:../../etc', size: 1 },
        layers: [],
      }),
      /config\.digest/,
    ],
    [
      'negative size',
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OCI_MANIFEST,
        config: { mediaType: MediaType.OCI_CONFIG, digest: `sha256:${'a'.repeat(64)}`, size: -1 },
        layers: [],
      }),
      /config\.size/,
    ],
    [
      'missing layers',
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.DOCKER_MANIFEST,
        config: { mediaType: MediaType.DOCKER_CONFIG, digest: `sha256:${'a'.repeat(64)}`, size: 1 },
      }),
      /layers/,
    ],
    [
      'wrong schemaVersion',
      JSON.stringify({ schemaVersion: 3, mediaType: MediaType.OCI_INDEX, manifests: [] }),
      /schemaVersion/,
    ],
  ])('refuses %s with SHIFTER_MANIFEST_INVALID', (_name, body, message) => {
    expect(() => parseManifest(Buffer.from(body))).toThrow(
      expect.objectContaining({ code: 'SHIFTER_MANIFEST_INVALID', message: expect.stringMatching(message) }),
    );
  });
});

describe('checkImageManifest', () => {
  it('refuses foreign layers naming the layer', () => {
    const manifest = parseManifest(fixture('docker-foreign-layer.json')) as ImageManifest;
    expect(() => checkImageManifest(manifest)).toThrow(
      expect.objectContaining({
        code: 'SHIFTER_MANIFEST_UNSUPPORTED',
        message: expect.stringMatching(/layer 0 \(sha256:[a-f0-9]{64}\) is a foreign/),
      }),
    );
  });
  it('refuses artifacts that are not container images', () => {
    const manifest = parseManifest(fixture('oci-artifact-helm.json')) as ImageManifest;
    expect(() => checkImageManifest(manifest)).toThrow(
      expect.objectContaining({ code: 'SHIFTER_MANIFEST_UNSUPPORTED', message: expect.stringMatching(/helm/) }),
    );
  });
  it('accepts zstd and uncompressed OCI layers', () => {
    expect(() => checkImageManifest(parseManifest(fixture('oci-manifest-zstd.json')) as ImageManifest)).not.toThrow();
  });
  it('refuses layers over the size cap before any download', () => {
    const manifest = parseManifest(fixture('oci-manifest-zstd.json')) as ImageManifest;
    expect(() => checkImageManifest(manifest, 5000)).toThrow(expect.objectContaining({ code: 'SHIFTER_SIZE_LIMIT' }));
  });
});

describe('selectPlatform', () => {
  const index = parseManifest(fixture('oci-index-attestations.json')) as ImageIndex;
  const list = parseManifest(fixture('docker-manifest-list.json')) as ImageIndex;
  it('defaults to linux/amd64', () => {
    expect(DEFAULT_PLATFORM).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(selectPlatform(index).platform).toMatchObject({ os: 'linux', architecture: 'amd64' });
    expect(selectPlatform(list).digest).toBe(list.manifests[0]!.digest);
  });
  it('matches arm64 with and without an explicit v8 variant', () => {
    expect(selectPlatform(index, { os: 'linux', architecture: 'arm64' }).digest).toBe(index.manifests[1]!.digest);
    expect(selectPlatform(index, { os: 'linux', architecture: 'arm64', variant: 'v8' }).digest).toBe(
      index.manifests[1]!.digest,
    );
    expect(selectPlatform(list, { os: 'linux', architecture: 'arm64', variant: 'v8' }).digest).toBe(
      list.manifests[3]!.digest,
    );
  });
  it('prefers the default arm variant and honours an explicit one', () => {
    expect(selectPlatform(list, { os: 'linux', architecture: 'arm' }).platform?.variant).toBe('v7');
    expect(selectPlatform(list, { os: 'linux', architecture: 'arm', variant: 'v6' }).platform?.variant).toBe('v6');
  });
  it('skips attestation entries and lists what exists', () => {
    expect(() => selectPlatform(index, { os: 'unknown', architecture: 'unknown' })).toThrow(
      expect.objectContaining({
        code: 'SHIFTER_PLATFORM_NOT_FOUND',
        details: { requested: 'unknown/unknown', available: ['linux/amd64', 'linux/arm64/v8'] },
      }),
    );
    expect(() => selectPlatform(list, parsePlatform('linux/s390x'))).toThrow(
      /offers: linux\/amd64, linux\/arm\/v6, linux\/arm\/v7, linux\/arm64, linux\/ppc64le, windows\/amd64/,
    );
  });
  it('parses and formats platform strings', () => {
    expect(parsePlatform('linux/arm64/v8')).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(formatPlatform(parsePlatform('linux/amd64'))).toBe('linux/amd64');
    expect(() => parsePlatform('linux')).toThrow(expect.objectContaining({ code: 'SHIFTER_USAGE_INVALID_ARGUMENT' }));
  });
});

describe('parseImageConfig', () => {
  it('reads the umoci config and checks diff_ids against the layer count', () => {
    const bytes = fixture('image-config-umoci.json');
    const manifest = parseManifest(fixture('oci-manifest-umoci.json')) as ImageManifest;
    expect(computeDigest(bytes)).toBe(manifest.config.digest);
    const config = parseImageConfig(bytes, 2);
    expect(config.config?.Cmd).toEqual(['/bin/sh']);
    expect(config.config?.Env).toEqual(['A=1']);
    expect(() => parseImageConfig(bytes, 3)).toThrow(expect.objectContaining({ code: 'SHIFTER_MANIFEST_INVALID' }));
  });
  it('refuses malformed configs', () => {
    expect(() => parseImageConfig(Buffer.from('{"config":{"Env":"A=1"}}'))).toThrow(
      expect.objectContaining({ code: 'SHIFTER_MANIFEST_INVALID', message: expect.stringMatching(/config\.Env/) }),
    );
    expect(() => parseImageConfig(Buffer.from('nope'))).toThrow(/not valid JSON/);
  });
  it('accepts null Cmd/Env/Labels as Docker writes them', () => {
    expect(parseImageConfig(Buffer.from('{"config":{"Cmd":null,"Env":null,"Labels":null}}')).config?.Cmd).toBeNull();
  });
});

describe('media types', () => {
  it('accepts OCI and Docker manifests and indexes', () => {
    expect(ACCEPTED_MANIFEST_TYPES).toEqual(
      expect.arrayContaining([
        MediaType.OCI_MANIFEST,
        MediaType.OCI_INDEX,
        MediaType.DOCKER_MANIFEST,
        MediaType.DOCKER_MANIFEST_LIST,
      ]),
    );
    expect(mediaTypeOfContentType(' Application/JSON ; charset=utf-8')).toBe('application/json');
    expect(mediaTypeOfContentType(undefined)).toBeUndefined();
  });
});
