// The TS side of the ABI against the compiled objects (the director's, the
// real server's decap helper and TOA reader): struct codecs (sizes, member
// names, offsets and sizes) and mirrored constants (the enums of xvs_abi.h)
// from each one's BTF; and the director's pinned maps, which must be every
// map its object declares so none loses its state on a restart.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Dataplane, directorMaps, unpinDirectorMaps } from '../src/daemon/dataplane.js';
import { warningMark, warningsSince } from '../src/loader/libbpf.js';
import { ABI_ENUMS, DECAP_ABI_ENUMS, TOA_ABI_ENUMS } from '../src/maps/abi.js';
import type { Codec } from '../src/maps/codec.js';
import { abiCodecs, toaAbiCodecs } from '../src/maps/codecs.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const mainObject = join(root, 'bpf/.output/xvs.o');

interface BtfMember { name: string; type_id: number; bits_offset: number; bitfield_size?: number }
interface BtfEnumValue { name: string; val: number }
interface BtfType {
  id: number; kind: string; name: string; size?: number; type_id?: number; nr_elems?: number;
  members?: BtfMember[]; values?: BtfEnumValue[]; vars?: { type_id: number }[];
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`${cmd} cannot run (${r.error.message}): scripts/setup.sh installs it`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

function btfTypes(obj: string): Map<number, BtfType> {
  // bpftool -j writes a 32-bit enum value with its top bit set (0xffffffff)
  // sign-extended to 64 bits, past a double's precision: read such values as
  // text and cut them back to the enum's width below.
  const text = run('bpftool', ['-j', 'btf', 'dump', 'file', obj]).replace(/"val": ?(\d{16,})/g, '"val":"$1"');
  const json = JSON.parse(text) as { types: BtfType[] };
  for (const t of json.types) {
    for (const v of t.values ?? []) {
      if (typeof v.val === 'string') v.val = Number(BigInt.asUintN((t.size ?? 8) * 8, BigInt(v.val)));
    }
  }
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

function byKind(types: Map<number, BtfType>, kind: string): Map<string, BtfType> {
  return new Map([...types.values()].filter((t) => t.kind === kind).map((t) => [t.name, t]));
}

interface AbiEnum { btf: string; prefix: string; values: Readonly<Record<string, number>> }

/**
 * Every codec and mirrored enum of one object against its BTF; for a helper
 * object, also that it declares only its own maps (a shared header that
 * pulled in the director's would make every load create them).
 */
function checkObject(object: string, codecs: readonly Codec<unknown>[], enums: readonly AbiEnum[], ownMaps?: string[]): void {
  const objectPath = join(root, 'bpf/.output', object);

  describe(`ABI: the TypeScript side matches the BTF of bpf/.output/${object}`, () => {
    let types = new Map<number, BtfType>();

    before(() => {
      // The object is the authority; build it if needed, and fail (never skip) if that fails.
      run('make', ['-s', '-C', join(root, 'bpf'), `.output/${object}`]);
      types = btfTypes(objectPath);
    });

    for (const codec of codecs) {
      it(`struct ${codec.name}`, () => {
        const s = byKind(types, 'STRUCT').get(codec.name);
        assert.ok(s, `struct ${codec.name} not in the BTF of ${objectPath}`);
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

    for (const e of enums) {
      it(`enum ${e.btf}`, () => {
        const t = byKind(types, 'ENUM').get(e.btf);
        assert.ok(t, `enum ${e.btf} not in the BTF of ${objectPath}: does a struct member (or xvs_abi_enums()) have this type?`);
        const fromC: Record<string, number> = {};
        for (const v of t.values ?? []) {
          assert.ok(v.name.startsWith(e.prefix), `${v.name} lacks the prefix ${e.prefix}`);
          fromC[v.name.slice(e.prefix.length).toLowerCase()] = v.val;
        }
        assert.deepEqual(fromC, { ...e.values });
      });
    }

    if (ownMaps) {
      it('declares only its own maps, none of the director\'s', () => {
        const section = byKind(types, 'DATASEC').get('.maps');
        assert.deepEqual((section?.vars ?? []).map((v) => types.get(v.type_id)?.name).sort(), ownMaps);
      });
    }
  });
}

checkObject('xvs.o', Object.values(abiCodecs) as Codec<unknown>[], ABI_ENUMS);
checkObject('xvs_decap.o', [], DECAP_ABI_ENUMS, ['xvs_decap_counters', 'xvs_decap_ports', 'xvs_decap_vips']);
checkObject('xvs_toa.o', Object.values(toaAbiCodecs) as Codec<unknown>[], TOA_ABI_ENUMS, ['xvs_toa_config', 'xvs_toa_conns']);

describe('ABI: the director pins every map its object declares', { skip: process.getuid?.() !== 0 ? 'needs root' : undefined }, () => {
  let tmp = '';
  let mounted = false;

  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'xvs-abi-'));
    mkdirSync(join(tmp, 'bpffs'));
    run('mount', ['-t', 'bpf', 'bpf', join(tmp, 'bpffs')]);
    mounted = true;
  });

  after(() => {
    if (mounted) spawnSync('umount', [join(tmp, 'bpffs')]);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('pins them all without a libbpf warning, and unpinDirectorMaps removes them all', () => {
    const pinDir = join(tmp, 'bpffs', 'xvs');
    const declared = directorMaps().sort();
    // The same list read independently: the variables of the object's .maps
    // section, but devmaps, the per-packet scratch maps and the flow caches
    // with their control map (see BpfObject.pinnableMapNames). A map's type is the length of the array
    // its `type` member points to.
    const types = btfTypes(mainObject);
    const section = byKind(types, 'DATASEC').get('.maps');
    assert.ok(section, 'no .maps section in the BTF');
    const mapType = (varId: number): number => {
      const def = types.get(types.get(varId)?.type_id ?? 0);
      const member = def?.members?.find((m) => m.name === 'type');
      return types.get(types.get(member?.type_id ?? 0)?.type_id ?? 0)?.nr_elems ?? -1;
    };
    const nameOf = (v: { type_id: number }): string => types.get(v.type_id)?.name ?? '?';
    const fromBtf = (section.vars ?? []).filter((v) => ![14, 25].includes(mapType(v.type_id)) && !/_scratch$|_cache$|_cache_ctl$/.test(nameOf(v)));
    assert.equal(fromBtf.length, (section.vars ?? []).length - 6, 'one devmap, two scratch maps, two caches and their control map, left unpinned');
    assert.deepEqual(fromBtf.map((v) => types.get(v.type_id)?.name ?? '?').sort(), declared);
    const mark = warningMark();
    const dp = Dataplane.load({ pinDir, connTableSize: 1024 });
    // libbpf retries a map the kernel refuses with its BTF without it, and says so.
    assert.deepEqual(warningsSince(mark), []);
    try {
      assert.deepEqual(readdirSync(pinDir).sort(), declared);
    } finally {
      dp.close();
    }
    assert.equal(unpinDirectorMaps(pinDir), declared.length);
    assert.deepEqual(readdirSync(pinDir), []);
  });
});
