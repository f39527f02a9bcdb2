// The libbpf binding against the kernel: loading, test runs, maps, pinning,
// XDP attachment inside a network namespace of our own, error paths. Root.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { XvsError } from '../src/errors.js';
import {
  BpfObject, XdpAction, attachXdp, detachXdp, ifIndex, testRun, withNetns, withNetnsAsync, xdpMd, xdpProgId,
} from '../src/loader/index.js';
import { u32Codec, u64Codec } from '../src/maps/codecs.js';
import { PerCpuMap, TypedMap, createArrayMap, mapFromId, mapFromPin } from '../src/maps/map.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const auxObject = join(root, 'bpf/.output/xvs_aux.o');
// xdp_gen is left out where a test needs only the small programs, so those
// tests do not hinge on it; 'loads every program' covers the whole object.
const AUX_PROGS = ['xdp_pass', 'xdp_macswap', 'xdp_sink'] as const;
const skip = process.getuid?.() !== 0 ? 'needs root (BPF and network namespaces)' : undefined;

function sh(cmd: string, ...args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function errorOf(fn: () => unknown): XvsError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof XvsError, `expected an XvsError, got ${String(e)}`);
    return e;
  }
  assert.fail('no error thrown');
}

function frame64(): Buffer {
  const f = Buffer.alloc(64);
  Buffer.from('020000000001', 'hex').copy(f, 0); // destination MAC
  Buffer.from('020000000002', 'hex').copy(f, 6); // source MAC
  f.writeUInt16BE(0x0800, 12);
  for (let i = 14; i < 64; i++) f[i] = i;
  return f;
}

describe('loader', { skip }, () => {
  let tmp = '';
  let aux: BpfObject;

  before(() => {
    if (!existsSync(auxObject)) sh('make', '-C', join(root, 'bpf'), '-s');
    tmp = mkdtempSync(join(tmpdir(), 'xvs-loader-'));
    aux = BpfObject.open({ objectPath: auxObject, programs: AUX_PROGS });
    aux.load();
  });

  after(() => {
    aux?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('loads every program of xvs_aux.o', () => {
    const o = BpfObject.open({ objectPath: auxObject });
    try {
      assert.deepEqual(o.programNames().sort(), [...AUX_PROGS, 'xdp_gen'].sort());
      o.load();
      for (const p of o.programNames()) assert.ok(o.program(p).fd > 0, p);
    } finally {
      o.close();
    }
  });

  it('lists maps and programs', () => {
    assert.deepEqual(aux.mapNames().sort(), ['aux_count', 'gen_tmpl']);
    const m = aux.map('aux_count');
    assert.deepEqual([m.type, m.keySize, m.valueSize, m.maxEntries, m.perCpu], [6, 4, 8, 2, true]);
    assert.ok(aux.program('xdp_pass').fd > 0);
    assert.equal(errorOf(() => aux.map('nope')).code, 'LIBBPF');
    assert.equal(errorOf(() => aux.program('nope')).code, 'LIBBPF');
    // Left out of the load, so it has no fd.
    assert.equal(errorOf(() => aux.program('xdp_gen')).code, 'LIBBPF');
  });

  it('xdp_macswap swaps the MACs and returns XDP_TX', () => {
    const f = frame64();
    const r = testRun(aux.program('xdp_macswap').fd, { data: f });
    assert.equal(r.retval, XdpAction.TX);
    const want = Buffer.from(f);
    f.copy(want, 0, 6, 12);
    f.copy(want, 6, 0, 6);
    assert.deepEqual(r.data, want);
    assert.ok(r.duration >= 0);
  });

  it('xdp_pass returns XDP_PASS with the frame unchanged', () => {
    const f = frame64();
    const r = testRun(aux.program('xdp_pass').fd, { data: f, ctxIn: xdpMd({ dataLen: f.length }), repeat: 100 });
    assert.equal(r.retval, XdpAction.PASS);
    assert.deepEqual(r.data, f);
  });

  it('reads and zeroes a per-CPU map the program counts in', () => {
    const counts = new PerCpuMap(aux.map('aux_count'), u32Codec, u64Codec);
    counts.setAll(0, 0);
    testRun(aux.program('xdp_sink').fd, { data: frame64(), repeat: 10 });
    assert.equal(counts.sum(0), 10);
    assert.equal(counts.get(0)?.length, counts.cpus);
    counts.setAll(0, 0);
    assert.equal(counts.sum(0), 0);
    assert.equal(counts.get(7), null); // out of range for an array: absent
  });

  it('reads and writes an array map: single, batch, by id', () => {
    const name = `xvs_lt_${process.pid % 100000}`;
    const m = createArrayMap(name, 4, 8);
    try {
      const t = new TypedMap(m, u32Codec, u32Codec);
      t.set(3, 0xabcdef);
      assert.equal(t.get(3), 0xabcdef);
      assert.equal(t.get(100), null);
      assert.equal([...m.keys()].length, 8);
      m.updateBatch([1, 2].map((k) => u32Codec.encode(k)), [11, 22].map((v) => u32Codec.encode(v)));
      const { keys, values } = m.lookupBatch(3);
      assert.equal(keys.length, 8);
      const got = Object.fromEntries(keys.map((k, i) => [u32Codec.decode(k), u32Codec.decode(values[i] ?? Buffer.alloc(4))]));
      assert.deepEqual(got, { 0: 0, 1: 11, 2: 22, 3: 0xabcdef, 4: 0, 5: 0, 6: 0, 7: 0 });
      assert.equal(errorOf(() => m.delete(u32Codec.encode(1))).code, 'LIBBPF'); // arrays have no delete
      assert.equal(errorOf(() => m.lookup(Buffer.alloc(2))).code, 'BAD_ARGUMENT');

      const shown = JSON.parse(sh('bpftool', '-j', 'map', 'show')) as { id: number; name: string }[];
      const id = shown.find((x) => x.name === name)?.id;
      assert.ok(id, `bpftool does not list map ${name}`);
      const again = mapFromId(id);
      try {
        assert.deepEqual([again.name, again.keySize, again.valueSize, again.maxEntries], [name, 4, 4, 8]);
        assert.equal(u32Codec.decode(again.lookup(u32Codec.encode(2)) ?? Buffer.alloc(4)), 22);
      } finally {
        again.close();
      }
    } finally {
      m.close();
    }
  });

  it('pins maps on bpffs and reuses them on the next load', (t) => {
    const fs = join(tmp, 'bpffs');
    mkdirSync(fs);
    sh('mount', '-t', 'bpf', 'bpf', fs);
    t.after(() => spawnSync('umount', [fs]));
    const pinDir = join(fs, 'xvs', 'aux'); // created by open()

    const first = BpfObject.open({ objectPath: auxObject, pinDir, programs: AUX_PROGS });
    try {
      first.load();
      assert.deepEqual(readdirSync(pinDir).sort(), ['aux_count', 'gen_tmpl']);
      const counts = new PerCpuMap(first.map('aux_count'), u32Codec, u64Codec);
      counts.set(1, Array.from({ length: counts.cpus }, (_, i) => 1000 + i));
    } finally {
      first.close();
    }

    const second = BpfObject.open({ objectPath: auxObject, pinDir, programs: AUX_PROGS });
    try {
      second.load();
      const counts = new PerCpuMap(second.map('aux_count'), u32Codec, u64Codec);
      assert.deepEqual(counts.get(1), Array.from({ length: counts.cpus }, (_, i) => 1000 + i));
    } finally {
      second.close();
    }

    const pinned = mapFromPin(join(pinDir, 'aux_count'));
    try {
      assert.equal(pinned.name, 'aux_count');
      assert.equal(new PerCpuMap(pinned, u32Codec, u64Codec).sum(1), Array.from({ length: pinned.valueBufSize / 8 }, (_, i) => 1000 + i).reduce((a, b) => a + b));
    } finally {
      pinned.close();
    }

    // A pinned map of another size is not reused: the load fails and says why.
    const resized = BpfObject.open({ objectPath: auxObject, pinDir, programs: AUX_PROGS, mapSizes: { aux_count: 4 } });
    try {
      const e = errorOf(() => resized.load());
      assert.equal(e.code, 'LIBBPF');
      assert.match(e.detail ?? '', /reuse pinned map/);
      resized.unpinMaps();
      assert.deepEqual(readdirSync(pinDir), []);
    } finally {
      resized.close();
    }
  });

  it('reports a rejected program with the verifier log', () => {
    // bpf/Makefile builds test/fixtures/*.c with the dataplane's flags.
    const o = BpfObject.open({ objectPath: join(root, 'bpf/.output/fixtures/bad_prog.o') });
    try {
      const e = errorOf(() => o.load());
      assert.equal(e.code, 'VERIFIER');
      assert.match(e.message, /program xdp_bad rejected by the verifier/);
      assert.match(e.detail ?? '', /invalid access to packet/);
      assert.match(e.detail ?? '', /processed \d+ insns/);
    } finally {
      o.close();
    }
  });

  it('fails cleanly on a missing object, an unknown map size or program', () => {
    assert.equal(errorOf(() => BpfObject.open({ objectPath: join(tmp, 'nope.o') })).code, 'OBJECT_MISSING');
    assert.equal(errorOf(() => BpfObject.open({ objectPath: auxObject, mapSizes: { nope: 1 } })).code, 'LIBBPF');
    assert.equal(errorOf(() => BpfObject.open({ objectPath: auxObject, programs: ['nope'] })).code, 'LIBBPF');
    assert.equal(errorOf(() => ifIndex('xvs-nope0')).code, 'NO_INTERFACE');
  });

  it('refuses to run without root', () => {
    const script = `import('${join(root, 'dist/src/loader/object.js')}').then(({ BpfObject }) => {
      try { BpfObject.open({ objectPath: '${auxObject}' }); console.log('opened'); } catch (e) { console.log(e.code); } })`;
    // uid 65534 with CAP_DAC_READ_SEARCH alone: it can read the checkout wherever
    // it lives (under /root, mode 700, included) and can do nothing with BPF.
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups',
      '--inh-caps=-all,+dac_read_search', '--ambient-caps=+dac_read_search', process.execPath, '-e', script], { encoding: 'utf8' });
    assert.equal(r.stdout.trim(), 'NOT_ROOT', r.stderr);
  });

  describe('in a network namespace', () => {
    const ns = `xvs-lt-${process.pid}`;
    const IDX = 4000 + (process.pid % 1000); // unlikely to exist in the root namespace

    before(() => {
      sh('ip', 'netns', 'add', ns);
      sh('ip', '-n', ns, 'link', 'add', 'veth0', 'index', String(IDX), 'type', 'veth', 'peer', 'name', 'veth1');
      for (const dev of ['lo', 'veth0', 'veth1']) sh('ip', '-n', ns, 'link', 'set', dev, 'up');
    });

    after(() => {
      spawnSync('ip', ['netns', 'del', ns]);
    });

    const ipLinkProgId = (dev: string): number | undefined => {
      const [l] = JSON.parse(sh('ip', '-n', ns, '-j', 'link', 'show', dev)) as { xdp?: { prog?: { id: number } } }[];
      return l?.xdp?.prog?.id;
    };

    it('resolves interfaces only inside the namespace', () => {
      assert.equal(withNetns(ns, () => ifIndex('veth0')), IDX);
      assert.equal(errorOf(() => ifIndex('veth0')).code, 'NO_INTERFACE');
      assert.equal(errorOf(() => withNetns(ns, () => { throw new XvsError('SYSTEM', 'inner'); })).message, 'inner');
      assert.equal(errorOf(() => ifIndex('veth0')).code, 'NO_INTERFACE', 'back in the original namespace after a throw');
      assert.equal(errorOf(() => withNetns('xvs-no-such-ns', () => 0)).code, 'SYSTEM');
    });

    it('attaches, replaces and detaches XDP programs', () => {
      const pass = aux.program('xdp_pass').fd;
      const swap = aux.program('xdp_macswap').fd;
      withNetns(ns, () => {
        const veth = ifIndex('veth0');
        assert.equal(xdpProgId(veth), 0);
        assert.equal(attachXdp(veth, pass, 'native'), 'native');
        const id1 = xdpProgId(veth);
        assert.ok(id1 > 0);
        assert.equal(ipLinkProgId('veth0'), id1);

        assert.equal(attachXdp(veth, swap, 'native'), 'native');
        const id2 = xdpProgId(veth);
        assert.ok(id2 > 0 && id2 !== id1, 'replaced');

        // Changing mode replaces too (the kernel holds one mode at a time).
        assert.equal(attachXdp(veth, pass, 'generic'), 'generic');
        assert.equal(xdpProgId(veth), id1);
        detachXdp(veth);
        assert.equal(xdpProgId(veth), 0);
        assert.equal(ipLinkProgId('veth0'), undefined);
        detachXdp(veth); // nothing attached: fine

        // Loopback has no native XDP: generic it is.
        const lo = ifIndex('lo');
        assert.equal(attachXdp(lo, pass, 'native'), 'generic');
        assert.equal(xdpProgId(lo), id1);
        detachXdp(lo, 'generic');
        assert.equal(xdpProgId(lo), 0);

        assert.equal(errorOf(() => attachXdp(veth, 999999, 'generic')).code, 'ATTACH');
      });
    });

    it('test-runs with an ingress interface of the namespace', () => {
      const pass = aux.program('xdp_pass').fd;
      const f = frame64();
      const ctxIn = xdpMd({ dataLen: f.length, ingressIfindex: IDX });
      const r = withNetns(ns, () => testRun(pass, { data: f, ctxIn }));
      assert.equal(r.retval, XdpAction.PASS);
      // The same ifindex means nothing in the root namespace.
      assert.equal(errorOf(() => testRun(pass, { data: f, ctxIn })).code, 'LIBBPF');
    });

    it('holds the namespace across an awaited function', async () => {
      const idx = await withNetnsAsync(ns, async () => {
        await new Promise((r) => setTimeout(r, 5));
        return ifIndex('veth0');
      });
      assert.equal(idx, IDX);
      assert.equal(errorOf(() => ifIndex('veth0')).code, 'NO_INTERFACE');
      const outer = withNetnsAsync(ns, () => new Promise((r) => setTimeout(r, 20)));
      await assert.rejects(withNetnsAsync(ns, async () => 0), { code: 'SYSTEM' });
      await outer;
      assert.equal(errorOf(() => ifIndex('veth0')).code, 'NO_INTERFACE');
    });
  });
});
