import type { Socket } from 'node:net';
import koffi from 'koffi';

// Who is on the other end of a control connection: SO_PEERCRED, read with
// getsockopt(2) through koffi (no new dependency) on the descriptor Node
// keeps for the accepted unix socket. The kernel fills it at connect time,
// so it names the process that connected, not one that claims to be it.

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const UCRED_SIZE = 12; // struct ucred { pid_t pid; uid_t uid; gid_t gid; }

type GetSockOpt = (fd: number, level: number, name: number, buf: Buffer, len: Buffer) => number;
let getsockopt: GetSockOpt | undefined;

function bind(): GetSockOpt {
  if (!getsockopt) {
    const libc = koffi.load('libc.so.6');
    getsockopt = libc.func('int getsockopt(int, int, int, void *, void *)') as unknown as GetSockOpt;
  }
  return getsockopt;
}

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/** The peer's credentials, or undefined when the socket has no descriptor to ask (closed, not a unix socket). */
export function peerCred(sock: Socket): PeerCred | undefined {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  const buf = Buffer.alloc(UCRED_SIZE);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(UCRED_SIZE);
  if (bind()(fd, SOL_SOCKET, SO_PEERCRED, buf, len) !== 0) return undefined;
  return { pid: buf.readInt32LE(0), uid: buf.readUInt32LE(4), gid: buf.readUInt32LE(8) };
}
