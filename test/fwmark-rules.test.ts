// The fwmark rules' control-plane side without a kernel: the protocol's
// checks of fwmark keys and rules, the model's canonical form and refusals,
// and the trie's layout (each prefix's own rules, then the covering
// prefixes' longest first), read back as a restart reads it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseRequest, type FwmarkRule } from '../src/control/protocol.js';
import { addFwmarkRule, canonicalRule, compileFwmarkRules, delFwmarkRule, rulesOfEntry, sortedRules } from '../src/daemon/fwmark-rules.js';
import { svcKeyOf } from '../src/daemon/map-writer.js';
import { fwmarkRuleLine } from '../src/cli/fwmark-format.js';
import { parseFwmarkCommand } from '../src/cli/fwmark-args.js';
import * as C from '../src/maps/codecs.js';

const req = (o: unknown) => () => parseRequest(JSON.stringify(o));

describe('fwmark rules: protocol, model and trie layout', () => {
  it('the protocol takes a fwmark key only in its one form, and rules within their ranges', () => {
    assert.deepEqual(parseRequest(JSON.stringify({ op: 'del-service', key: { proto: 'tcp', addr: '::', port: 0, fwmark: 4294967295 } })),
      { op: 'del-service', key: { proto: 'tcp', addr: '::', port: 0, fwmark: 4294967295 } });
    assert.throws(req({ op: 'del-service', key: { proto: 'tcp', addr: '0.0.0.0', port: 0, fwmark: 0 } }), { code: 'BAD_ARGUMENT' });
    assert.throws(req({ op: 'del-service', key: { proto: 'tcp', addr: '192.0.2.1', port: 0, fwmark: 1 } }), { code: 'BAD_ARGUMENT' });
    assert.throws(req({ op: 'del-service', key: { proto: 'udp', addr: '0.0.0.0', port: 0, fwmark: 1 } }), { code: 'BAD_ARGUMENT' });
    const ok = { mark: 1, addr: '198.51.100.0', len: 24, proto: 'tcp', dport: [80, 90] };
    assert.deepEqual(parseRequest(JSON.stringify({ op: 'add-fwmark-rule', rule: ok })), { op: 'add-fwmark-rule', rule: ok });
    for (const bad of [{ ...ok, len: 33 }, { ...ok, addr: '2001:db8::', len: 129 }, { ...ok, dport: [90, 80] }, { ...ok, proto: undefined },
      { ...ok, proto: 'sctp' }, { ...ok, mark: 0 }, { ...ok, dport: [0, 65536] }]) {
      assert.throws(req({ op: 'add-fwmark-rule', rule: bad }), { code: 'BAD_ARGUMENT' }, JSON.stringify(bad));
    }
    assert.throws(req({ op: 'batch', requests: [{ op: 'list-fwmark-rules' }] }), /cannot be batched/);
  });

  it('a fwmark service key is proto 0, port 0 and the mark in addr[0], of its family', () => {
    assert.deepEqual(svcKeyOf({ proto: 'tcp', addr: '0.0.0.0', port: 0, fwmark: 0x01020304 }), { addr: '1.2.3.4', port: 0, proto: 0, family: 2 });
    assert.equal(C.svcKey.encode(svcKeyOf({ proto: 'tcp', addr: '::', port: 0, fwmark: 7 })).toString('hex'), `00000007${'0'.repeat(24)}0000000a`);
  });

  it('host bits are cleared, 0:65535 is no port match, one rule per set of matches', () => {
    assert.deepEqual(canonicalRule({ mark: 1, addr: '198.51.100.77', len: 25, proto: 'udp', dport: [0, 65535] }), { mark: 1, addr: '198.51.100.0', len: 25, proto: 'udp' });
    assert.deepEqual(canonicalRule({ mark: 1, addr: '2001:db8:ab:cd::1', len: 36 }), { mark: 1, addr: '2001:db8::', len: 36 });
    const one = addFwmarkRule([], { mark: 1, addr: '198.51.100.0', len: 24 }, 8);
    assert.throws(() => addFwmarkRule(one, { mark: 2, addr: '198.51.100.9', len: 24 }, 8), { code: 'FWMARK_RULE_EXISTS' });
    assert.throws(() => delFwmarkRule(one, { mark: 2, addr: '198.51.100.0', len: 24 }), { code: 'NO_FWMARK_RULE' });
    assert.deepEqual(delFwmarkRule(one, { mark: 1, addr: '198.51.100.5', len: 24 }), []);
    assert.throws(() => addFwmarkRule(one, { mark: 1, addr: '198.51.101.0', len: 24 }, 1), { code: 'CAPACITY' });
  });

  it('each prefix lists its own rules, then the covering prefixes\' (longest first), and nothing of other prefixes', () => {
    const rules: FwmarkRule[] = [
      { mark: 1, addr: '10.0.0.0', len: 8, proto: 'tcp' },
      { mark: 2, addr: '10.1.0.0', len: 16, proto: 'tcp', dport: [80, 80] },
      { mark: 3, addr: '10.1.2.0', len: 24, proto: 'udp' },
      { mark: 4, addr: '10.1.0.0', len: 16, proto: 'udp' },
      { mark: 5, addr: '10.2.0.0', len: 16 },
      { mark: 6, addr: '::', len: 0 },
    ];
    const t = compileFwmarkRules(rules, 64);
    const marks = (name: string) => { const e = t.get(name)!; return [e.value.own, e.value.rules.slice(0, e.value.count).map((r) => r.mark)]; };
    assert.deepEqual(marks('10.1.2.0/24'), [1, [3, 2, 4, 1]]);
    assert.deepEqual(marks('10.1.0.0/16'), [2, [2, 4, 1]]);
    assert.deepEqual(marks('10.2.0.0/16'), [1, [5, 1]]);
    assert.deepEqual(marks('::/0'), [1, [6]], 'no IPv4 prefix covers an IPv6 one');
    assert.deepEqual(t.get('10.1.2.0/24')!.key, { prefixlen: 56, family: 2, addr: '10.1.2.0' });
    assert.deepEqual(t.get('10.1.0.0/16')!.value.rules[0], { mark: 2, dport_min: 80, dport_max: 80, proto: 6 });
    // A restart reads each prefix's own rules back: the same set, in -S's order.
    const back = [...t.values()].flatMap((e) => rulesOfEntry({ key: C.fwmarkKey.decode(C.fwmarkKey.encode(e.key)), value: C.fwmarkRules.decode(C.fwmarkRules.encode(e.value)) }));
    assert.deepEqual(sortedRules(back), sortedRules(rules));
    assert.deepEqual(sortedRules(rules).map(fwmarkRuleLine), [
      '--fwmark-rule 1 -d 10.0.0.0/8 -p tcp', '--fwmark-rule 2 -d 10.1.0.0/16 -p tcp --dport 80', '--fwmark-rule 4 -d 10.1.0.0/16 -p udp',
      '--fwmark-rule 3 -d 10.1.2.0/24 -p udp', '--fwmark-rule 5 -d 10.2.0.0/16', '--fwmark-rule 6 -d ::/0',
    ]);
    // What -S writes reads back as the same rule.
    for (const r of sortedRules(rules)) assert.deepEqual(parseFwmarkCommand(fwmarkRuleLine(r).split(' ')), { op: 'add-fwmark-rule', rule: r });
  });
});
