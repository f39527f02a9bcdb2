import { InvalidArgumentError, CommanderError } from 'commander';
import { XvsError } from '../errors.js';

export function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${v} is not a positive integer`);
  return n;
}

export function nonNegativeInt(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${v} is not a non-negative integer`);
  return n;
}

/** One line on stderr naming the problem, a non-zero exit code. */
export function fail(prog: string, e: unknown): never {
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
  if (e instanceof XvsError) {
    process.stderr.write(`${prog}: ${e.oneLine()}\n`);
    if (e.detail) process.stderr.write(`${e.detail.trimEnd()}\n`);
    process.exit(e.exitCode);
  }
  process.stderr.write(`${prog}: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
}
