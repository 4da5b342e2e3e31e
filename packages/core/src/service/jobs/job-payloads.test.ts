import { describe, expect, it } from 'vitest';
import { ShifterError } from '../../errors/index.js';
import { parseJobPayload, payloadRecordId } from './job-payloads.js';

describe('parseJobPayload', () => {
  it('accepts the payload of each kind and drops unknown members', () => {
    expect(parseJobPayload('pull', { recordId: 'r1', tag: 'busybox:latest', extra: 1 })).toEqual({
      recordId: 'r1',
      tag: 'busybox:latest',
    });
    expect(
      parseJobPayload('pull', { recordId: 'r1', tag: 'x:1', secrets: { login: { username: 'u', password: 'p' } } })
        .secrets?.login,
    ).toEqual({ username: 'u', password: 'p' });
    const caller = { uid: 1000, gid: 1000, groups: [1000, 3000], user: 'alice' };
    expect(parseJobPayload('import', { recordId: 'r2', tag: 'mine:1', filepath: '/x.sqsh', caller })).toEqual({
      recordId: 'r2',
      tag: 'mine:1',
      filepath: '/x.sqsh',
      caller,
    });
    expect(parseJobPayload('expire', { recordId: 'r3' })).toEqual({ recordId: 'r3' });
  });

  it.each([
    ['pull', null],
    ['pull', { recordId: 'r1' }],
    ['pull', { recordId: '', tag: 'x:1' }],
    [
      'import',
      { recordId: 'r1', tag: 'x:1', filepath: 'relative/path', caller: { uid: 1, gid: 1, groups: [], user: 'a' } },
    ],
    ['import', { recordId: 'r1', tag: 'x:1', filepath: '/x', caller: { uid: -1, gid: 1, groups: [], user: 'a' } }],
    ['import', { recordId: 'r1', tag: 'x:1', filepath: '/x' }],
    ['expire', { recordId: 7 }],
  ] as const)('refuses a bad %s payload (%j) with SHIFTER_JOB_PAYLOAD_INVALID, not retryable', (kind, payload) => {
    let caught: unknown;
    try {
      parseJobPayload(kind, payload);
    } catch (error) {
      caught = error;
    }
    expect(ShifterError.isInstance(caught)).toBe(true);
    expect(caught).toMatchObject({ code: 'SHIFTER_JOB_PAYLOAD_INVALID', retryable: false, details: { kind } });
  });

  it('names the offending paths but never the values (a pull payload may carry a password)', () => {
    const payload = { recordId: 'r1', tag: 'x:1', secrets: { login: { username: 'u', password: 12345678 } } };
    expect(() => parseJobPayload('pull', payload)).toThrow(/secrets\.login\.password/);
    try {
      parseJobPayload('pull', payload);
    } catch (error) {
      expect(
        JSON.stringify({ message: (error as Error).message, details: (error as ShifterError).details }),
      ).not.toContain('12345678');
    }
  });

  it('refuses an unknown kind', () => {
    expect(() => parseJobPayload('bake' as never, {})).toThrow(
      expect.objectContaining({ code: 'SHIFTER_JOB_PAYLOAD_INVALID' }),
    );
  });
});

describe('payloadRecordId', () => {
  it('finds the record id of any payload that names one', () => {
    expect(payloadRecordId({ recordId: 'r9', junk: true })).toBe('r9');
    expect(payloadRecordId({ tag: 'x' })).toBeUndefined();
    expect(payloadRecordId('r9')).toBeUndefined();
  });
});
