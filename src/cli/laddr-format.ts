import type { LaddrView } from '../control/protocol.js';
import { fwmarkName, hostPort } from './list-format.js';

// xvsadm -G in the layout of the FULLNAT forks' ipvsadm (DPVS's
// list_laddrs): a title, then per service its VIP:VPORT and how many local
// addresses it has, then one line per address. Always numeric, as theirs.
// Their CONFLICTS column (port allocation conflicts per address) has no
// counterpart here: the dataplane counts exhaustion once, as fnat_no_port in
// `xvs status`, so the column is left out rather than shown as a made-up 0.
// CONNS is the FULLNAT flows holding a port of the address. A fwmark service,
// which theirs do not have, is named as -L names it ("FWM  1").

const TITLE = `${'VIP:VPORT'.padEnd(20)} ${'TOTAL'.padEnd(8)} ${'SNAT_IP'.padEnd(20)} ${'CONNS'.padEnd(10)}`;

/** Services in the daemon's order; nothing at all when there is none, as theirs. */
export function formatLaddrs(views: readonly LaddrView[]): string {
  if (views.length === 0) return '';
  const lines = [TITLE];
  for (const v of views) {
    const name = v.fwmark ? fwmarkName(v.fwmark, v.addr) : hostPort(v.addr, v.port, v.proto);
    lines.push(`${name.padEnd(20)} ${String(v.laddrs.length).padEnd(8)} `);
    for (const l of v.laddrs) lines.push(`${''.padEnd(20)} ${''.padEnd(8)} ${l.addr.padEnd(20)} ${String(l.conns).padEnd(10)}`);
  }
  return `${lines.join('\n')}\n`;
}
