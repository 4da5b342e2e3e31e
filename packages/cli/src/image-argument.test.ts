import { describe, expect, it } from 'vitest';
import { parseImageArgument } from './image-argument.js';

describe('parseImageArgument', () => {
  it.each([
    ['docker:ubuntu:22.04', { type: 'docker', tag: 'ubuntu:22.04' }],
    ['ubuntu:22.04', { type: 'docker', tag: 'ubuntu:22.04' }],
    ['ubuntu', { type: 'docker', tag: 'ubuntu' }],
    ['127.0.0.1:5000/test/busybox:latest', { type: 'docker', tag: '127.0.0.1:5000/test/busybox:latest' }],
    ['custom:mine:1', { type: 'custom', tag: 'mine:1' }],
    ['id:abc', { type: 'id', tag: 'abc' }],
  ])('reads %s', (text, expected) => {
    expect(parseImageArgument(text, 'docker')).toEqual(expected);
  });

  it.each(['', 'docker:', 'a b', 'x\ty'])('refuses %j', (text) => {
    expect(() => parseImageArgument(text, 'docker')).toThrow(expect.objectContaining({ code: 'SHIFTER_REF_INVALID' }));
  });
});
