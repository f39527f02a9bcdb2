import { pino, type Logger } from 'pino';

// The one pino root; modules take `log.child({ component })`. Nothing here
// is called per packet: the dataplane reports through counters only.
export const log: Logger = pino({
  level: process.env.XVS_LOG_LEVEL ?? 'info',
  base: { pid: process.pid },
  timestamp: pino.stdTimeFunctions.isoTime,
}, pino.destination({ fd: 2, sync: true }));

export function logger(component: string): Logger {
  return log.child({ component });
}
