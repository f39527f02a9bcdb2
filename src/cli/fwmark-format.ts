import type { FwmarkRule } from '../control/protocol.js';

// How xvsadm writes a fwmark rule: as the command line that adds it, so
// that -S writes it, --list-fwmark-rules shows it and -R reads it back in
// one form.

/** "--fwmark-rule 1 -d 198.51.100.0/24 -p tcp --dport 80:90" */
export function fwmarkRuleLine(r: FwmarkRule): string {
  let line = `--fwmark-rule ${r.mark} -d ${r.addr}/${r.len}`;
  if (r.proto) line += ` -p ${r.proto}`;
  if (r.dport) line += ` --dport ${r.dport[0] === r.dport[1] ? r.dport[0] : `${r.dport[0]}:${r.dport[1]}`}`;
  return line;
}

/** xvsadm --list-fwmark-rules [MARK]: one line per rule, in the order the daemon sends them. */
export function formatFwmarkRules(rules: readonly FwmarkRule[], mark?: number): string {
  return rules.filter((r) => mark === undefined || r.mark === mark).map((r) => `${fwmarkRuleLine(r)}\n`).join('');
}
