// Map access over raw fds: RawMap moves bytes, TypedMap and PerCpuMap put
// codecs on top. Per-CPU values travel as one slot per possible CPU, each
// rounded up to 8 bytes, which is what the kernel copies in and out.
import { XvsError } from '../errors.js';
import * as lb from '../loader/libbpf.js';
import { sumValues, type Codec } from './codec.js';

export { sumValues };

export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;
export const BPF_F_RDONLY_PROG = 1 << 7;

export const MapType = { HASH: 1, ARRAY: 2, PERCPU_HASH: 5, PERCPU_ARRAY: 6, LRU_HASH: 9, LRU_PERCPU_HASH: 10 } as const;
const PERCPU_TYPES: ReadonlySet<number> = new Set([MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH, 21 /* percpu cgroup storage */]);

const ENOENT = 2;
const ENOSPC = 28;

export interface MapDesc {
  name: string;
  fd: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

export class RawMap implements MapDesc {
  readonly name: string;
  readonly fd: number;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly perCpu: boolean;
  /** Bytes of one lookup result: valueSize, or a rounded slot per possible CPU. */
  readonly valueBufSize: number;
  #ownsFd: boolean;

  /** `ownsFd`: close() closes the fd (maps not owned by a BpfObject). */
  constructor(d: MapDesc, ownsFd = false) {
    this.name = d.name;
    this.fd = d.fd;
    this.type = d.type;
    this.keySize = d.keySize;
    this.valueSize = d.valueSize;
    this.maxEntries = d.maxEntries;
    this.perCpu = PERCPU_TYPES.has(d.type);
    this.valueBufSize = this.perCpu ? roundUp8(d.valueSize) * lb.libbpf_num_possible_cpus() : d.valueSize;
    this.#ownsFd = ownsFd;
  }

  /** A RawMap for any map fd, described by the kernel. */
  static fromFd(fd: number, ownsFd: boolean): RawMap {
    const i = mapInfo(fd);
    return new RawMap({ name: i.name, fd, type: i.type, keySize: i.key_size, valueSize: i.value_size, maxEntries: i.max_entries }, ownsFd);
  }

  /** The kernel's id of this map (what bpftool lists, what mapFromId opens); no other map gets it while this one lives. */
  kernelId(): number {
    return mapInfo(this.fd).id;
  }

  lookup(key: Buffer): Buffer | null {
    this.#checkKey(key);
    const v = Buffer.alloc(this.valueBufSize);
    const r = lb.bpf_map_lookup_elem(this.fd, key, v);
    if (r === -ENOENT) return null;
    this.#check(r, 'lookup');
    return v;
  }

  update(key: Buffer, value: Buffer, flags: number = BPF_ANY): void {
    this.#checkKey(key);
    if (value.length !== this.valueBufSize) {
      throw new XvsError('BAD_ARGUMENT', `map ${this.name}: value is ${value.length} bytes, expected ${this.valueBufSize}`);
    }
    this.#check(lb.bpf_map_update_elem(this.fd, key, value, flags), 'update');
  }

  /** false when the key was not there. */
  delete(key: Buffer): boolean {
    this.#checkKey(key);
    const r = lb.bpf_map_delete_elem(this.fd, key);
    if (r === -ENOENT) return false;
    this.#check(r, 'delete');
    return true;
  }

  /** The key after prev (the first key for null); null at the end. */
  nextKey(prev: Buffer | null): Buffer | null {
    if (prev) this.#checkKey(prev);
    const next = Buffer.alloc(this.keySize);
    const r = lb.bpf_map_get_next_key(this.fd, prev, next);
    if (r === -ENOENT) return null;
    this.#check(r, 'next key');
    return next;
  }

  /** Iterates keys; a key deleted meanwhile makes hash maps restart from the first. */
  *keys(): Generator<Buffer> {
    for (let k = this.nextKey(null); k; k = this.nextKey(k)) yield k;
  }

  /** Reads the whole map with BPF_MAP_LOOKUP_BATCH, `chunk` entries per syscall. */
  lookupBatch(chunk = 256): { keys: Buffer[]; values: Buffer[] } {
    const keys: Buffer[] = [];
    const values: Buffer[] = [];
    for (const b of this.batches(chunk, false)) {
      for (let i = 0; i < b.count; i++) {
        keys.push(b.keys.subarray(i * this.keySize, (i + 1) * this.keySize));
        values.push(b.values.subarray(i * this.valueBufSize, (i + 1) * this.valueBufSize));
      }
    }
    return { keys, values };
  }

  /**
   * The whole map, one BPF_MAP_LOOKUP_BATCH at a time: `count` keys and
   * values laid end to end (keySize and valueBufSize apart). With `reuse`
   * the same two buffers come back every time, so a walk of a large table
   * allocates nothing per entry; read them before asking for the next.
   */
  *batches(chunk = 256, reuse = true): Generator<{ keys: Buffer; values: Buffer; count: number }> {
    // The batch cursor is opaque: a bucket index for hashes, a key for arrays.
    const outTok = Buffer.alloc(Math.max(this.keySize, 8));
    let inTok: Buffer | null = null;
    let kb = Buffer.alloc(0);
    let vb = Buffer.alloc(0);
    for (;;) {
      if (!reuse || kb.length < this.keySize * chunk) {
        kb = Buffer.alloc(this.keySize * chunk);
        vb = Buffer.alloc(this.valueBufSize * chunk);
      }
      const count: [number] = [chunk];
      const r = lb.bpf_map_lookup_batch(this.fd, inTok, outTok, kb, vb, count, { sz: 24, elem_flags: 0, flags: 0 });
      // A hash bucket larger than the chunk does not fit: retry it bigger.
      if (r === -ENOSPC && chunk < this.maxEntries) {
        chunk *= 2;
        continue;
      }
      if (r < 0 && r !== -ENOENT) this.#check(r, 'lookup batch');
      if (count[0] > 0) yield { keys: kb, values: vb, count: count[0] };
      if (r === -ENOENT) return;
      inTok = Buffer.from(outTok);
    }
  }

  updateBatch(keys: Buffer[], values: Buffer[], flags: number = BPF_ANY): void {
    if (keys.length !== values.length) throw new XvsError('BAD_ARGUMENT', `map ${this.name}: ${keys.length} keys for ${values.length} values`);
    keys.forEach((k) => this.#checkKey(k));
    values.forEach((v) => {
      if (v.length !== this.valueBufSize) throw new XvsError('BAD_ARGUMENT', `map ${this.name}: value is ${v.length} bytes, expected ${this.valueBufSize}`);
    });
    this.updateBatchFlat(Buffer.concat(keys), Buffer.concat(values), keys.length, flags);
  }

  /** updateBatch over keys and values already laid end to end (large tables). */
  updateBatchFlat(keys: Buffer, values: Buffer, n: number, flags: number = BPF_ANY): void {
    if (keys.length !== n * this.keySize || values.length !== n * this.valueBufSize) {
      throw new XvsError('BAD_ARGUMENT', `map ${this.name}: batch of ${n} needs ${n * this.keySize} key and ${n * this.valueBufSize} value bytes`);
    }
    if (n === 0) return;
    const count: [number] = [n];
    const r = lb.bpf_map_update_batch(this.fd, keys, values, count, { sz: 24, elem_flags: flags, flags: 0 });
    this.#check(r, `update batch (${count[0]} of ${n} written)`);
  }

  pin(path: string): void {
    this.#check(lb.bpf_obj_pin(this.fd, path), `pin at ${path}`);
  }

  /** Closes the fd if this RawMap owns it; maps of a BpfObject close with it. */
  close(): void {
    if (this.#ownsFd) {
      this.#ownsFd = false;
      closeFd(this.fd);
    }
  }

  #checkKey(key: Buffer): void {
    if (key.length !== this.keySize) {
      throw new XvsError('BAD_ARGUMENT', `map ${this.name}: key is ${key.length} bytes, expected ${this.keySize}`);
    }
  }

  #check(r: number, op: string): void {
    if (r < 0) throw new XvsError('LIBBPF', `map ${this.name}: ${op} failed: ${lb.strerror(r)}`);
  }
}

export class TypedMap<K, V> {
  constructor(readonly raw: RawMap, readonly key: Codec<K>, readonly value: Codec<V>) {
    checkSizes(raw, key, value);
    if (raw.perCpu) throw new XvsError('BAD_ARGUMENT', `map ${raw.name} is per-CPU: use PerCpuMap`);
  }

  get(k: K): V | null {
    const b = this.raw.lookup(this.key.encode(k));
    return b && this.value.decode(b);
  }

  set(k: K, v: V, flags: number = BPF_ANY): void {
    this.raw.update(this.key.encode(k), this.value.encode(v), flags);
  }

  delete(k: K): boolean {
    return this.raw.delete(this.key.encode(k));
  }

  *entries(): Generator<[K, V]> {
    for (const kb of this.raw.keys()) {
      const vb = this.raw.lookup(kb);
      if (vb) yield [this.key.decode(kb), this.value.decode(vb)];
    }
  }
}

export class PerCpuMap<K, V> {
  readonly cpus: number;
  readonly #stride: number;

  constructor(readonly raw: RawMap, readonly key: Codec<K>, readonly value: Codec<V>) {
    checkSizes(raw, key, value);
    if (!raw.perCpu) throw new XvsError('BAD_ARGUMENT', `map ${raw.name} is not per-CPU: use TypedMap`);
    this.cpus = lb.libbpf_num_possible_cpus();
    this.#stride = roundUp8(raw.valueSize);
  }

  /** One value per possible CPU. */
  get(k: K): V[] | null {
    const b = this.raw.lookup(this.key.encode(k));
    return b && this.#split(b);
  }

  /** Numeric fields added over CPUs; other fields as on CPU 0. */
  sum(k: K): V | null {
    const vs = this.get(k);
    return vs && sumValues(vs);
  }

  /** One value per possible CPU, in CPU order. */
  set(k: K, vs: readonly V[], flags: number = BPF_ANY): void {
    if (vs.length !== this.cpus) throw new XvsError('BAD_ARGUMENT', `map ${this.raw.name}: ${vs.length} values for ${this.cpus} CPUs`);
    const b = Buffer.alloc(this.raw.valueBufSize);
    vs.forEach((v, i) => this.value.encodeInto(v, b, i * this.#stride));
    this.raw.update(this.key.encode(k), b, flags);
  }

  /** The same value on every CPU (zeroing statistics). */
  setAll(k: K, v: V, flags: number = BPF_ANY): void {
    this.set(k, Array<V>(this.cpus).fill(v), flags);
  }

  delete(k: K): boolean {
    return this.raw.delete(this.key.encode(k));
  }

  *entries(): Generator<[K, V[]]> {
    for (const kb of this.raw.keys()) {
      const vb = this.raw.lookup(kb);
      if (vb) yield [this.key.decode(kb), this.#split(vb)];
    }
  }

  #split(b: Buffer): V[] {
    return Array.from({ length: this.cpus }, (_, i) => this.value.decode(b, i * this.#stride));
  }
}

/** A new BPF_MAP_TYPE_ARRAY with __u32 keys, owned by the returned RawMap. */
export function createArrayMap(name: string, valueSize: number, maxEntries: number, flags = 0): RawMap {
  const fd = lb.bpf_map_create(MapType.ARRAY, name, 4, valueSize, maxEntries, {
    sz: 48, btf_fd: 0, btf_key_type_id: 0, btf_value_type_id: 0, btf_vmlinux_value_type_id: 0,
    inner_map_fd: 0, map_flags: flags, map_extra: 0, numa_node: 0, map_ifindex: 0,
  });
  if (fd < 0) throw new XvsError('LIBBPF', `map ${name}: create failed: ${lb.strerror(fd)}`);
  return new RawMap({ name, fd, type: MapType.ARRAY, keySize: 4, valueSize, maxEntries }, true);
}

/** Opens a map by kernel id (bpftool map show); the RawMap owns the fd. */
export function mapFromId(id: number): RawMap {
  const fd = lb.bpf_map_get_fd_by_id(id);
  if (fd < 0) throw new XvsError('LIBBPF', `map id ${id}: open failed: ${lb.strerror(fd)}`);
  return fromOwnedFd(fd);
}

/** Opens a pinned map; the RawMap owns the fd. */
export function mapFromPin(path: string): RawMap {
  const fd = lb.bpf_obj_get(path);
  if (fd < 0) throw new XvsError('LIBBPF', `map pinned at ${path}: open failed: ${lb.strerror(fd)}`);
  return fromOwnedFd(fd);
}

export function closeFd(fd: number): void {
  if (fd >= 0) lb.close(fd);
}

function mapInfo(fd: number): lb.MapInfoValue {
  const info: Record<string, unknown> = {};
  const len: [number] = [24 + 16];
  const r = lb.bpf_obj_get_info_by_fd(fd, info, len);
  if (r < 0) throw new XvsError('LIBBPF', `map fd ${fd}: get info failed: ${lb.strerror(r)}`);
  return info as unknown as lb.MapInfoValue;
}

function fromOwnedFd(fd: number): RawMap {
  try {
    return RawMap.fromFd(fd, true);
  } catch (e) {
    closeFd(fd);
    throw e;
  }
}

function checkSizes(raw: RawMap, key: Codec<unknown>, value: Codec<unknown>): void {
  if (raw.keySize !== key.size || raw.valueSize !== value.size) {
    throw new XvsError('BAD_ARGUMENT',
      `map ${raw.name}: key/value are ${raw.keySize}/${raw.valueSize} bytes, codecs ${key.name}/${value.name} are ${key.size}/${value.size}`);
  }
}

function roundUp8(n: number): number {
  return Math.ceil(n / 8) * 8;
}
