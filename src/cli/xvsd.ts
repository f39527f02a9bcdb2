#!/usr/bin/env node
import { Command, Option } from 'commander';
import { serve, DEFAULT_SOCKET } from '../control/socket.js';
import { Dataplane, DEFAULT_CONN_TABLE_SIZE, DEFAULT_PIN_DIR, unpinDirectorMaps } from '../daemon/dataplane.js';
import { Director } from '../daemon/director.js';
import { SYSTEM_CONFIG, restoreConfig, saveConfig } from '../daemon/config-file.js';
import { ESTIMATOR_INTERVAL_MS } from '../daemon/estimator.js';
import { enableForwarding, restoreForwarding, type SavedForwarding } from '../daemon/host.js';
import { collectInterfaces, parseInterfaces, resolveInterfaces } from '../daemon/interfaces.js';
import { NexthopRefresher } from '../daemon/nexthop-refresh.js';
import { logger } from '../log.js';
import { DEFAULT_CENSUS_MS, Metrics } from '../metrics/metrics.js';
import { MetricsServer, type Endpoint } from '../metrics/server.js';
import { ensurePinDir } from '../sys/bpffs.js';
import { XvsError } from '../errors.js';
import { fail, nonNegativeInt, positiveInt } from './common.js';
import { parseEndpoint } from './ipvsadm-args.js';

const log = logger('xvsd');

interface XvsdOptions {
  interface: string[];
  xdpMode: 'native' | 'generic';
  socket: string;
  pinDir: string;
  connTableSize: number;
  tunnelSource?: string;
  teardownOnExit?: boolean;
  tickMs: number;
  mhTableSize?: number;
  config?: string | false;
  metrics?: string;
  metricsCensusMs: number;
}

/** --metrics ADDR:PORT, an IP address (IPv6 in brackets) and a port 1..65535. */
function metricsEndpoint(text: string): Endpoint {
  const e = parseEndpoint(text);
  if (e.port === undefined || e.port === 0) throw new XvsError('BAD_ADDRESS', `--metrics '${text}' needs a port 1..65535`, { hint: 'write ADDR:PORT, e.g. 127.0.0.1:9469 or [::1]:9469' });
  return { addr: e.addr, port: e.port };
}

async function main(argv: string[]): Promise<void> {
  const program = new Command('xvsd')
    .description('the xvs director: loads the XDP dataplane on its interfaces and serves xvsadm')
    .requiredOption('--interface <if[:role],...>', 'an interface of the director and what it faces: client (VIPs are reached there), server (real servers are there) or both (the default, one-armed); repeatable or a comma list', collectInterfaces)
    .addOption(new Option('--xdp-mode <mode>', 'XDP attach mode').choices(['native', 'generic']).default('native'))
    .option('--socket <path>', 'control socket', DEFAULT_SOCKET)
    .option('--pin-dir <dir>', 'bpffs directory for the pinned maps', DEFAULT_PIN_DIR)
    .option('--conn-table-size <n>', 'connection table entries', positiveInt, DEFAULT_CONN_TABLE_SIZE)
    .option('--tunnel-source <ip>', 'outer source address of IPIP packets (default: the route\'s source)')
    .option('--tick-ms <ms>', 'how often dynamic schedulers and thresholds are recomputed from the connection table', positiveInt, 200)
    .option('--mh-table-size <n>', 'Maglev (mh) table size, a prime', positiveInt)
    .option('--teardown-on-exit', 'detach and unpin on exit (default: leave the dataplane running for a restart)')
    .option('--config <file>', `configuration file, saved on every change and restored at start when the pinned maps hold no service (default: ${SYSTEM_CONFIG} for the system's xvsd, the one with the default --socket and --pin-dir; none otherwise)`)
    .option('--no-config', 'keep no configuration file')
    .option('--metrics <addr:port>', 'serve Prometheus metrics at http://ADDR:PORT/metrics (off unless given)')
    .option('--metrics-census-ms <ms>', 'scrapes share a census of the flow tables at most this old (a million entries cost ~0.4 s of CPU to walk); 0: a new one every scrape', nonNegativeInt, DEFAULT_CENSUS_MS)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  program.parse(argv);
  const o = program.opts<XvsdOptions>();

  // Every check on the list precedes the first change.
  const ifaces = resolveInterfaces(parseInterfaces(o.interface, { complete: true }));
  // Listening comes before the first change too: an address in use stops xvsd with nothing touched.
  const metricsServer = o.metrics === undefined ? undefined : await MetricsServer.listen(metricsEndpoint(o.metrics));
  await ensurePinDir(o.pinDir);
  const prevForwarding: SavedForwarding[] = [];
  let dp: Dataplane;
  try {
    for (const i of ifaces) prevForwarding.push(enableForwarding(i.name));
    dp = Dataplane.load({ interfaces: ifaces, xdpMode: o.xdpMode, pinDir: o.pinDir, connTableSize: o.connTableSize });
  } catch (e) {
    for (const saved of prevForwarding) restoreForwarding(saved);
    throw e;
  }
  const configPath = o.config === false ? undefined
    : o.config ?? (o.socket === DEFAULT_SOCKET && o.pinDir === DEFAULT_PIN_DIR ? SYSTEM_CONFIG : undefined);
  const director: Director = new Director(dp, {
    ...(o.tunnelSource === undefined ? {} : { tunnelSource: o.tunnelSource }),
    ...(o.mhTableSize === undefined ? {} : { mhTableSize: o.mhTableSize }),
    ...(configPath === undefined ? {} : {
      onChange: () => {
        try {
          saveConfig(configPath, director);
        } catch (e) {
          log.error({ err: (e as Error).message, path: configPath }, 'saving the configuration failed');
        }
      },
    }),
  });
  if (configPath !== undefined) {
    await restoreConfig(configPath, director);
    saveConfig(configPath, director);
  }
  // Next hops follow the kernel from here on; the first refresh rewrites
  // every entry, so a restart also catches what changed while xvsd was down.
  const refresher = new NexthopRefresher(director);
  await refresher.start();
  const server = await serve(o.socket, (req, peer) => director.handle(req, peer));
  if (metricsServer) {
    const metrics = new Metrics(director, o.metricsCensusMs);
    metricsServer.ready(() => metrics.scrape());
  }
  const estimator = setInterval(() => {
    try {
      director.estimate();
    } catch (e) {
      log.error({ err: (e as Error).message }, 'rate estimation failed');
    }
  }, ESTIMATOR_INTERVAL_MS);
  // The tick reads the connection table; a failure is logged, never fatal.
  const ticker = setInterval(() => {
    director.tick().catch((e: unknown) => log.error({ err: (e as Error).message }, 'tick failed'));
  }, o.tickMs);
  log.info({ interfaces: dp.ports.map((p) => `${p.name}:${p.role}`), socket: o.socket, pinDir: o.pinDir, config: configPath ?? null, metrics: o.metrics ?? null, forwardingWas: prevForwarding }, 'xvsd ready');

  const stop = (signal: string) => {
    log.info({ signal }, 'stopping');
    clearInterval(ticker);
    clearInterval(estimator);
    refresher.stop();
    server.close();
    metricsServer?.close();
    if (o.teardownOnExit) {
      dp.detach();
      unpinDirectorMaps(o.pinDir);
      log.info('dataplane detached and unpinned');
    } else {
      log.info('dataplane left running; a restarted xvsd re-attaches to its pinned maps');
    }
    dp.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main(process.argv).catch((e: unknown) => fail('xvsd', e));
