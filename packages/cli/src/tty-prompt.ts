import { openSync } from 'node:fs';
import { ReadStream, WriteStream } from 'node:tty';
import { ShifterError } from '@shifter/core';

/** Reads answers from the controlling terminal, so piped stdin/stdout never carry a password. */
export interface Prompter {
  /** Ask and return the answer; `echo: false` hides what is typed. */
  ask(question: string, options: { echo: boolean }): Promise<string>;
  /** Release the terminal. */
  close(): void;
}

/**
 * Open `/dev/tty` for prompting.
 * @throws ShifterError `SHIFTER_USAGE_INVALID_ARGUMENT` when the process has no controlling terminal
 */
export function openTerminal(): Prompter {
  let input: ReadStream;
  let output: WriteStream;
  try {
    input = new ReadStream(openSync('/dev/tty', 'r'));
    output = new WriteStream(openSync('/dev/tty', 'w'));
  } catch (error) {
    throw new ShifterError(
      'SHIFTER_USAGE_INVALID_ARGUMENT',
      'no terminal to prompt on: pass --username and --password-stdin',
      { cause: error },
    );
  }
  return {
    ask: (question, { echo }) => readAnswer(input, output, question, echo),
    close: () => {
      input.destroy();
      output.destroy();
    },
  };
}

function readAnswer(input: ReadStream, output: WriteStream, question: string, echo: boolean): Promise<string> {
  output.write(question);
  // Raw mode turns terminal echo off; characters are collected here and nothing is written back.
  input.setRawMode(true);
  input.setEncoding('utf8');
  input.resume();
  return new Promise((resolve, reject) => {
    let answer = '';
    const finish = (error?: Error): void => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      output.write('\n');
      if (error) reject(error);
      else resolve(answer);
    };
    const onData = (chunk: string): void => {
      for (const character of chunk) {
        if (character === '\r' || character === '\n' || character === '\u0004') return finish();
        if (character === '\u0003') {
          return finish(new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', 'login cancelled'));
        }
        if (character === '\u007f' || character === '\b') {
          if (answer.length > 0) {
            answer = answer.slice(0, -1);
            if (echo) output.write('\b \b');
          }
          continue;
        }
        if (character < ' ') continue;
        answer += character;
        if (echo) output.write(character);
      }
    };
    input.on('data', onData);
  });
}

/**
 * Read a password from standard input (for scripts): the first line, without its line end.
 * @param stream - the input (default `process.stdin`)
 * @throws ShifterError `SHIFTER_USAGE_INVALID_ARGUMENT` when the input is empty
 */
export async function readPasswordFromStream(stream: NodeJS.ReadableStream = process.stdin): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += typeof chunk === 'string' ? chunk : (chunk as Buffer).toString('utf8');
  const password = text.split(/\r?\n/, 1)[0] ?? '';
  if (password === '')
    throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', '--password-stdin: standard input held no password');
  return password;
}
