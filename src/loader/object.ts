// A BPF object file: open, size and pin its maps, load it, hand out maps and
// program fds. libbpf owns every fd here; close() releases them all.
import { existsSync, mkdirSync } from 'node:fs';
import koffi from 'koffi';
import { XvsError } from '../errors.js';
import { logger } from '../log.js';
import { RawMap } from '../maps/map.js';
import * as lb from './libbpf.js';

export interface OpenOptions {
  objectPath: string;
  /** A directory on bpffs; maps in pinMaps are pinned there (or reused if already pinned). */
  pinDir?: string;
  /** Default: every map the C source declares that can be reused (see pinnableMapNames). */
  pinMaps?: readonly string[];
  /** Programs to load (default: all); the others are left out of load(). */
  programs?: readonly string[];
  /** max_entries overrides, applied before load. */
  mapSizes?: Record<string, number>;
  /** Maps whose declared max_entries is one CPU's slice: multiplied by the possible CPUs before load. */
  perCpuSlices?: readonly string[];
  /** Bytes of verifier log kept for a rejected program (default 4 MiB). */
  verifierLogSize?: number;
  /**
   * 0 (default): no log while loading; libbpf 1.1 retries a failed program
   * at level 1 into our buffer, so the log exists exactly when needed. A
   * level set here applies to successful loads too, and since Linux 6.4 a
   * log that overflows the buffer fails the load with ENOSPC.
   */
  verifierLogLevel?: number;
}

const DEFAULT_LOG_SIZE = 4 << 20;
/** BPF_MAP_TYPE_DEVMAP, BPF_MAP_TYPE_DEVMAP_HASH. */
const DEVMAPS = new Set([14, 25]);
const ENOSPC = 28;
const log = logger('loader');

export class BpfObject {
  readonly path: string;
  #obj: lb.Ptr | null;
  #loaded = false;
  readonly #maps = new Map<string, RawMap>();
  #pinned: readonly string[] = [];
  readonly #logSize: number;
  readonly #logLevel: number;

  private constructor(obj: lb.Ptr, opts: OpenOptions) {
    this.#obj = obj;
    this.path = opts.objectPath;
    this.#logSize = opts.verifierLogSize ?? DEFAULT_LOG_SIZE;
    this.#logLevel = opts.verifierLogLevel ?? 0;
  }

  static open(opts: OpenOptions): BpfObject {
    preflight(opts.objectPath);
    const mark = lb.warningMark();
    const obj = lb.bpf_object__open_file(opts.objectPath, null);
    if (!obj) {
      throw new XvsError('LIBBPF', `cannot open ${opts.objectPath}: ${lb.strerror(lb.errno())}`,
        { detail: lb.warningsSince(mark).join('\n') || undefined });
    }
    const o = new BpfObject(obj, opts);
    try {
      if (opts.programs !== undefined) o.#selectPrograms(opts.programs);
      for (const [name, n] of Object.entries(opts.mapSizes ?? {})) o.#setMaxEntries(name, n);
      for (const name of opts.perCpuSlices ?? []) {
        o.#setMaxEntries(name, lb.bpf_map__max_entries(o.#findMap(name)) * lb.libbpf_num_possible_cpus());
      }
      if (opts.pinDir !== undefined) o.#setPinPaths(opts.pinDir, opts.pinMaps);
    } catch (e) {
      o.close();
      throw e;
    }
    return o;
  }

  load(): void {
    const obj = this.#handle();
    const progs = this.#programs().filter((p) => lb.bpf_program__autoload(p));
    // A buffer per program, so the one holding text names the failed program
    // (libbpf closes every program fd when a load fails). They live only
    // for the duration of the load.
    const bufs = progs.map(() => {
      const b = koffi.alloc('char', this.#logSize) as lb.Ptr;
      new Uint8Array(koffi.view(b, 1))[0] = 0;
      return b;
    });
    const mark = lb.warningMark();
    try {
      progs.forEach((p, i) => {
        lb.bpf_program__set_log_buf(p, bufs[i] ?? null, this.#logSize);
        lb.bpf_program__set_log_level(p, this.#logLevel);
      });
      const r = lb.bpf_object__load(obj);
      if (r >= 0) {
        this.#loaded = true;
        log.debug({ object: this.path, programs: progs.map((p) => lb.bpf_program__name(p)) }, 'object loaded');
        return;
      }
      // With a level set by the caller every program has text; the failed one is the last.
      for (let i = progs.length - 1; i >= 0; i--) {
        const text = koffi.decode(bufs[i], 'char', -1) as string;
        const p = progs[i];
        if (p === undefined || text.trim() === '') continue;
        const name = lb.bpf_program__name(p);
        // Since Linux 6.4 a log that overflows fails the load, verified or not.
        if (r === -ENOSPC) {
          throw new XvsError('VERIFIER', `program ${name}: verifier log overflowed ${this.#logSize} bytes`,
            { detail: text, hint: 'raise verifierLogSize (or keep verifierLogLevel at 0)' });
        }
        throw new XvsError('VERIFIER', `program ${name} rejected by the verifier`, { detail: text });
      }
      throw new XvsError('LIBBPF', `cannot load ${this.path}: ${lb.strerror(r)}`,
        { detail: lb.warningsSince(mark).join('\n') || undefined });
    } finally {
      for (const p of progs) lb.bpf_program__set_log_buf(p, null, 0);
      for (const b of bufs) koffi.free(b);
    }
  }

  map(name: string): RawMap {
    const cached = this.#maps.get(name);
    if (cached) return cached;
    const m = this.#findMap(name);
    const fd = lb.bpf_map__fd(m);
    if (!this.#loaded || fd < 0) throw new XvsError('LIBBPF', `map ${name}: ${this.path} is not loaded`);
    const raw = new RawMap({
      name,
      fd,
      type: lb.bpf_map__type(m),
      keySize: lb.bpf_map__key_size(m),
      valueSize: lb.bpf_map__value_size(m),
      maxEntries: lb.bpf_map__max_entries(m),
    });
    this.#maps.set(name, raw);
    return raw;
  }

  program(name: string): { name: string; fd: number } {
    const p = lb.bpf_object__find_program_by_name(this.#handle(), name);
    if (!p) throw new XvsError('LIBBPF', `no program ${name} in ${this.path}`);
    const fd = lb.bpf_program__fd(p);
    if (!this.#loaded || fd < 0) throw new XvsError('LIBBPF', `program ${name}: ${this.path} is not loaded`);
    return { name, fd };
  }

  mapNames(): string[] {
    const obj = this.#handle();
    const names: string[] = [];
    for (let m = lb.bpf_object__next_map(obj, null); m; m = lb.bpf_object__next_map(obj, m)) names.push(lb.bpf_map__name(m));
    return names;
  }

  /** The maps the C source declares: libbpf's internal maps ('<object>.bss' and the like) left out. */
  declaredMapNames(): string[] {
    // A name from C source can never hold a dot.
    return this.mapNames().filter((n) => !n.includes('.'));
  }

  /**
   * The declared maps that can be pinned and reused: all but devmaps and
   * scratch maps. The kernel adds BPF_F_RDONLY_PROG to a devmap it creates
   * and refuses that flag from the creator, so libbpf 1.1 (Debian 12's)
   * never finds a pinned devmap compatible; a devmap holds configuration
   * its loader writes anew. A map named *_scratch is one packet's working
   * memory: nothing in it outlives the packet, and its layout may change;
   * one named *_cache holds copies the dataplane refills from the tables
   * (sized by the CPUs of the machine that loads it), and one named
   * *_cache_* what its loader writes at every load (xvs_flow_cache_ctl).
   */
  pinnableMapNames(): string[] {
    return this.declaredMapNames().filter((n) => !DEVMAPS.has(lb.bpf_map__type(this.#findMap(n))) && !/_scratch$|_cache$|_cache_/.test(n));
  }

  programNames(): string[] {
    return this.#programs().map((p) => lb.bpf_program__name(p));
  }

  /** Removes the pins of this object's pinned maps (pinDir/NAME). */
  unpinMaps(): void {
    for (const name of this.#pinned) {
      const r = lb.bpf_map__unpin(this.#findMap(name), null);
      if (r < 0 && r !== -2 /* ENOENT: never pinned */) {
        throw new XvsError('LIBBPF', `map ${name}: unpin failed: ${lb.strerror(r)}`);
      }
    }
  }

  /** Closes every map and program fd of the object; pins stay. */
  close(): void {
    if (this.#obj === null) return;
    lb.bpf_object__close(this.#obj);
    this.#obj = null;
    this.#loaded = false;
    this.#maps.clear();
  }

  #handle(): lb.Ptr {
    if (this.#obj === null) throw new XvsError('LIBBPF', `${this.path} is closed`);
    return this.#obj;
  }

  #programs(): lb.Ptr[] {
    const obj = this.#handle();
    const out: lb.Ptr[] = [];
    for (let p = lb.bpf_object__next_program(obj, null); p; p = lb.bpf_object__next_program(obj, p)) out.push(p);
    return out;
  }

  #findMap(name: string): lb.Ptr {
    const m = lb.bpf_object__find_map_by_name(this.#handle(), name);
    if (!m) throw new XvsError('LIBBPF', `no map ${name} in ${this.path}`);
    return m;
  }

  #selectPrograms(names: readonly string[]): void {
    const known = this.programNames();
    const missing = names.filter((n) => !known.includes(n));
    if (missing.length > 0) throw new XvsError('LIBBPF', `no program ${missing.join(', ')} in ${this.path}`);
    for (const p of this.#programs()) {
      const r = lb.bpf_program__set_autoload(p, names.includes(lb.bpf_program__name(p)));
      if (r < 0) throw new XvsError('LIBBPF', `program ${lb.bpf_program__name(p)}: set autoload failed: ${lb.strerror(r)}`);
    }
  }

  #setMaxEntries(name: string, n: number): void {
    const r = lb.bpf_map__set_max_entries(this.#findMap(name), n);
    if (r < 0) throw new XvsError('LIBBPF', `map ${name}: cannot set max_entries ${n}: ${lb.strerror(r)}`);
  }

  #setPinPaths(dir: string, names: readonly string[] | undefined): void {
    mkdirSync(dir, { recursive: true });
    const pinned = names ?? this.pinnableMapNames();
    this.#pinned = pinned;
    for (const name of pinned) {
      const r = lb.bpf_map__set_pin_path(this.#findMap(name), `${dir}/${name}`);
      if (r < 0) throw new XvsError('LIBBPF', `map ${name}: cannot set pin path: ${lb.strerror(r)}`);
    }
  }
}

function preflight(objectPath: string): void {
  if (lb.geteuid() !== 0) throw new XvsError('NOT_ROOT', 'loading BPF programs needs root');
  if (!existsSync(objectPath)) throw new XvsError('OBJECT_MISSING', `BPF object ${objectPath} does not exist`);
  if (!existsSync('/sys/kernel/btf/vmlinux')) throw new XvsError('NO_BTF', 'the kernel exposes no BTF (/sys/kernel/btf/vmlinux)');
}
