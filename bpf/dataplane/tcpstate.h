/* SPDX-License-Identifier: GPL-2.0 */
/*
 * IPVS's TCP state machine (ip_vs_proto_tcp.c): the state a connection moves
 * to on a segment, by the direction it travels and its most telling flag. A
 * DR/TUN director sees only the client's half (input-only); NAT and FULLNAT
 * see both (input: client to real server, output: the replies).
 */
#ifndef XVS_TCPSTATE_H
#define XVS_TCPSTATE_H

#include "common.h"

enum xvs_dir {
	XVS_DIR_IN = 0,
	XVS_DIR_OUT = 1,
	XVS_DIR_IN_ONLY = 2,
};

enum {
	XVS_TCP_STATES = 11, /* NONE .. SYNACK */
	XVS_EV_SYN = 0,
	XVS_EV_FIN = 1,
	XVS_EV_ACK = 2,
	XVS_EV_RST = 3,
};

#define NO XVS_CS_NONE
#define ES XVS_CS_ESTABLISHED
#define SS XVS_CS_SYN_SENT
#define SR XVS_CS_SYN_RECV
#define FW XVS_CS_FIN_WAIT
#define TW XVS_CS_TIME_WAIT
#define CL XVS_CS_CLOSE
#define CW XVS_CS_CLOSE_WAIT
#define LA XVS_CS_LAST_ACK
#define LI XVS_CS_LISTEN
#define SA XVS_CS_SYNACK

/* [direction][event][state now]: the state next. Columns in state order:
 * NONE ESTABLISHED SYN_SENT SYN_RECV FIN_WAIT TIME_WAIT CLOSE CLOSE_WAIT
 * LAST_ACK LISTEN SYNACK. */
static const __u8 xvs_tcp_next[3][4][XVS_TCP_STATES] = {
	[XVS_DIR_IN] = {
		[XVS_EV_SYN] = { SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR },
		[XVS_EV_FIN] = { CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW },
		[XVS_EV_ACK] = { CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES },
		[XVS_EV_RST] = { CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR },
	},
	[XVS_DIR_OUT] = {
		[XVS_EV_SYN] = { SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR },
		[XVS_EV_FIN] = { TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW },
		[XVS_EV_ACK] = { ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES },
		[XVS_EV_RST] = { CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL },
	},
	[XVS_DIR_IN_ONLY] = {
		[XVS_EV_SYN] = { SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR },
		[XVS_EV_FIN] = { CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW },
		[XVS_EV_ACK] = { CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES },
		[XVS_EV_RST] = { CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL },
	},
};

#undef NO
#undef ES
#undef SS
#undef SR
#undef FW
#undef TW
#undef CL
#undef CW
#undef LA
#undef LI
#undef SA

/* The state after a segment with these flags; a segment with none of
 * SYN, FIN, ACK, RST (or a state that is not TCP's) changes nothing. As in
 * IPVS, RST counts before SYN, SYN before FIN, FIN before ACK. */
static __always_inline __u8 xvs_tcp_state(__u8 state, __u8 flags, int dir)
{
	int ev;

	if (flags & XVS_TCP_RST)
		ev = XVS_EV_RST;
	else if (flags & XVS_TCP_SYN)
		ev = XVS_EV_SYN;
	else if (flags & XVS_TCP_FIN)
		ev = XVS_EV_FIN;
	else if (flags & XVS_TCP_ACK)
		ev = XVS_EV_ACK;
	else
		return state;
	if (state >= XVS_TCP_STATES || dir < 0 || dir > XVS_DIR_IN_ONLY)
		return state;
	return xvs_tcp_next[dir][ev][state];
}

#endif
