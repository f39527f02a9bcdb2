// The dataplane's tables in sets (bpf/dataplane/sets.h), xvs_new_flows and
// xvs_new_replies, as tables by tuple: sets of SET.ways ways, a set chosen
// by the tuple's hash, its head (tags, times taken) in a map of its own
// (xvs_new_flow_heads, xvs_new_reply_heads), read here as the first bytes
// of one buffer with its ways. The control plane finds, lists, writes and deletes
// entries as the dataplane does, with the same hash and the same fold in
// each way's check (test/packet-new-flows.test.ts holds the two sides
// together), and leaves out a way whose check fails: it is being written,
// or two CPUs wrote it at once.
import { fmix32 } from '../schedulers/hash.js';
import { SET } from './abi.js';
import type { Codec } from './codec.js';
import { LE } from './codec.js';
import * as C from './codecs.js';
import type { RawMap } from './map.js';

const KEY = C.connKey.size;
const TAGS = 0;
const BORN = 4 * SET.ways;
/** Where the ways start in the buffer of a set's head and ways (the head's size). */
const WAYS = 8 * SET.ways;
const M64 = (1n << 64n) - 1n;
const FOLD_K = 0x9e3779b97f4a7c15n;

const u32 = (b: Buffer, o: number): number => (LE ? b.readUInt32LE(o) : b.readUInt32BE(o));
const u16 = (b: Buffer, o: number): number => (LE ? b.readUInt16LE(o) : b.readUInt16BE(o));
const u64 = (b: Buffer, o: number): bigint => (LE ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o));

/** xvs_tuple_hash of an encoded xvs_conn_key, words read as the dataplane reads them. */
export function tupleHash(key: Buffer): number {
  let h = fmix32(u32(key, 0) ^ u32(key, 4) ^ u32(key, 8) ^ u32(key, 12));
  h = fmix32(h ^ ((u16(key, 32) << 16) | u16(key, 34)));
  return fmix32(h ^ u32(key, 16) ^ u32(key, 20) ^ u32(key, 24) ^ u32(key, 28) ^ key[36]!);
}

/** xvs_way_fold of the way at `at` whose key and value are `bytes` long. */
export function wayFold(b: Buffer, at: number, bytes: number): bigint {
  let f = 0n;
  for (let i = 0; i < bytes / 8; i++) f = ((f ^ u64(b, at + 8 * i)) * FOLD_K) & M64;
  return f | 1n;
}

/** The set a tuple's hash picks under `mask`, as xvs_head_of does: its high bits, so a set's tags differ in their low ones. */
export const setIndex = (h: number, mask: number): number => (((h >>> 13) | (h << 19)) >>> 0) & mask;

export interface SetBatch { keys: Buffer; values: Buffer; count: number }

/** A table in sets whose ways hold an xvs_conn_key, a value of `value`'s codec and a check; `raw` holds the ways, `heads` the heads. */
export class SetTable<V> {
  /** Entries it can hold. */
  readonly maxEntries: number;
  readonly keySize = KEY;
  /** Bytes of one value in lookupBatch and batches. */
  readonly valueBufSize: number;
  readonly #mask: number;
  readonly #way: number;
  readonly #check: number;

  constructor(readonly raw: RawMap, readonly heads: RawMap, readonly value: Codec<V>) {
    if (heads.maxEntries !== raw.maxEntries || heads.valueSize !== WAYS) {
      throw new Error(`${heads.name}: ${heads.maxEntries} heads of ${heads.valueSize} bytes for ${raw.maxEntries} sets of ${raw.name}`);
    }
    this.maxEntries = raw.maxEntries * SET.ways;
    this.#mask = raw.maxEntries - 1;
    this.valueBufSize = value.size;
    this.#check = KEY + value.size;
    this.#way = this.#check + 8;
  }

  /** A way's offset in its set. */
  #wayAt(i: number): number {
    return WAYS + this.#way * i;
  }

  get name(): string {
    return this.raw.name;
  }

  /** The mask the dataplane picks a set with (xvs_flow_ctl's new_flow_mask or new_reply_mask). */
  get mask(): number {
    return this.#mask;
  }

  #set(key: Buffer): { idx: number; set: Buffer; tag: number } {
    const h = tupleHash(key);
    const idx = setIndex(h, this.#mask);
    const k = C.u32Codec.encode(idx);
    const head = this.heads.lookup(k) ?? Buffer.alloc(WAYS);
    return { idx, set: Buffer.concat([head, this.raw.lookup(k) ?? Buffer.alloc(this.raw.valueSize)]), tag: (h | 1) >>> 0 };
  }

  /**
   * Whether way i holds an entry (of `tag`): its tag is its key's, and, with
   * `sealed`, its check holds too. A walk of the whole table (listing,
   * census, counts) leaves the check out: a way caught while it is written
   * costs one entry in one count, and the fold's 64-bit products cost a
   * BigInt each (a walk of a full xvs_new_flows: 30 ms without, 70-110
   * with).
   */
  #valid(set: Buffer, i: number, tag?: number, sealed = true): boolean {
    const t = u32(set, TAGS + 4 * i);
    if (t === 0 || (tag !== undefined && t !== tag)) return false;
    const at = this.#wayAt(i);
    if ((tupleHash(set.subarray(at, at + KEY)) | 1) >>> 0 !== t) return false;
    return !sealed || u64(set, at + this.#check) === wayFold(set, at, this.#check);
  }

  #find(set: Buffer, tag: number, key: Buffer): number {
    for (let i = 0; i < SET.ways; i++) {
      if (this.#valid(set, i, tag) && set.compare(key, 0, KEY, this.#wayAt(i), this.#wayAt(i) + KEY) === 0) return i;
    }
    return -1;
  }

  get(k: C.ConnKey): V | null {
    const key = C.connKey.encode(k);
    const { set, tag } = this.#set(key);
    const i = this.#find(set, tag, key);
    return i < 0 ? null : this.value.decode(set, this.#wayAt(i) + KEY);
  }

  /** Takes a way as the dataplane would (its own, a free one, else the oldest), born at `born` (jiffies). */
  set(k: C.ConnKey, v: V, born: number): void {
    const key = C.connKey.encode(k);
    const { idx, set, tag } = this.#set(key);
    let way = this.#find(set, tag, key);
    if (way < 0) {
      // As xvs_set_scan: the first free way, else the oldest (the last of equals).
      const now = born >>> 0;
      let oldest = 0;
      way = 0;
      for (let i = 0; i < SET.ways; i++) {
        const t = u32(set, TAGS + 4 * i);
        if (t === 0) {
          way = i;
          break;
        }
        if (t === SET.claimed) continue;
        const age = (now - u32(set, BORN + 4 * i)) >>> 0;
        if (age >= oldest) {
          oldest = age;
          way = i;
        }
      }
    }
    const at = this.#wayAt(way);
    key.copy(set, at);
    this.value.encodeInto(v, set, at + KEY);
    const f = wayFold(set, at, this.#check);
    LE ? set.writeBigUInt64LE(f, at + this.#check) : set.writeBigUInt64BE(f, at + this.#check);
    LE ? set.writeUInt32LE(tag, TAGS + 4 * way) : set.writeUInt32BE(tag, TAGS + 4 * way);
    LE ? set.writeUInt32LE(born >>> 0, BORN + 4 * way) : set.writeUInt32BE(born >>> 0, BORN + 4 * way);
    this.#write(idx, set);
  }

  delete(k: C.ConnKey): boolean {
    const key = C.connKey.encode(k);
    const { idx, set, tag } = this.#set(key);
    const i = this.#find(set, tag, key);
    if (i < 0) return false;
    set.fill(0, TAGS + 4 * i, TAGS + 4 * i + 4);
    this.heads.update(C.u32Codec.encode(idx), set.subarray(0, WAYS));
    return true;
  }

  /** Frees every way. */
  clear(): void {
    const empty = Buffer.alloc(WAYS + this.raw.valueSize);
    for (let i = 0; i < this.raw.maxEntries; i++) this.#write(i, empty);
  }

  /** The ways, then the head: a tag only ever names a way already written, as the dataplane writes them. */
  #write(idx: number, set: Buffer): void {
    const k = C.u32Codec.encode(idx);
    this.raw.update(k, set.subarray(WAYS));
    this.heads.update(k, set.subarray(0, WAYS));
  }

  /**
   * Moves in the entries of `old`, this table as builds before the heads'
   * own map pinned it (each set's head first in its value: the layout this
   * class reads a set in), each taken when it was. Returns how many.
   */
  adoptHeadInSets(old: RawMap): number {
    if (old.valueSize !== WAYS + this.raw.valueSize) {
      throw new Error(`${old.name}: sets of ${old.valueSize} bytes, not ${WAYS} of head and ${this.raw.valueSize} of ways`);
    }
    let n = 0;
    for (const b of old.batches(256, false)) {
      for (let s = 0; s < b.count; s++) {
        const set = b.values.subarray(s * old.valueBufSize, s * old.valueBufSize + old.valueSize);
        for (let i = 0; i < SET.ways; i++) {
          if (!this.#valid(set, i)) continue;
          const at = this.#wayAt(i);
          this.set(C.connKey.decode(set, at), this.value.decode(set, at + KEY), u32(set, BORN + 4 * i));
          n++;
        }
      }
    }
    return n;
  }

  /** Every entry, `chunk` sets per syscall: keys and values laid end to end, as RawMap.batches. */
  *batches(chunk = 256): Generator<SetBatch> {
    const V = this.valueBufSize;
    // Every head first (64 bytes a set), then each set's ways, read beside its head.
    const heads = Buffer.alloc(this.heads.maxEntries * WAYS);
    for (const b of this.heads.batches(chunk)) {
      for (let s = 0; s < b.count; s++) b.values.copy(heads, u32(b.keys, 4 * s) * WAYS, s * WAYS, (s + 1) * WAYS);
    }
    const set = Buffer.alloc(WAYS + this.raw.valueSize);
    for (const b of this.raw.batches(chunk)) {
      const keys = Buffer.alloc(b.count * SET.ways * KEY);
      const values = Buffer.alloc(b.count * SET.ways * V);
      let n = 0;
      for (let s = 0; s < b.count; s++) {
        const idx = u32(b.keys, 4 * s);
        heads.copy(set, 0, idx * WAYS, (idx + 1) * WAYS);
        b.values.copy(set, WAYS, s * this.raw.valueBufSize, s * this.raw.valueBufSize + this.raw.valueSize);
        for (let i = 0; i < SET.ways; i++) {
          if (!this.#valid(set, i, undefined, false)) continue;
          set.copy(keys, n * KEY, this.#wayAt(i), this.#wayAt(i) + KEY);
          set.copy(values, n * V, this.#wayAt(i) + KEY, this.#wayAt(i) + KEY + V);
          n++;
        }
      }
      if (n > 0) yield { keys, values, count: n };
    }
  }

  /** Every entry: keys and values, as RawMap.lookupBatch. */
  lookupBatch(chunk = 256): { keys: Buffer[]; values: Buffer[] } {
    const keys: Buffer[] = [];
    const values: Buffer[] = [];
    for (const b of this.batches(chunk)) {
      for (let i = 0; i < b.count; i++) {
        keys.push(b.keys.subarray(i * KEY, (i + 1) * KEY));
        values.push(b.values.subarray(i * this.valueBufSize, (i + 1) * this.valueBufSize));
      }
    }
    return { keys, values };
  }

  *entries(): Generator<[C.ConnKey, V]> {
    for (const b of this.batches()) {
      for (let i = 0; i < b.count; i++) yield [C.connKey.decode(b.keys, i * KEY), this.value.decode(b.values, i * this.valueBufSize)];
    }
  }
}
