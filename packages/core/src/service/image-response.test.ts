import { describe, expect, it } from 'vitest';
import { upstreamJson } from './image-response.js';

describe('upstreamJson', () => {
  it('writes a whole-second last_pull and metrics time with a fractional part, as upstream (Python floats) does', () => {
    expect(upstreamJson({ id: 'x', last_pull: 1_700_000_000, status_message: 'ok' })).toBe(
      '{"id":"x","last_pull":1700000000.0,"status_message":"ok"}',
    );
    expect(upstreamJson({ list: [{ last_pull: 5 }, { last_pull: 6.25 }] })).toBe(
      '{"list":[{"last_pull":5.0},{"last_pull":6.25}]}',
    );
    expect(upstreamJson([{ user: 'a', time: 1_700_000_001 }])).toBe('[{"user":"a","time":1700000001.0}]');
    expect(upstreamJson({ last_pull: -3 })).toBe('{"last_pull":-3.0}');
  });

  it('leaves strings that merely contain the key, labels named last_pull and other numbers alone', () => {
    const value = {
      ENV: ['"last_pull":1,'],
      LABELS: { last_pull: '7' },
      userACL: [1000],
      status: 404,
      note: 'x\\"last_pull":2}',
    };
    const text = upstreamJson(value);
    expect(text).toBe(JSON.stringify(value));
    expect(JSON.parse(text)).toEqual(value);
  });
});
