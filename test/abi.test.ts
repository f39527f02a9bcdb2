// The TS codecs against the C structs as the compiler laid them out: sizes,
// member names, offsets and sizes from the BTF of a compiled object.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { arch, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { abiCodecs } from '../src/maps/codecs.js';
import { COUNTERS, XVS_CNT_MAX } from '../src/maps/counters.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const header = join(root, 'bpf/include/xvs_abi.h');
const mainObject = join(root, 'bpf/.output/xvs.o');
const probeSource = join(root, 'test/fixtures/abi_probe.c');

interface BtfMember { name: string; type_id: number; bits_offset: number; bitfield_size?: number }
interface BtfType { id: number; kind: string; name: string; size?: number; type_id?: number; nr_elems?: number; members?: BtfMember[] }

function missingTool(): string | undefined {
  for (const [tool, arg] of [['bpftool', 'version'], ['clang', '--version']] as const) {
    if (spawnSync(tool, [arg]).error) return `${tool} is not installed`;
  }
  return undefined;
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

function btfTypes(obj: string): Map<number, BtfType> {
  const json = JSON.parse(run('bpftool', ['-j', 'btf', 'dump', 'file', obj])) as { types: BtfType[] };
  return new Map(json.types.map((t) => [t.id, t]));
}

function typeSize(types: Map<number, BtfType>, id: number): number {
  const t = types.get(id);
  if (!t) throw new Error(`BTF type ${id} missing`);
  switch (t.kind) {
    case 'TYPEDEF': case 'VOLATILE': case 'CONST': case 'RESTRICT': case 'TYPE_TAG':
      return typeSize(types, t.type_id ?? 0);
    case 'ARRAY':
      return (t.nr_elems ?? 0) * typeSize(types, t.type_id ?? 0);
    case 'PTR':
      return 8;
    default:
      if (t.size === undefined) throw new Error(`BTF type ${id} (${t.kind}) has no size`);
      return t.size;
  }
}

function structs(types: Map<number, BtfType>): Map<string, BtfType> {
  return new Map([...types.values()].filter((t) => t.kind === 'STRUCT').map((t) => [t.name, t]));
}

const codecs = Object.values(abiCodecs);
const skip = missingTool();

describe('ABI: codecs match the BTF of the compiled structs', { skip }, () => {
  let tmp: string | undefined;
  let types = new Map<number, BtfType>();
  let byName = new Map<string, BtfType>();
  let source = '';

  before(() => {
    // The dataplane object is authoritative once it exists and holds every struct.
    if (existsSync(mainObject)) {
      types = btfTypes(mainObject);
      byName = structs(types);
      source = mainObject;
      if (codecs.every((c) => byName.has(c.name))) return;
    }
    tmp = mkdtempSync(join(tmpdir(), 'xvs-abi-'));
    const probe = join(tmp, 'abi_probe.o');
    run('clang', ['-O2', '-g', '-Wall', '-Werror', '-target', 'bpf', '-D__TARGET_ARCH_x86',
      '-I', join(root, 'bpf/include'), '-I', `/usr/include/${arch() === 'x64' ? 'x86_64' : arch()}-linux-gnu`,
      '-c', probeSource, '-o', probe]);
    types = btfTypes(probe);
    byName = structs(types);
    source = probe;
  });

  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  for (const codec of codecs) {
    it(`struct ${codec.name}`, () => {
      const s = byName.get(codec.name);
      assert.ok(s, `struct ${codec.name} not in the BTF of ${source}`);
      assert.equal(codec.size, s.size, `sizeof(struct ${codec.name})`);
      const members = s.members ?? [];
      assert.deepEqual(codec.fields.map((f) => f.name), members.map((m) => m.name), `members of ${codec.name}, in order`);
      for (const m of members) {
        assert.equal(m.bitfield_size ?? 0, 0, `${codec.name}.${m.name} is a bitfield`);
        const f = codec.fields.find((x) => x.name === m.name);
        assert.ok(f);
        assert.equal(f.offset, m.bits_offset / 8, `offsetof(${codec.name}, ${m.name})`);
        assert.equal(f.size, typeSize(types, m.type_id), `sizeof(${codec.name}.${m.name})`);
      }
    });
  }
});

describe('ABI: counter indexes match xvs_abi.h', () => {
  it('XVS_CNT_* defines', () => {
    const defs = new Map<string, number>();
    for (const m of readFileSync(header, 'utf8').matchAll(/^#define XVS_CNT_(\w+)\s+(\d+)/gm)) {
      defs.set((m[1] ?? '').toLowerCase(), Number(m[2]));
    }
    assert.equal(defs.get('max'), XVS_CNT_MAX);
    defs.delete('max');
    assert.deepEqual(Object.fromEntries(defs), { ...COUNTERS });
  });
});
