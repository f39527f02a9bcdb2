import { XvsError } from '../errors.js';
import type { Codec, FieldDef } from './codec.js';

/**
 * `struct S NAME[n]` as an array of n values of S's codec, which the ABI
 * test checks against BTF on its own (it is a member type there).
 */
export function structs<N extends string, V>(name: N, codec: Codec<V>, n: number, align = 4): FieldDef<N, V[]> {
  return {
    name,
    size: codec.size * n,
    align,
    write(b, off, v) {
      if (v.length !== n) throw new XvsError('BAD_ARGUMENT', `${name}: ${v.length} values where ${n} belong`);
      v.forEach((x, i) => codec.encodeInto(x, b, off + codec.size * i));
    },
    read: (b, off) => Array.from({ length: n }, (_, i) => codec.decode(b, off + codec.size * i)),
  };
}

/** `struct S NAME` as a member of another struct: S's value. */
export function nested<N extends string, V>(name: N, codec: Codec<V>, align = 4): FieldDef<N, V> {
  return {
    name,
    size: codec.size,
    align,
    write: (b, off, v) => codec.encodeInto(v, b, off),
    read: (b, off) => codec.decode(b, off),
  };
}
