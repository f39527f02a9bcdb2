// The slice of popt that ipvsadm relies on, so that xvsadm reads a command
// line exactly as ipvsadm does: long options only by their full name
// (`--name` or `--name=value`), clustered short options (`-Ln`, `-w5`),
// required arguments taken from the next word whatever it starts with,
// optional ones (`-p`) only when the next word does not start with '-',
// words that are no option kept as leftovers in order, `--` ending options.
// Errors carry popt's words and the word that caused them
// (poptBadOption(POPT_BADOPTION_NOALIAS)).

export type ArgKind = 'none' | 'required' | 'optional';

export interface PoptOption {
  long: string;
  short?: string;
  arg: ArgKind;
  /** What the caller switches on (ipvsadm's `val`). */
  tag: string;
}

export type PoptEvent =
  | { kind: 'option'; tag: string; arg: string | undefined; word: string }
  | { kind: 'error'; word: string; message: string };

export const POPT_ERRORS = {
  noarg: 'missing argument',
  badopt: 'unknown option',
  unwantedarg: 'option does not take an argument',
} as const;

export interface PoptResult {
  /** Options in command-line order, ending at the first error if there is one. */
  events: PoptEvent[];
  /** Words that are no option, in order (poptGetArg). */
  leftovers: string[];
}

export function popt(argv: readonly string[], table: readonly PoptOption[]): PoptResult {
  const events: PoptEvent[] = [];
  const leftovers: string[] = [];
  const byLong = new Map(table.map((o) => [o.long, o] as const));
  const byShort = new Map<string, PoptOption>();
  // The first entry wins for a repeated short name, as in popt's table walk.
  for (const o of table) if (o.short !== undefined && !byShort.has(o.short)) byShort.set(o.short, o);
  const fail = (word: string, message: string): PoptResult => {
    events.push({ kind: 'error', word, message });
    return { events, leftovers };
  };

  let i = 0;
  while (i < argv.length) {
    const word = argv[i++]!;
    if (word === '--') {
      leftovers.push(...argv.slice(i));
      break;
    }
    if (!word.startsWith('-') || word === '-') {
      leftovers.push(word);
      continue;
    }
    if (word.startsWith('--')) {
      const eq = word.indexOf('=');
      const name = word.slice(2, eq < 0 ? undefined : eq);
      const opt = byLong.get(name);
      if (!opt) return fail(word, POPT_ERRORS.badopt);
      let arg: string | undefined = eq < 0 ? undefined : word.slice(eq + 1);
      if (opt.arg === 'none') {
        if (arg !== undefined) return fail(word, POPT_ERRORS.unwantedarg);
      } else if (arg === undefined) {
        const next = argv[i];
        if (next === undefined) {
          if (opt.arg === 'required') return fail(word, POPT_ERRORS.noarg);
        } else if (opt.arg === 'required' || !next.startsWith('-')) {
          arg = next;
          i++;
        }
      }
      events.push({ kind: 'option', tag: opt.tag, arg, word });
      continue;
    }
    // A cluster of short options: each letter an option until one takes an
    // argument, which is the rest of the word or else the next word.
    for (let c = 1; c < word.length; c++) {
      const opt = byShort.get(word[c]!);
      if (!opt) return fail(word, POPT_ERRORS.badopt);
      if (opt.arg === 'none') {
        events.push({ kind: 'option', tag: opt.tag, arg: undefined, word });
        continue;
      }
      let arg: string | undefined = word.slice(c + 1);
      if (arg.startsWith('=')) arg = arg.slice(1);
      if (arg === '') {
        arg = undefined;
        const next = argv[i];
        if (next === undefined) {
          if (opt.arg === 'required') return fail(word, POPT_ERRORS.noarg);
        } else if (opt.arg === 'required' || !next.startsWith('-')) {
          arg = next;
          i++;
        }
      }
      events.push({ kind: 'option', tag: opt.tag, arg, word });
      break;
    }
  }
  return { events, leftovers };
}
