import type { RateView, StatsView } from '../control/protocol.js';
import { CONN_STATE, FAMILY } from '../maps/abi.js';
import type * as C from '../maps/codecs.js';
import { familyOf } from '../daemon/addr.js';
import type { Dataplane } from '../daemon/dataplane.js';
import type { DirectorActivity } from '../daemon/director.js';
import { realRateKey, svcRateKey, type RateEstimator } from '../daemon/estimator.js';
import { serviceName, type Model, type RealModel, type ServiceModel } from '../daemon/model.js';
import { countersView } from '../daemon/views.js';
import type { FlowCensus } from './census.js';
import type { Family, Labels, MetricType, Sample } from './exposition.js';
import { COUNTER_KINDS } from './reasons.js';

// The metric families of one scrape, from the committed model, the maps
// and a census of the flow tables. Names follow Prometheus's conventions:
// the xvs_ prefix, _total on counters, base units (bytes, seconds).

export interface MetricsInput {
  dp: Pick<Dataplane, 'counters' | 'svcStats' | 'realStats' | 'nexthops' | 'conns' | 'newFlows' | 'persist' | 'nats' | 'newReplies' | 'services' | 'reals'>;
  model: Model;
  rates: RateEstimator;
  activity: DirectorActivity;
  /** Real-server addresses whose next hop is unknown (xvs status's unresolvedNexthops). */
  unresolved: number;
  census: FlowCensus;
  /** performance.now() of this scrape. */
  now: number;
}

const bracket = (addr: string): string => (familyOf(addr) === FAMILY.inet6 ? `[${addr}]` : addr);
/** service="tcp/192.0.2.80:80", service="tcp/[2001:db8::80]:80", service="fwm/1" (an IPv6 fwmark service: "fwm/1/ipv6") */
export const serviceLabel = (s: { proto: string; addr: string; port: number; fwmark?: number }): string =>
  (s.fwmark ? `fwm/${s.fwmark}${familyOf(s.addr) === FAMILY.inet6 ? '/ipv6' : ''}` : `${s.proto}/${bracket(s.addr)}:${s.port}`);
/** real="198.51.100.10:8080", real="[2001:db8::11]:80" */
export const realLabel = (r: { addr: string; port: number }): string => `${bracket(r.addr)}:${r.port}`;
const familyLabel = (addr: string): string => (familyOf(addr) === FAMILY.inet6 ? 'ipv6' : 'ipv4');

const STATE_NAMES = Object.entries(CONN_STATE).filter(([n]) => n !== 'max') as [string, number][];
/** The states a flow of each protocol can be in (IPVS's tables: TCP's eleven, UDP's one). */
const statesOf = (proto: string): [string, number][] => STATE_NAMES.filter(([n]) => (proto === 'udp') === (n === 'udp'));

const ZERO: StatsView = { conns: 0, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0 };

class Families {
  readonly list: Family[] = [];
  add(name: string, type: MetricType, help: string, samples: readonly Sample[]): void {
    this.list.push({ name, type, help, samples });
  }
}

type Owner = { s: ServiceModel; r?: RealModel; labels: Labels; stats: StatsView; rates: RateView };

/** Statistics and estimator rates, the same names for services and real servers. */
function traffic(f: Families, who: 'service' | 'real', rows: readonly Owner[]): void {
  const what = who === 'service' ? 'virtual service' : 'real server';
  const dir = (l: Labels, d: 'in' | 'out'): Labels => ({ ...l, direction: d });
  f.add(`xvs_${who}_connections_total`, 'counter', `Connections scheduled to the ${what} (ipvsadm -L --stats Conns).`,
    rows.map((o) => [o.labels, o.stats.conns]));
  f.add(`xvs_${who}_packets_total`, 'counter', `Packets of the ${what}: in from clients, out from real servers under NAT and FULLNAT (ipvsadm --stats InPkts, OutPkts).`,
    rows.flatMap((o) => [[dir(o.labels, 'in'), o.stats.inpkts], [dir(o.labels, 'out'), o.stats.outpkts]] as Sample[]));
  f.add(`xvs_${who}_bytes_total`, 'counter', `IP bytes of the ${what}, by direction (ipvsadm --stats InBytes, OutBytes).`,
    rows.flatMap((o) => [[dir(o.labels, 'in'), o.stats.inbytes], [dir(o.labels, 'out'), o.stats.outbytes]] as Sample[]));
  f.add(`xvs_${who}_connections_per_second`, 'gauge', `New connections per second of the ${what}, IPVS's 2-second estimator (ipvsadm --rate CPS).`,
    rows.map((o) => [o.labels, o.rates.cps]));
  f.add(`xvs_${who}_packets_per_second`, 'gauge', `Packets per second of the ${what}, IPVS's 2-second estimator (ipvsadm --rate InPPS, OutPPS).`,
    rows.flatMap((o) => [[dir(o.labels, 'in'), o.rates.inpps], [dir(o.labels, 'out'), o.rates.outpps]] as Sample[]));
  f.add(`xvs_${who}_bytes_per_second`, 'gauge', `Bytes per second of the ${what}, IPVS's 2-second estimator (ipvsadm --rate InBPS, OutBPS).`,
    rows.flatMap((o) => [[dir(o.labels, 'in'), o.rates.inbps], [dir(o.labels, 'out'), o.rates.outbps]] as Sample[]));
}

const stats = (s: C.Stats | null): StatsView => (s ? { conns: s.conns, inpkts: s.inpkts, outpkts: s.outpkts, inbytes: s.inbytes, outbytes: s.outbytes } : ZERO);

export function collect(i: MetricsInput): Family[] {
  const f = new Families();
  const { dp, model, census } = i;
  const services = [...model.services.values()].sort((a, b) => a.id - b.id);
  const svcRows: Owner[] = services.map((s) => ({
    s, labels: { service: serviceLabel(s), family: familyLabel(s.addr) },
    stats: stats(dp.svcStats.sum(s.id)), rates: i.rates.rates(svcRateKey(s.id, serviceName(s))),
  }));
  const realRows: Owner[] = services.flatMap((s) => s.reals.map((r) => ({
    s, r, labels: { service: serviceLabel(s), real: realLabel(r) },
    stats: stats(dp.realStats.sum(r.id)), rates: i.rates.rates(realRateKey(r.id, r.gen)),
  })));

  traffic(f, 'service', svcRows);
  f.add('xvs_service_flows', 'gauge', 'Live entries of the flow tables by connection state (IPVS\'s state names), flows of deleted real servers that still go on included.',
    svcRows.flatMap((o) => statesOf(o.s.proto).map(([name, n]) => [{ ...o.labels, state: name }, census.services.get(o.s.id)?.[n] ?? 0] as Sample)));
  f.add('xvs_service_scheduler_table_slots', 'gauge', 'Slots of the service\'s scheduler table.',
    svcRows.map((o) => [{ ...o.labels, scheduler: o.s.scheduler }, o.s.tableSize]));

  traffic(f, 'real', realRows);
  f.add('xvs_real_info', 'gauge', 'Each real server of each service, with its family and forwarding method; always 1.',
    realRows.map((o) => [{ ...o.labels, family: familyLabel(o.r!.addr), forward: o.r!.fwd }, 1]));
  f.add('xvs_real_weight', 'gauge', 'The real server\'s weight (0: quiesced, no new connections).', realRows.map((o) => [o.labels, o.r!.weight]));
  f.add('xvs_real_overloaded', 'gauge', '1 while the real server is over its upper threshold (-x) and out of the scheduler table.',
    realRows.map((o) => [o.labels, o.r!.overloaded ? 1 : 0]));
  f.add('xvs_real_active_connections', 'gauge', 'Live flows in state ESTABLISHED (ipvsadm -L ActiveConn).',
    realRows.map((o) => [o.labels, census.reals.get(o.r!.id)?.active ?? 0]));
  f.add('xvs_real_inactive_connections', 'gauge', 'Live flows in any other state (ipvsadm -L InActConn).',
    realRows.map((o) => [o.labels, census.reals.get(o.r!.id)?.inactive ?? 0]));
  f.add('xvs_real_persistent_connections', 'gauge', 'Live persistence templates naming the real server (ipvsadm -L --persistent-conn).',
    realRows.map((o) => [o.labels, census.templates.get(o.r!.id) ?? 0]));
  f.add('xvs_real_scheduler_slots', 'gauge', 'Slots of the service\'s scheduler table that name the real server: its share of new flows.',
    realRows.map((o) => [o.labels, census.slots.get(o.s.id)?.get(o.r!.id) ?? 0]));
  f.add('xvs_real_nexthop_resolved', 'gauge', '1 while the real server\'s next hop (interface and MACs) is cached for the dataplane; 0: its packets ask the FIB, which drops them while the neighbour is unresolved.',
    realRows.map((o) => [o.labels, (dp.nexthops.get(o.r!.id)?.ifindex ?? 0) !== 0 ? 1 : 0]));
  f.add('xvs_fullnat_local_ports_in_use', 'gauge', 'FULLNAT local ports held by live flows, by real server and local address (each pair has the ports 1024-65535).',
    realRows.flatMap((o) => [...(census.fullnatPorts.get(o.r!.id) ?? [])].sort(([a], [b]) => a.localeCompare(b))
      .map(([laddr, n]) => [{ ...o.labels, laddr }, n] as Sample)));

  const counters = countersView(dp);
  const verdicts: Sample[] = [];
  const events: Sample[] = [];
  for (const [name, kind] of Object.entries(COUNTER_KINDS)) {
    const n = counters[name] ?? 0;
    if (kind.kind === 'verdict') verdicts.push([{ action: kind.action, reason: name }, n]);
    else if (kind.kind === 'event') events.push([{ event: name }, n]);
  }
  f.add('xvs_dataplane_frames_total', 'counter', 'Every frame the XDP program saw.', [[{}, counters.rx ?? 0]]);
  f.add('xvs_dataplane_packets_total', 'counter', 'Frames by how the dataplane ended them (forward, pass to the kernel, drop, an ICMP answer of its own, a helper error) and why: the xvs_counters entry.', verdicts);
  f.add('xvs_dataplane_events_total', 'counter', 'Things the dataplane did on the way (a flow confirmed, a next hop not cached, a NAT reply translated, a TOA added, ...): the xvs_counters entry.', events);

  const maps: [string, number, number][] = [
    ['xvs_services', model.services.size, dp.services.raw.maxEntries],
    ['xvs_reals', census.realSlots, dp.reals.raw.maxEntries],
    ...[...census.tables].map(([name, t]): [string, number, number] => [name, t.entries, t.max]),
  ];
  f.add('xvs_map_entries', 'gauge', 'Entries a map holds (the flow, reply and persistence tables: expired entries not yet evicted included; xvs_reals: slots of live and deleted real servers).',
    maps.map(([map, n]) => [{ map }, n]));
  f.add('xvs_map_max_entries', 'gauge', 'Entries a map can hold.', maps.map(([map, , max]) => [{ map }, max]));
  f.add('xvs_map_live_entries', 'gauge', 'Entries of the flow, reply and persistence tables whose timeout has not run out.',
    [...census.tables].map(([map, t]) => [{ map }, t.live]));

  f.add('xvs_scheduler_ticks_total', 'counter', 'Ticks that counted connections and re-planned dynamic schedulers or thresholds.', [[{}, i.activity.ticks]]);
  f.add('xvs_scheduler_tick_seconds_total', 'counter', 'Time those ticks took.', [[{}, i.activity.tickSeconds]]);
  f.add('xvs_scheduler_table_publishes_total', 'counter', 'Scheduler tables written to the dataplane, by what asked: a tick\'s re-plan or a change of configuration.',
    [[{ trigger: 'tick' }, i.activity.publishes.tick], [{ trigger: 'change' }, i.activity.publishes.change]]);
  f.add('xvs_nexthops_unresolved', 'gauge', 'Real-server addresses whose next hop is not known (xvs status unresolvedNexthops).', [[{}, i.unresolved]]);
  f.add('xvs_census_age_seconds', 'gauge', 'Age of the flow-table census behind the flow, connection, slot and port figures.', [[{}, (i.now - census.at) / 1000]]);
  f.add('xvs_census_duration_seconds', 'gauge', 'How long that census took to walk the tables.', [[{}, census.seconds]]);
  return f.list;
}
