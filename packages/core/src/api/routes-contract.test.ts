import { describe, expect, it } from 'vitest';
import {
  ErrorResponseSchema,
  ImportRequestBodySchema,
  PullRequestBodySchema,
  imageRoutePath,
} from './routes-contract.js';

describe('PullRequestBodySchema', () => {
  it('reads upstream comma strings and integer arrays as id lists', () => {
    expect(PullRequestBodySchema.parse({ allowed_uids: '1000,1001', allowed_gids: ' 1002 , 1003,' })).toEqual({
      allowed_uids: [1000, 1001],
      allowed_gids: [1002, 1003],
    });
    expect(PullRequestBodySchema.parse({ allowed_uids: [5, 6] }).allowed_uids).toEqual([5, 6]);
    expect(PullRequestBodySchema.parse({ allowed_uids: '' }).allowed_uids).toEqual([]);
  });

  it('refuses names, negative and oversized ids', () => {
    expect(PullRequestBodySchema.safeParse({ allowed_uids: 'root' }).success).toBe(false);
    expect(PullRequestBodySchema.safeParse({ allowed_uids: [-1] }).success).toBe(false);
    expect(PullRequestBodySchema.safeParse({ allowed_uids: '99999999999' }).success).toBe(false);
  });
});

describe('ImportRequestBodySchema', () => {
  it('needs an absolute filepath and only takes squashfs', () => {
    expect(ImportRequestBodySchema.parse({ filepath: '/a/b.squashfs' }).format).toBe('squashfs');
    expect(ImportRequestBodySchema.safeParse({ filepath: 'rel.sqfs' }).success).toBe(false);
    expect(ImportRequestBodySchema.safeParse({ filepath: '/x', format: 'ext4' }).success).toBe(false);
  });
});

describe('imageRoutePath', () => {
  it('escapes tags the way upstream clients do', () => {
    expect(imageRoutePath('lookup', 'sys', 'docker', 'reg:5000/a/b:1')).toBe(
      '/api/lookup/sys/docker/reg%3A5000%2Fa%2Fb%3A1/',
    );
  });
});

describe('ErrorResponseSchema', () => {
  it('accepts catalogue codes only', () => {
    const body = { status: 404, error: 'SHIFTER_IMAGE_NOT_FOUND', code: 'SHIFTER_IMAGE_NOT_FOUND', message: 'x' };
    expect(ErrorResponseSchema.parse(body)).toEqual(body);
    expect(ErrorResponseSchema.safeParse({ ...body, code: 'NOPE' }).success).toBe(false);
  });
});
