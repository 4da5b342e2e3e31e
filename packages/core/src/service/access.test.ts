import { describe, expect, it } from 'vitest';
import { fillImageRecord, type ImageRecord } from '../metadata/index.js';
import {
  canSeeRecord,
  maskRequest,
  mergeAccess,
  PUBLIC_ACCESS,
  pullRequester,
  sameAccess,
  viewFor,
  visibleTags,
} from './access.js';

const alice = { uid: 1000, groups: [1000] };
const bob = { uid: 1001, groups: [1001, 3000] };
const carol = { uid: 1002, groups: [1002] };

const image = (extra: Partial<ImageRecord> = {}): ImageRecord =>
  ({
    ...fillImageRecord(
      { system: 's', itype: 'docker', status: 'READY', imageId: 'a'.repeat(64) },
      { recordId: 'r', createdAt: 0 },
    ),
    ...extra,
  }) as ImageRecord;

describe('access per tag', () => {
  it('merges access lists: public absorbs, private lists unite', () => {
    expect(mergeAccess(PUBLIC_ACCESS, { private: true, userAcl: [1], groupAcl: [] })).toEqual(PUBLIC_ACCESS);
    expect(
      mergeAccess({ private: true, userAcl: [2, 1], groupAcl: [5] }, { private: true, userAcl: [3], groupAcl: [] }),
    ).toEqual({ private: true, userAcl: [1, 2, 3], groupAcl: [5] });
    // Private with no ACL at all is public, as upstream.
    expect(
      mergeAccess({ private: true, userAcl: [], groupAcl: [] }, { private: true, userAcl: [1], groupAcl: [] }),
    ).toEqual(PUBLIC_ACCESS);
    expect(
      sameAccess({ private: true, userAcl: [2, 1], groupAcl: [] }, { private: true, userAcl: [1, 2], groupAcl: [] }),
    ).toBe(true);
  });

  it("shows each caller only the tags they may see, with those tags' access", () => {
    const record = image({
      tags: ['pub:1', 'alice:1', 'team:1'],
      tagAccess: [
        { tag: 'pub:1', private: false, userAcl: [], groupAcl: [] },
        { tag: 'alice:1', private: true, userAcl: [1000], groupAcl: [] },
        { tag: 'team:1', private: true, userAcl: [1001], groupAcl: [3000] },
      ],
      private: false,
    });
    expect(visibleTags(record, alice)).toEqual(['pub:1', 'alice:1']);
    expect(viewFor(record, carol)).toMatchObject({ tags: ['pub:1'], private: false, userAcl: [], groupAcl: [] });
    expect(viewFor(record, bob)).toMatchObject({ tags: ['pub:1', 'team:1'], private: false });
    const privateOnly = image({
      ...record,
      tags: ['alice:1', 'team:1'],
      tagAccess: record.tagAccess.slice(1),
      private: true,
      userAcl: [1000, 1001],
      groupAcl: [3000],
    });
    // Bob sees his tag's ACL, not who else holds the same content.
    expect(viewFor(privateOnly, bob)).toMatchObject({ tags: ['team:1'], userAcl: [1001], groupAcl: [3000] });
    expect(JSON.stringify(viewFor(privateOnly, bob))).not.toContain('alice:1');
    expect(viewFor(privateOnly, carol)).toBeNull();
    expect(canSeeRecord(privateOnly, carol)).toBe(false);
  });

  it('answers one frozen view per visible-tag set of a frozen record (the gateway caches its body)', () => {
    const record = Object.freeze(
      image({
        tags: ['pub:1', 'alice:1'],
        tagAccess: [
          { tag: 'pub:1', private: false, userAcl: [], groupAcl: [] },
          { tag: 'alice:1', private: true, userAcl: [1000], groupAcl: [] },
        ],
        private: false,
      }),
    );
    const first = viewFor(record, carol);
    expect(Object.isFrozen(first)).toBe(true);
    expect(viewFor(record, bob)).toBe(first);
    expect(viewFor(record, alice)).toBe(record);
  });

  it('masks a request for a caller who is not its party, and shows public ones in the queue', () => {
    const request = image({
      status: 'PULLING',
      pulltag: 'x:1',
      userAcl: [1000, 1005],
      requester: pullRequester({ username: 'u', password: 'p' }),
      imageId: 'b'.repeat(64),
      progress: { step: 'Pulling layer', layer: 'sha256:c' },
      statusMessage: 'Pulling layer',
    });
    expect(viewFor(request, alice)).toBe(request);
    const masked = viewFor(request, bob)!;
    expect(masked).toMatchObject({
      status: 'PULLING',
      pulltag: 'x:1',
      userAcl: [],
      imageId: null,
      progress: null,
      statusMessage: 'PULLING',
      requester: null,
    });
    expect(canSeeRecord(request, bob)).toBe(false);
    expect(canSeeRecord({ ...request, private: false }, bob)).toBe(true);
    expect(canSeeRecord({ ...request, requester: 'anonymous' }, bob)).toBe(true);
    expect(
      maskRequest({
        ...request,
        status: 'FAILURE',
        error: { code: 'SHIFTER_REGISTRY_BLOB_UNKNOWN', message: 'blob sha256:c unknown' },
      }).error,
    ).toEqual({
      code: 'SHIFTER_REGISTRY_BLOB_UNKNOWN',
      message: 'details go to the requester only',
    });
  });

  it('keys logins by user name and password, never by either alone', () => {
    expect(pullRequester(undefined)).toBe('anonymous');
    const a = pullRequester({ username: 'u', password: 'p' });
    expect(a).toMatch(/^login:[0-9a-f]{32}$/);
    expect(pullRequester({ username: 'u', password: 'q' })).not.toBe(a);
    expect(pullRequester({ username: 'v', password: 'p' })).not.toBe(a);
    expect(pullRequester({ username: 'u', password: 'p' })).toBe(a);
    expect(pullRequester({ username: 'alice', password: 'hunter2' })).not.toMatch(/alice|hunter2/);
  });
});
