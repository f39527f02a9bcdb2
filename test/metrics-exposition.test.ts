// The text-format writer on its own: what the parser reads back is what was
// written, escapes included, and what the format forbids is refused.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { exposition } from '../src/metrics/exposition.js';
import { Scrape } from './helpers/prom.js';

describe('Prometheus text exposition', () => {
  test('label values and HELP text come back through the parser as written', () => {
    const odd = 'a "quoted" back\\slash\nand a newline';
    const text = exposition([
      { name: 'xvs_test_total', type: 'counter', help: 'help with \\ and\nnewline', samples: [[{ service: 'tcp/[2001:db8::80]:80', note: odd }, 42], [{ service: 'udp/192.0.2.80:53', note: '' }, 2 ** 53 - 1]] },
      { name: 'xvs_test_ratio', type: 'gauge', help: 'a gauge', samples: [[{ k: 'plain' }, 0.25], [{ k: 'nan' }, NaN], [{ k: 'inf' }, Infinity]] },
      { name: 'xvs_test_empty', type: 'gauge', help: 'no samples yet', samples: [] },
    ]);
    const s = new Scrape(text);
    assert.equal(s.value('xvs_test_total', { note: odd }), 42);
    assert.equal(s.value('xvs_test_total', { service: 'udp/192.0.2.80:53' }), 2 ** 53 - 1);
    assert.equal(s.family('xvs_test_total').help, 'help with \\ and\nnewline');
    assert.equal(s.value('xvs_test_ratio', { k: 'plain' }), 0.25);
    assert.ok(Number.isNaN(s.value('xvs_test_ratio', { k: 'nan' })));
    assert.equal(s.value('xvs_test_ratio', { k: 'inf' }), Infinity);
    assert.equal(s.family('xvs_test_empty').metrics.length, 0);
    assert.match(text, /^# HELP xvs_test_total help with \\\\ and\\nnewline\n# TYPE xvs_test_total counter\n/);
    assert.ok(text.endsWith('\n'));
  });

  test('what the format forbids is refused', () => {
    const bad: [string, Parameters<typeof exposition>[0]][] = [
      ['a counter without _total', [{ name: 'xvs_x', type: 'counter', help: 'h', samples: [] }]],
      ['a bad metric name', [{ name: 'xvs-x', type: 'gauge', help: 'h', samples: [] }]],
      ['a bad label name', [{ name: 'xvs_x', type: 'gauge', help: 'h', samples: [[{ 'a-b': '1' }, 1]] }]],
      ['a reserved label name', [{ name: 'xvs_x', type: 'gauge', help: 'h', samples: [[{ __name__: '1' }, 1]] }]],
      ['one family twice', [{ name: 'xvs_x', type: 'gauge', help: 'h', samples: [] }, { name: 'xvs_x', type: 'gauge', help: 'h', samples: [] }]],
      ['one series twice', [{ name: 'xvs_x', type: 'gauge', help: 'h', samples: [[{ a: '1' }, 1], [{ a: '1' }, 2]] }]],
    ];
    for (const [what, families] of bad) assert.throws(() => exposition(families), Error, what);
  });
});
