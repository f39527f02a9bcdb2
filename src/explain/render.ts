import type { Explanation } from './explain.js';

/** The explanation as an operator reads it: one line per step, then the verdict's counters. */
export function renderExplanation(e: Explanation): string[] {
  const width = Math.max(...e.steps.map((s) => s.stage.length), 'counters'.length) + 2;
  const lines = e.steps.map((s) => `${s.stage.padEnd(width)}${s.says}`);
  if (e.entry) lines.push(`${'entry'.padEnd(width)}${e.entry}`);
  let moves = e.counters.join(', ');
  const st = e.stats;
  if (st && 'inpkts' in st) moves += `; xvs_svc_stats[${st.serviceId}] and xvs_real_stats[${st.realId}]: conns +${st.conns}, inpkts +1, inbytes +${st.inbytes}`;
  if (st && 'outpkts' in st) moves += `; xvs_svc_stats[${st.serviceId}] and xvs_real_stats[${st.realId}]: outpkts +1, outbytes +${st.outbytes}`;
  lines.push(`${'counters'.padEnd(width)}${moves}`);
  lines.push(`${'result'.padEnd(width)}${e.action}: ${e.verdict}${e.real ? ` to ${e.real.addr.includes(':') ? `[${e.real.addr}]` : e.real.addr}:${e.real.port} (${e.real.fwd.toUpperCase()})` : ''}`);
  return lines;
}
