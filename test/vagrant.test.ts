// The VM lab's Vagrantfile must at least parse and validate; booting VMs is
// out of reach here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { packageRoot } from '../src/paths.js';

function hasVagrant(): boolean {
  try {
    execFileSync('vagrant', ['--version'], { stdio: 'ignore', timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

function validate(args: string[], env: NodeJS.ProcessEnv): Promise<{ ok: boolean; out: string }> {
  return new Promise((resolve) => {
    execFile('vagrant', ['validate', ...args], { cwd: path.join(packageRoot, 'vagrant'), env, timeout: 120_000 },
      (err, stdout, stderr) => resolve({ ok: !err, out: `${stdout}${stderr}` }));
  });
}

test('vagrant validate accepts vagrant/Vagrantfile', { skip: hasVagrant() ? false : 'the vagrant binary is not installed', timeout: 300_000 }, async (t) => {
  // Keep Vagrant's machine state out of the work tree and its version check off the network.
  const dot = mkdtempSync(path.join(tmpdir(), 'xvs-vagrant-'));
  const env = { ...process.env, VAGRANT_CHECKPOINT_DISABLE: '1', VAGRANT_DOTFILE_PATH: dot };
  try {
    let r = await validate([], env);
    // Without VirtualBox or libvirt nothing can check provider options; the rest still is.
    if (!r.ok && r.out.includes('No usable default provider')) {
      t.diagnostic('no usable provider here: validating with --ignore-provider');
      r = await validate(['--ignore-provider'], env);
    }
    assert.ok(r.ok, r.out);
    assert.match(r.out, /validated successfully/);
  } finally {
    rmSync(dot, { recursive: true, force: true });
  }
});
