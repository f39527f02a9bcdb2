import { XvsError } from '../errors.js';
import { addr16ToIp, emptySlot } from '../maps/codec.js';
import * as C from '../maps/codecs.js';
import { mapFromId } from '../maps/map.js';
import { CFG_F, CONN_F, CONN_STATE, FAMILY, FWD, LOOKUP, NAT_F, REAL_F, SLOT, SVC_F } from '../maps/abi.js';
import type { CounterName } from '../maps/counters.js';
import { fresh } from '../daemon/conn-count.js';
import type { Dataplane } from '../daemon/dataplane.js';
import { familyOf } from '../daemon/addr.js';
import { natRealSlot, slotOf } from '../schedulers/hash.js';
import { schedulerByCode } from '../schedulers/registry.js';
import { svcKeyOf } from '../daemon/map-writer.js';
import { fwmarkOf } from './fwmark.js';
import { clientHash, closing, confirms, isSyn, persistAddr, takesNew, TCP_FLAG, twoWay } from './rules.js';

// `xvs explain`: what the director would do with one packet now, and why,
// read from its maps in the order the dataplane reads them (xvs_xdp in
// bpf/xvs.c: the NAT reply stage, then xvs_flow and xvs_flow_more in
// flow.h, the pick in sched.h, the method's header, the next hop in
// nexthop.h). Nothing is written: a sequence scheduler's counter is read,
// not taken, so the answer is "the next new flow gets ...".

export type ExplainMaps = Pick<Dataplane, 'services' | 'reals' | 'conns' | 'newFlows' | 'persist' | 'schedTables' | 'schedPos' |
  'nexthops' | 'laddrs' | 'svcLaddrs' | 'nats' | 'newReplies' | 'natRealSlots' | 'config' | 'jiffies' | 'fwmarkRules'>;

export interface Endpoint { addr: string; port: number }

export interface ExplainQuery {
  proto: 'tcp' | 'udp';
  client: Endpoint;
  vip: Endpoint;
  /** TCP flags (TCP_FLAG bits); absent: an ACK when a live flow holds the tuple, else a SYN. */
  flags?: number;
  /** The interface the packet arrives on; absent: not known, so XDP_TX and XDP_REDIRECT cannot be told apart. */
  ingress?: { ifindex: number; name: string };
  /** Interface names by index, for the next hop. */
  ifname?: (ifindex: number) => string | undefined;
}

export type Verdict = 'XDP_TX' | 'XDP_REDIRECT' | 'XDP_TX or XDP_REDIRECT' | 'XDP_PASS' | 'XDP_DROP' | 'FIB decides';

export interface FlowEntryView {
  table: 'xvs_conns' | 'xvs_new_flows';
  realId: number;
  real?: string;
  state: string;
  ageSeconds: number;
  expiresInSeconds: number;
  live: boolean;
  generation: { entry: number; slot: number; valid: boolean };
}

export interface RealInfo {
  id: number;
  addr: string;
  port: number;
  family: 'ipv4' | 'ipv6';
  fwd: 'dr' | 'tun' | 'nat' | 'fullnat';
  weight: number;
  gen: number;
  removed: boolean;
  overloaded: boolean;
}

export interface Explanation {
  packet: { proto: 'tcp' | 'udp'; family: 'ipv4' | 'ipv6'; client: string; vip: string; flags: string[]; ipLen: number; ingress?: string };
  /** What was looked at, in order, each in a sentence. */
  steps: { stage: string; says: string }[];
  flows: FlowEntryView[];
  service: { name: string; id: number; scheduler: string; lookup: string; tableSize: number; persistent?: number } | null;
  persistence?: { client: string; template: { real: string; realId: number; ageSeconds: number; expiresInSeconds: number; usable: boolean } | null };
  scheduler?: { lookup: string; tableSize: number; slot: number; realId: number; position?: number };
  real?: RealInfo;
  nexthop?: { cached: true; ifindex: number; interface?: string; dmac: string; smac: string; mtu: number } | { cached: false };
  /** The packet's addresses after the director's rewrite (NAT, FULLNAT, a NAT reply). */
  rewrite?: { src: string; dst: string; note?: string };
  action: 'forward' | 'pass' | 'drop' | 'answer';
  verdict: Verdict;
  /** xvs_counters entries that move by one. */
  counters: CounterName[];
  /** What the service's and real server's statistics gain (xvs_svc_stats, xvs_real_stats). */
  stats?: { serviceId: number; realId: number; conns: number; inpkts: number; inbytes: number } | { serviceId: number; realId: number; outpkts: number; outbytes: number };
  /** How the flow tables change. */
  entry?: string;
}

const STATE_NAME = new Map<number, string>(Object.entries(CONN_STATE).filter(([n]) => n !== 'max').map(([n, v]) => [v, n.toUpperCase()]));
const FWD_NAME = new Map<number, RealInfo['fwd']>(Object.entries(FWD).map(([n, v]) => [v, n as RealInfo['fwd']]));
const LOOKUP_NAME = new Map<number, string>(Object.entries(LOOKUP).map(([n, v]) => [v, n]));
const show = (e: Endpoint): string => (e.addr.includes(':') ? `[${e.addr}]:${e.port}` : `${e.addr}:${e.port}`);
const famName = (f: number): 'ipv4' | 'ipv6' => (f === FAMILY.inet6 ? 'ipv6' : 'ipv4');
const flagNames = (f: number): string[] => Object.entries(TCP_FLAG).filter(([, b]) => (f & b) !== 0).map(([n]) => n.toUpperCase());

class Explainer {
  readonly e: Explanation;
  readonly now: number;
  readonly hz: number;
  readonly timeout: number[];
  readonly tcp: boolean;
  readonly family: number;
  readonly key: C.ConnKey;
  readonly flags: number;
  readonly syn: boolean;

  constructor(readonly dp: ExplainMaps, readonly q: ExplainQuery) {
    const cfg = dp.config.get(0);
    if (!cfg || cfg.hz === 0) throw new XvsError('NO_PINS', 'the director\'s configuration (xvs_config) is empty: no xvsd has loaded this dataplane');
    this.now = dp.jiffies();
    this.hz = cfg.hz;
    this.timeout = cfg.timeout;
    this.family = familyOf(q.vip.addr);
    if (familyOf(q.client.addr) !== this.family) throw new XvsError('BAD_ADDRESS', `client ${q.client.addr} and VIP ${q.vip.addr} are of different families`);
    this.tcp = q.proto === 'tcp';
    this.key = { saddr: q.client.addr, daddr: q.vip.addr, sport: q.client.port, dport: q.vip.port, proto: this.tcp ? 6 : 17, family: this.family };
    const anyLive = [dp.conns.get(this.key), dp.newFlows.get(this.key)].some((c) => c && this.#live(c));
    this.flags = this.tcp ? (q.flags ?? (anyLive ? TCP_FLAG.ack : TCP_FLAG.syn)) : 0;
    this.syn = isSyn(this.tcp, this.flags);
    const ipLen = (this.family === FAMILY.inet6 ? 40 : 20) + (this.tcp ? 20 : 8);
    this.e = {
      packet: {
        proto: q.proto, family: famName(this.family), client: show(q.client), vip: show(q.vip), flags: flagNames(this.flags), ipLen,
        ...(q.ingress ? { ingress: q.ingress.name } : {}),
      },
      steps: [], flows: [], service: null, action: 'pass', verdict: 'XDP_PASS', counters: ['rx'],
    };
  }

  say(stage: string, says: string): void {
    this.e.steps.push({ stage, says });
  }

  #live(c: { last_seen: number; state: number }): boolean {
    return fresh(this.now, c.last_seen, this.timeout[c.state] ?? 0, this.hz);
  }

  real(id: number): C.Real | null {
    const raw = this.dp.reals.raw.lookup(C.u32Codec.encode(id));
    return raw && !emptySlot(C.real, raw) ? C.real.decode(raw) : null;
  }

  realInfo(id: number, r: C.Real): RealInfo {
    return {
      id, addr: r.addr, port: r.port, family: famName(r.family), fwd: FWD_NAME.get(r.fwd) ?? 'dr', weight: r.weight, gen: r.gen,
      removed: (r.flags & REAL_F.removed) !== 0, overloaded: (r.flags & REAL_F.overload) !== 0,
    };
  }

  end(action: Explanation['action'], verdict: Verdict, counter?: CounterName): Explanation {
    this.e.action = action;
    this.e.verdict = verdict;
    if (counter) this.e.counters.push(counter);
    return this.e;
  }

  run(): Explanation {
    const pkt = this.e.packet;
    this.say('packet', `${pkt.proto.toUpperCase()} ${pkt.client} -> ${pkt.vip}${this.tcp ? ` [${pkt.flags.join(',')}]` : ''}, ${pkt.ipLen} bytes of IP${this.q.ingress ? `, arriving on ${this.q.ingress.name}` : ''}`);
    const reply = this.natReply();
    if (reply) return reply;

    // xvs_flow: anything but a SYN looks for its confirmed flow first.
    if (!this.syn) {
      const c = this.entry('xvs_conns', this.dp.conns.get(this.key));
      if (c.rc === 'hit') return this.follow(c.c!, 'xvs_conns', c.r!, false);
    }
    // xvs_flow_more: a new flow waiting for its confirmation.
    const u = this.entry('xvs_new_flows', this.dp.newFlows.get(this.key));
    if (u.rc === 'hit') return this.follow(u.c!, 'xvs_new_flows', u.r!, confirms(this.tcp, this.flags));
    if (this.syn) {
      const c = this.entry('xvs_conns', this.dp.conns.get(this.key));
      if (c.rc === 'hit') return this.follow(c.c!, 'xvs_conns', c.r!, false);
      if (c.rc === 'reschedule') this.say('flow', 'a SYN on that entry starts a new connection on its tuple (IPVS\'s conn_reuse_mode): the entry is deleted and the SYN scheduled afresh');
    }
    if (this.e.flows.length === 0) this.say('flow', 'no entry for this tuple in xvs_conns or xvs_new_flows');

    // xvs_service (sched.h): the VIP and port, else, while a port-zero service exists, the VIP's every-port service.
    const svcKey = { addr: this.q.vip.addr, port: this.q.vip.port, proto: this.key.proto, family: this.family };
    let svc = this.dp.services.get(svcKey);
    const anyPort = (this.dp.config.get(0)!.flags & CFG_F.any_port) !== 0;
    if (!svc && anyPort) svc = this.dp.services.get({ ...svcKey, port: 0 });
    // Then, while a fwmark rule exists, the service of the mark the rules give (fwmark.h).
    const byMark = !svc && (this.dp.config.get(0)!.flags & CFG_F.fwmark) !== 0;
    const mark = byMark ? fwmarkOf(this.dp.fwmarkRules, this.family, this.q.vip.addr, this.key.proto, this.q.vip.port) : undefined;
    if (mark) {
      const v6 = this.family === FAMILY.inet6;
      svc = this.dp.services.get(svcKeyOf({ proto: 'tcp', addr: v6 ? '::' : '0.0.0.0', port: 0, fwmark: mark.mark }));
      this.say('service', `no address/port service; the fwmark rules give mark ${mark.mark} (${mark.rule})${svc ? '' : `, and no fwmark ${mark.mark}${v6 ? ' IPv6' : ''} service exists`}`);
    }
    if (!svc) {
      this.say('service', `no service ${this.q.proto} ${show(this.q.vip)}${anyPort ? ` nor ${this.q.proto} ${show({ ...this.q.vip, port: 0 })}` : ''}${mark ? ` nor fwmark ${mark.mark}` : byMark ? ' and no fwmark rule matches' : ''} in xvs_services: the packet goes to the director's own stack, untouched`);
      return this.end('pass', 'XDP_PASS', 'pass_no_svc');
    }
    const svcPort = mark ? 0 : this.dp.services.get(svcKey) ? this.q.vip.port : 0;
    const sched = schedulerByCode(svc.sched)?.name ?? `code ${svc.sched}`;
    const persistent = (svc.flags & SVC_F.persistent) !== 0;
    this.e.service = {
      name: mark ? `fwmark ${mark.mark}` : `${this.q.proto} ${show({ ...this.q.vip, port: svcPort })}`, id: svc.id, scheduler: sched,
      lookup: LOOKUP_NAME.get(svc.lookup) ?? String(svc.lookup), tableSize: svc.tbl_size,
      ...(persistent ? { persistent: svc.persist_timeout } : {}),
    };
    this.say('service', `${this.e.service.name} (id ${svc.id})${svcPort === 0 && !mark ? ', every port of the VIP' : ''}: scheduler ${sched}, a table of ${svc.tbl_size} slots indexed by ${this.#lookupWords(svc.lookup)}${persistent ? `, persistent ${svc.persist_timeout} s` : ''}${(svc.flags & SVC_F.ops) !== 0 ? ', one-packet scheduling (-o)' : ''}`);

    if (this.tcp && !this.syn) return this.stray(svc);
    return this.newFlow(svc);
  }

  #lookupWords(l: number): string {
    if (l === LOOKUP.seq) return 'a shared sequence counter';
    if (l === LOOKUP.hash_src) return 'the hash of the client address';
    return l === LOOKUP.hash_src_port ? 'the hash of the client address and port' : 'the hash of the destination address';
  }

  /** The NAT reply stage (xvs_nat_reply in nat.h), which runs before the flow tables while some real server is NAT or FULLNAT. */
  natReply(): Explanation | undefined {
    const cfg = this.dp.config.get(0)!;
    if ((cfg.flags & CFG_F.two_way) === 0) return undefined;
    const slots = this.dp.natRealSlots;
    if (!slots.get(natRealSlot(this.q.client.addr, slots.raw.maxEntries))) return undefined;
    const n = this.dp.nats.get(this.key) ?? this.dp.newReplies.get(this.key);
    if (!n || !this.#live(n)) {
      this.say('nat-reply', 'the source may be a NAT/FULLNAT real server (its slot of xvs_nat_real_slots holds one), but no live reply entry has this tuple: on down the chain');
      return undefined;
    }
    const fullnat = (n.flags & NAT_F.fullnat) !== 0;
    const client = show({ addr: n.caddr, port: n.cport });
    const vip = show({ addr: n.vaddr, port: n.vport });
    this.e.rewrite = fullnat ? { src: vip, dst: client } : { src: vip, dst: show(this.q.vip) };
    this.say('nat-reply', `a reply of a ${fullnat ? 'FULLNAT' : 'NAT'} flow (real id ${n.real_id}): it leaves as ${this.e.rewrite.src} -> ${this.e.rewrite.dst}, TTL less one, the way the client's packets came (ifindex ${n.ifindex})`);
    this.e.stats = { serviceId: n.svc_id, realId: n.real_id, outpkts: 1, outbytes: this.e.packet.ipLen };
    this.e.counters.push('nat_reply');
    return this.send(n.ifindex);
  }

  /** xvs_entry (flow.h) on one table's entry for the tuple. */
  entry(table: FlowEntryView['table'], c: C.Conn | null): { rc: 'none' | 'miss' | 'reschedule' | 'hit'; c?: C.Conn; r?: C.Real } {
    if (!c) return { rc: 'none' };
    const r = this.real(c.real_id);
    const age = (this.now - c.last_seen) / this.hz;
    const t = this.timeout[c.state] ?? 0;
    const view: FlowEntryView = {
      table, realId: c.real_id, ...(r ? { real: show(r) } : {}), state: STATE_NAME.get(c.state) ?? String(c.state),
      ageSeconds: Math.round(age * 10) / 10, expiresInSeconds: Math.round((t - age) * 10) / 10, live: this.#live(c),
      generation: { entry: c.real_gen, slot: r?.gen ?? 0, valid: r !== null && r.gen === c.real_gen },
    };
    this.e.flows.push(view);
    const where = `${table}: a flow to ${view.real ?? `real id ${c.real_id}`} in state ${view.state}, last packet ${view.ageSeconds} s ago`;
    if (!view.live) {
      this.say('flow', `${where}, expired ${-view.expiresInSeconds} s ago: not used`);
      return { rc: 'miss' };
    }
    if (!view.generation.valid) {
      this.say('flow', `${where}, of generation ${c.real_gen} where real id ${c.real_id} is now at ${view.generation.slot} (its slot went to another real server): not used`);
      return { rc: 'miss' };
    }
    if (this.syn && (closing(c.state) || !takesNew(r, c.real_gen, c.svc_id))) {
      this.say('flow', `${where}, ${closing(c.state) ? 'closing' : 'its real server takes no new connections (deleted or weight 0)'}`);
      return { rc: 'reschedule', c, r: r! };
    }
    this.say('flow', `${where}, expires in ${view.expiresInSeconds} s, generation ${c.real_gen} still the real server's${(r!.flags & REAL_F.removed) !== 0 ? ' (the real server was deleted: its flows go on until they expire)' : ''}`);
    return { rc: 'hit', c, r: r! };
  }

  /** A packet of a known flow: its real server, whatever the scheduler says now. */
  follow(c: C.Conn, table: FlowEntryView['table'], r: C.Real, promote: boolean): Explanation {
    this.e.real = this.realInfo(c.real_id, r);
    if (promote) {
      this.e.entry = 'the new flow is confirmed: its entry moves from xvs_new_flows to xvs_conns';
      this.e.counters.push('promoted');
    } else {
      this.e.entry = `the entry in ${table} stays (its clock refreshed at most once a second)`;
    }
    return this.forward(c.svc_id, c.real_id, r, false, { laddrId: c.laddr_id, lport: c.lport });
  }

  /** xvs_stray (flow.h): a TCP segment of no flow. */
  stray(svc: C.Svc): Explanation {
    if (svc.lookup !== LOOKUP.seq) {
      const s = this.slot(svc);
      const r = s && this.real(s.rid);
      if (s && r && r.svc_id === svc.id && (r.flags & REAL_F.removed) === 0 && !twoWay(r.fwd)) {
        this.say('stray', `a TCP segment of no flow on a hash-scheduled service: the table's slot ${s.slot} names its owner, and it goes there without an entry (sloppy, as IPVS's sloppy_tcp)`);
        this.e.counters.push('sloppy');
        this.e.real = this.realInfo(s.rid, r);
        this.e.entry = 'no entry is made';
        return this.forward(svc.id, s.rid, r, false);
      }
    }
    this.say('stray', svc.lookup === LOOKUP.seq
      ? 'a TCP segment of no flow on a sequence-scheduled service: nothing says where it belongs, so it is dropped (never left to the director\'s stack, which would answer RST)'
      : 'a TCP segment of no flow whose slot names no usable DR/TUN real server: dropped');
    return this.end('drop', 'XDP_DROP', 'drop_no_conn');
  }

  /** xvs_schedule (sched.h): the slot and the real id in it, without taking the sequence. */
  slot(svc: C.Svc): { slot: number; rid: number; position?: number } | undefined {
    const size = svc.tbl_size;
    if (size === 0) return undefined;
    const idBuf = this.dp.schedTables.lookup(C.u32Codec.encode(svc.id));
    if (!idBuf) return undefined;
    let slot: number;
    let position: number | undefined;
    if (svc.lookup === LOOKUP.seq) {
      const pos = this.dp.schedPos.lookup(C.u32Codec.encode(svc.id));
      const n = pos ? BigInt(C.u64Codec.decode(pos)) : 0n;
      position = Number(n);
      slot = Number(n % BigInt(size));
    } else {
      slot = svc.lookup === LOOKUP.hash_src_port
        ? slotOf(this.q.client.addr, size, this.q.client.port)
        : slotOf(svc.lookup === LOOKUP.hash_src ? this.q.client.addr : this.q.vip.addr, size);
    }
    const inner = mapFromId(C.u32Codec.decode(idBuf));
    try {
      const v = inner.lookup(C.u32Codec.encode(slot));
      if (!v) return undefined;
      const rid = C.u32Codec.decode(v);
      this.e.scheduler = { lookup: LOOKUP_NAME.get(svc.lookup) ?? String(svc.lookup), tableSize: size, slot, realId: rid, ...(position !== undefined ? { position } : {}) };
      return { slot, rid, ...(position !== undefined ? { position } : {}) };
    } finally {
      inner.close();
    }
  }

  /** xvs_pick (sched.h) and the rest of xvs_flow_more for a new flow. */
  newFlow(svc: C.Svc): Explanation {
    let rid: number | undefined;
    let r: C.Real | null = null;
    if ((svc.flags & SVC_F.persistent) !== 0) {
      const key = { caddr: addr16ToIp(persistAddr(this.q.client.addr, svc.persist_mask), this.family), svc_id: svc.id, family: this.family };
      const t = this.dp.persist.get(key);
      if (!t) {
        this.e.persistence = { client: key.caddr, template: null };
        this.say('persistence', `no template for client ${key.caddr} in xvs_persist: the scheduler picks, and a template is written`);
      } else {
        const tr = this.real(t.real_id);
        const age = (this.now - t.last_seen) / this.hz;
        const live = fresh(this.now, t.last_seen, svc.persist_timeout, this.hz);
        const usable = live && takesNew(tr, t.real_gen, svc.id);
        this.e.persistence = {
          client: key.caddr,
          template: { real: tr ? show(tr) : `real id ${t.real_id}`, realId: t.real_id, ageSeconds: Math.round(age * 10) / 10, expiresInSeconds: Math.round((svc.persist_timeout - age) * 10) / 10, usable },
        };
        const what = `template for client ${key.caddr}: ${this.e.persistence.template!.real}, last used ${this.e.persistence.template!.ageSeconds} s ago`;
        if (usable) {
          rid = t.real_id;
          r = tr;
          this.say('persistence', `${what}: the new flow goes there (the template refreshed)`);
        } else {
          this.say('persistence', `${what}, ${!live ? 'expired' : 'naming a real server that takes no new connections (deleted, quiesced or reused)'}: the scheduler picks, and the template is rewritten`);
        }
      }
    }
    if (rid === undefined) {
      const s = this.slot(svc);
      if (!s) {
        this.say('scheduler', 'the service\'s table is empty: no real server');
        return this.unreachable();
      }
      rid = s.rid;
      r = this.real(s.rid);
      const owner = r ? show(r) : `real id ${s.rid}`;
      this.say('scheduler', svc.lookup === LOOKUP.seq
        ? `the next new flow gets slot ${s.slot} of ${svc.tbl_size} (xvs_sched_pos is at ${s.position}): ${owner} (id ${s.rid})`
        : `slot ${s.slot} of ${svc.tbl_size} by ${this.#lookupWords(svc.lookup)} (${svc.lookup === LOOKUP.hash_dst ? this.q.vip.addr : svc.lookup === LOOKUP.hash_src_port ? show(this.q.client) : this.q.client.addr}): ${s.rid === SLOT.none ? 'refused (its real server is unavailable and the service has no fallback flag)' : `${owner} (id ${s.rid})`}`);
      if (s.rid === SLOT.none) return this.unreachable();
      if (!r || r.svc_id !== svc.id || (r.flags & REAL_F.removed) !== 0) {
        this.say('scheduler', 'that slot names no live real server of this service');
        return this.unreachable();
      }
    }
    this.e.real = this.realInfo(rid, r!);
    // One-packet scheduling (-o): no entry, so the next datagram is scheduled afresh.
    this.e.entry = !this.tcp && (svc.flags & SVC_F.ops) !== 0
      ? 'no entry (one-packet scheduling): the next datagram is scheduled afresh'
      : 'a new entry in xvs_new_flows (it moves to xvs_conns when the client confirms the flow)';
    let lp: { laddrId: number; lport: number } | undefined;
    if (r!.fwd === FWD.fullnat) {
      const la = this.laddrFor(svc, r!);
      if (la === undefined) {
        this.say('fullnat', 'the service has no local address of the real server\'s family: dropped');
        return this.end('drop', 'XDP_DROP', 'fnat_no_laddr');
      }
      lp = { laddrId: la, lport: 0 };
    }
    return this.forward(svc.id, rid, r!, true, lp);
  }

  /** xvs_fnat_open (natconn.h): the first local address of the real server's family from the client's place in the pool. */
  laddrFor(svc: C.Svc, r: C.Real): number | undefined {
    const sl = this.dp.svcLaddrs.get(svc.id);
    if (!sl || sl.count === 0 || sl.count > sl.ids.length) return undefined;
    const h = clientHash(this.q.client.addr, this.q.client.port);
    for (let k = 0; k < sl.count; k++) {
      const id = sl.ids[((h + k) >>> 0) % sl.count]!;
      const raw = this.dp.laddrs.raw.lookup(C.u32Codec.encode(id));
      if (raw && !emptySlot(C.laddr, raw) && C.laddr.decode(raw).family === r.family) return id;
    }
    return undefined;
  }

  unreachable(): Explanation {
    this.say('verdict', `no real server: the director answers ICMP${this.family === FAMILY.inet6 ? 'v6' : ''} port unreachable from the VIP, as IPVS does`);
    return this.end('answer', 'XDP_TX', 'no_real');
  }

  /** The method's header, the next hop and the way out (dr.h, tun.h, nat.h, fullnat.h, nexthop.h). */
  forward(svcId: number, rid: number, r: C.Real, isNew: boolean, fnat?: { laddrId: number; lport: number }): Explanation {
    const info = this.e.real!;
    this.say('real', `${show(r)} (id ${rid}, generation ${r.gen}): ${info.fwd.toUpperCase()}, weight ${r.weight}${info.removed ? ', deleted' : ''}${info.overloaded ? ', overloaded' : ''}`);
    const cross = r.family !== this.family;
    if ((r.fwd === FWD.dr || r.fwd === FWD.nat) && cross) {
      this.say('forward', `${info.fwd.toUpperCase()} needs a real server of the VIP's family: dropped`);
      return this.end('drop', 'XDP_DROP', 'bad_mode');
    }
    // xvs_rport (common.h): a port-zero service's real servers are reached on the packet's port.
    const dst = show({ addr: r.addr, port: r.port || this.q.vip.port });
    if (r.fwd === FWD.nat) {
      this.e.rewrite = { src: show(this.q.client), dst };
      this.say('rewrite', `destination ${show(this.q.vip)} becomes ${dst} (checksums updated); the reply side ${isNew ? 'is opened in xvs_new_replies' : 'is in the reply tables'}`);
    } else if (r.fwd === FWD.fullnat && fnat) {
      const raw = this.dp.laddrs.raw.lookup(C.u32Codec.encode(fnat.laddrId));
      const la = raw && !emptySlot(C.laddr, raw) ? C.laddr.decode(raw) : null;
      if (!la || la.family !== r.family || (cross && !(this.family === FAMILY.inet6 && r.family === FAMILY.inet))) {
        this.say('forward', 'the flow\'s local address is gone or of another family: dropped');
        return this.end('drop', 'XDP_DROP', 'bad_mode');
      }
      const src = isNew ? `${la.family === FAMILY.inet6 ? `[${la.addr}]` : la.addr}:PORT` : show({ addr: la.addr, port: fnat.lport });
      this.e.rewrite = isNew
        ? { src, dst, note: 'a local address and port are allocated at the SYN: the address by the client\'s place in the service\'s pool, the port from a random start in 1024-65535, past the ports live flows hold' }
        : { src, dst };
      this.say('rewrite', `${show(this.q.client)} -> ${show(this.q.vip)} becomes ${src} -> ${dst}${cross ? ' (NAT64: the header is translated to IPv4)' : ''}${isNew ? `; ${this.e.rewrite.note}` : ''}`);
      if (this.tcp && (this.flags & TCP_FLAG.ack) !== 0 && (this.flags & (TCP_FLAG.syn | TCP_FLAG.rst)) === 0) {
        const conn = this.dp.conns.get(this.key) ?? this.dp.newFlows.get(this.key);
        if (conn && (conn.flags & CONN_F.toa_done) === 0) {
          this.say('toa', 'the client\'s address goes in TCP option 254 (TOA), until a data segment carried it');
          this.e.counters.push('toa_added');
        }
      }
    } else if (r.fwd === FWD.tun) {
      this.say('rewrite', `encapsulated in ${r.family === FAMILY.inet6 ? 'IPv6' : 'IPv4'} to ${r.addr} (the inner packet unchanged)`);
    } else {
      this.say('rewrite', 'only the MACs change (the real server holds the VIP)');
    }

    const nh = this.dp.nexthops.get(rid);
    this.e.stats = { serviceId: svcId, realId: rid, conns: isNew ? 1 : 0, inpkts: 1, inbytes: this.e.packet.ipLen };
    if (!nh || nh.ifindex === 0) {
      this.e.nexthop = { cached: false };
      this.say('nexthop', 'no cached next hop (xvs_nexthops ifindex 0): the FIB fallback asks the kernel per packet; a missing route (fib_fail) or an unresolved neighbour (no_neigh) drops it');
      this.e.counters.push('nh_miss');
      this.e.action = 'forward';
      this.e.verdict = 'FIB decides';
      return this.e;
    }
    const name = this.q.ifname?.(nh.ifindex);
    this.e.nexthop = { cached: true, ifindex: nh.ifindex, ...(name ? { interface: name } : {}), dmac: nh.dmac, smac: nh.smac, mtu: nh.mtu };
    this.say('nexthop', `cached: out of ${name ?? `ifindex ${nh.ifindex}`} to ${nh.dmac} from ${nh.smac}, MTU ${nh.mtu}`);
    return this.send(nh.ifindex);
  }

  /** xvs_send (nexthop.h): XDP_TX on the ingress interface, XDP_REDIRECT to another. */
  send(ifindex: number): Explanation {
    const name = this.q.ifname?.(ifindex) ?? `ifindex ${ifindex}`;
    if (!this.q.ingress) {
      this.say('verdict', `forwarded out of ${name}: XDP_TX when the packet came in there, XDP_REDIRECT otherwise`);
      this.e.action = 'forward';
      this.e.verdict = 'XDP_TX or XDP_REDIRECT';
      return this.e;
    }
    if (ifindex === this.q.ingress.ifindex) {
      this.say('verdict', `XDP_TX: back out of ${name}, where it came in`);
      return this.end('forward', 'XDP_TX', 'tx');
    }
    this.say('verdict', `XDP_REDIRECT: out of ${name} (through xvs_tx_ports when xvsd entered it there)`);
    return this.end('forward', 'XDP_REDIRECT', 'redirect');
  }
}

/** What the director would do with this packet now, read from its maps. */
export function explain(dp: ExplainMaps, q: ExplainQuery): Explanation {
  return new Explainer(dp, q).run();
}
