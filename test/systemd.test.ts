// The systemd unit as scripts/install-systemd.sh installs it: this
// checkout's paths, the interface in /etc/default/xvsd, a command line xvsd
// accepts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { packageRoot } from '../src/paths.js';

test('install-systemd.sh writes the unit for this checkout and keeps an existing /etc/default/xvsd', () => {
  const dest = mkdtempSync(path.join(tmpdir(), 'xvs-systemd-'));
  try {
    const run = () => execFileSync('bash', [path.join(packageRoot, 'scripts', 'install-systemd.sh'), 'eth7', '--no-start'],
      { env: { ...process.env, DESTDIR: dest }, encoding: 'utf8' });
    assert.match(run(), /installed for/);
    const unit = readFileSync(path.join(dest, 'etc/systemd/system/xvsd.service'), 'utf8');
    const exec = /^ExecStart=(.*)$/m.exec(unit)?.[1];
    assert.equal(exec, `/usr/bin/env node ${packageRoot}/dist/src/cli/xvsd.js --interface \${XVSD_INTERFACE} $XVSD_OPTS`);
    assert.ok(existsSync(path.join(packageRoot, 'dist/src/cli/xvsd.js')));
    assert.match(unit, /^StateDirectory=xvs$/m);
    assert.match(unit, /^WantedBy=multi-user\.target$/m);
    assert.match(readFileSync(path.join(dest, 'etc/default/xvsd'), 'utf8'), /^XVSD_INTERFACE=eth7$/m);
    writeFileSync(path.join(dest, 'etc/default/xvsd'), 'XVSD_INTERFACE=bond0\n');
    run();
    assert.equal(readFileSync(path.join(dest, 'etc/default/xvsd'), 'utf8'), 'XVSD_INTERFACE=bond0\n');
    // The options the unit passes are xvsd's.
    const help = execFileSync(process.execPath, [path.join(packageRoot, 'dist/src/cli/xvsd.js'), '--help'], { encoding: 'utf8' });
    for (const opt of ['--interface', '--config', '--no-config']) assert.ok(help.includes(opt), opt);
  } finally {
    rmSync(dest, { recursive: true, force: true });
  }
});
