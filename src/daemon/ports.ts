// The director's program on its interfaces: attached to each (native,
// falling back to generic), each entered in the devmap xvs_tx_ports so a
// redirect to it takes the fast way, and every attachment that a previous
// xvsd of the same pinned maps left elsewhere found again, so a restart
// with a different interface list or `xvs down` leaves none behind.
import { XvsError } from '../errors.js';
import { attachXdp, detachXdp, listInterfaces, progMapIds, xdpProgId, type XdpMode } from '../loader/index.js';
import type { TypedMap } from '../maps/map.js';
import type { DevmapVal } from '../maps/codecs.js';
import { logger } from '../log.js';
import type { DirectorInterface } from './interfaces.js';

const log = logger('ports');

export interface Port extends DirectorInterface {
  /** The mode the program runs in there (native may have fallen back to generic). */
  mode: XdpMode;
}

/**
 * Attaches progFd to every interface and enters each in txPorts; all or
 * nothing: on a failure the interfaces reached so far are detached again
 * and their devmap entries removed.
 */
export function attachPorts(progFd: number, txPorts: TypedMap<number, DevmapVal>, ifaces: readonly DirectorInterface[], mode: XdpMode): Port[] {
  const done: Port[] = [];
  try {
    for (const i of ifaces) {
      const port: Port = { ...i, mode: attachXdp(i.ifindex, progFd, mode) };
      done.push(port);
      // No egress program: bpf_prog.fd 0.
      txPorts.set(i.ifindex, { ifindex: i.ifindex, bpf_prog: 0 });
    }
    // A native program redirects with the target's ndo_xdp_xmit, which a
    // driver without native XDP lacks (the frame would be dropped); a generic
    // one transmits through the stack to any device. So one fallback means generic everywhere.
    const generic = done.find((p) => p.mode === 'generic');
    if (generic && done.some((p) => p.mode === 'native')) {
      log.warn({ interface: generic.name }, 'an interface has no native XDP: every interface runs generic XDP, so redirects between them work');
      for (const p of done) if (p.mode === 'native') p.mode = attachXdp(p.ifindex, progFd, 'generic');
    }
  } catch (e) {
    for (const p of done) {
      try {
        txPorts.delete(p.ifindex);
        detachXdp(p.ifindex, p.mode);
      } catch (undo) {
        log.error({ interface: p.name, err: (undo as Error).message }, 'undoing an attachment failed');
      }
    }
    throw e;
  }
  return done;
}

export function detachPorts(ports: readonly Port[]): void {
  for (const p of ports) detachXdp(p.ifindex, p.mode);
}

export interface Attachment {
  name: string;
  ifindex: number;
  progId: number;
}

/**
 * Interfaces of this network namespace whose XDP program uses the map of
 * kernel id mapId: every program loaded on the director's pinned maps does,
 * and no other.
 */
export function attachmentsUsingMap(mapId: number): Attachment[] {
  const out: Attachment[] = [];
  for (const { name, ifindex } of listInterfaces()) {
    const progId = xdpProgId(ifindex);
    if (progId !== 0 && progMapIds(progId).includes(mapId)) out.push({ name, ifindex, progId });
  }
  return out;
}

/** Detaches the director's program from the interfaces it runs on but is no longer given; returns their names. */
export function detachStale(mapId: number, keep: readonly DirectorInterface[]): string[] {
  const stale = attachmentsUsingMap(mapId).filter((a) => !keep.some((k) => k.ifindex === a.ifindex));
  for (const a of stale) {
    try {
      detachXdp(a.ifindex);
    } catch (e) {
      throw new XvsError('ATTACH', `cannot detach the previous xvsd from ${a.name}: ${(e as Error).message}`);
    }
  }
  return stale.map((a) => a.name);
}
