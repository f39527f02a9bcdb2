// Reading what a namespace runs with ip and bpftool: tests check the kernel
// this way, never through the code under test.
import { run } from '../../src/lab/topology.js';

/** The XDP program on an interface of a namespace, if any. */
export async function xdpProg(ns: string, ifname: string): Promise<{ id: number; name: string } | undefined> {
  const out = await run('ip', ['-n', ns, '-j', '-d', 'link', 'show', ifname]);
  return (JSON.parse(out) as Array<{ xdp?: { prog?: { id: number; name: string } } }>)[0]?.xdp?.prog;
}

/** The VIPs in the xvs_decap_vips map of a running decap program, sorted. */
export async function decapVips(progId: number): Promise<string[]> {
  const prog = JSON.parse(await run('bpftool', ['-j', 'prog', 'show', 'id', String(progId)])) as { map_ids?: number[] };
  for (const id of prog.map_ids ?? []) {
    const map = JSON.parse(await run('bpftool', ['-j', 'map', 'show', 'id', String(id)])) as { name: string };
    if (map.name !== 'xvs_decap_vips') continue;
    const entries = JSON.parse(await run('bpftool', ['-j', 'map', 'dump', 'id', String(id)])) as Array<{ key: string[] }>;
    return entries.map((e) => e.key.slice(0, 4).map((b) => parseInt(b, 16)).join('.')).sort();
  }
  throw new Error(`program ${progId} has no xvs_decap_vips map`);
}

/** The UDP ports set in the xvs_decap_ports bitmap of a running decap program (bit P % 32 of word P / 32), sorted. */
export async function decapGuePorts(progId: number): Promise<number[]> {
  const prog = JSON.parse(await run('bpftool', ['-j', 'prog', 'show', 'id', String(progId)])) as { map_ids?: number[] };
  for (const id of prog.map_ids ?? []) {
    const map = JSON.parse(await run('bpftool', ['-j', 'map', 'show', 'id', String(id)])) as { name: string };
    if (map.name !== 'xvs_decap_ports') continue;
    const entries = JSON.parse(await run('bpftool', ['-j', 'map', 'dump', 'id', String(id)])) as Array<{ key: string[]; value: string[] }>;
    const ports: number[] = [];
    for (const e of entries) {
      const word = Buffer.from(e.key.map((b) => parseInt(b, 16))).readUInt32LE(0);
      const bits = Buffer.from(e.value.map((b) => parseInt(b, 16))).readUInt32LE(0);
      for (let b = 0; b < 32; b++) if (bits & (1 << b)) ports.push(word * 32 + b);
    }
    return ports.sort((a, b) => a - b);
  }
  throw new Error(`program ${progId} has no xvs_decap_ports map`);
}

/** The decap counters of a running decap program, summed over CPUs, by index (DECAP_CNT). */
export async function decapCounters(progId: number): Promise<number[]> {
  const prog = JSON.parse(await run('bpftool', ['-j', 'prog', 'show', 'id', String(progId)])) as { map_ids?: number[] };
  for (const id of prog.map_ids ?? []) {
    const map = JSON.parse(await run('bpftool', ['-j', 'map', 'show', 'id', String(id)])) as { name: string };
    if (map.name !== 'xvs_decap_count') continue; // the kernel keeps 15 characters of a name
    const entries = JSON.parse(await run('bpftool', ['-j', 'map', 'dump', 'id', String(id)])) as Array<{ key: string[]; values: Array<{ value: string[] }> }>;
    const out: number[] = [];
    for (const e of entries) {
      const idx = Buffer.from(e.key.map((b) => parseInt(b, 16))).readUInt32LE(0);
      out[idx] = e.values.reduce((n, v) => n + Number(Buffer.from(v.value.map((b) => parseInt(b, 16))).readBigUInt64LE(0)), 0);
    }
    return out;
  }
  throw new Error(`program ${progId} has no xvs_decap_counters map`);
}
