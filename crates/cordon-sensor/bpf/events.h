/* The wire format between the BPF programs and crates/cordon-sensor/src/raw.rs. Every change here
 * changes raw.rs's offsets and bumps WIRE_VERSION in both places. Little-endian, packed by hand:
 * every field sits at a multiple of its own size, so there is no padding to disagree about. */
#ifndef CORDON_EVENTS_H
#define CORDON_EVENTS_H

#define WIRE_VERSION 1

/* Every number below that a record carries, or that user space writes into a map, has its Rust
 * twin in src/raw.rs or src/kinds.rs; raw.rs's test `the_wire_numbers_match_events_h` reads this
 * file and fails when the two disagree or one side has a name the other lacks (enumerators and
 * #defines named EV_, HOOK_, SK_, F_, KF_, and WIRE_VERSION). */

/* struct ev_hdr.kind: which record follows the header. */
enum ev_kind {
	EV_EXEC = 1,
	EV_FORK = 2,
	EV_EXIT = 3,
	EV_SYSCALL = 4,
	EV_NET = 5,
};

#define PATH_MAX_BPF 256
#define ARGV_MAX 512
#define ADDR_MAX 112

/* syscall kinds (struct sc_kind.kind): how the enter program decodes the arguments. Filled from
 * user space per architecture, indexed by syscall number. */
enum sc_decode {
	SK_NONE = 0,
	SK_TRACE = 1,    /* record the numbers only */
	SK_PATH = 2,     /* arg[p1] is a path (or name) */
	SK_PATH2 = 3,    /* arg[p1] and arg[p2] are paths */
	SK_SOCKADDR = 4, /* arg[p1] is a sockaddr, arg[p2] its length */
	SK_MSGHDR = 5,   /* arg[p1] is a msghdr whose msg_name is the address */
};

struct sc_kind {
	__u8 kind;
	__u8 p1;
	__u8 p2;
	__u8 flags;
};

/* sc_kind.flags */
#define KF_QUIET_OK 1 /* successful calls without an address are not events (sendto on a connected socket) */
/* Whether a session's seccomp filter may refuse a call (track its entry to attribute a refusal) is
 * per session: struct session's watch bitmap in cordon.bpf.c. */

/* 56 bytes */
struct ev_hdr {
	__u32 kind;
	__u32 flags;
	__u32 pid;   /* tgid */
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u64 ts;    /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u64 start; /* the process's start time: identity that survives pid reuse */
	char comm[16];
};

/* flags */
#define F_NOT_ENTERED 1 /* the syscall exited without passing the sys_enter tracepoint: seccomp refused it */
#define F_TRUNC_PATH 2

struct ev_exec {
	struct ev_hdr h;
	__u32 old_pid;
	__u16 fn_len;
	__u16 argv_len;
	char filename[PATH_MAX_BPF];
	char argv[ARGV_MAX];
};

struct ev_fork {
	struct ev_hdr h;
	__u32 child_pid;
	__u32 child_tid;
	__u64 child_start;
};

struct ev_exit {
	struct ev_hdr h;
	__s32 code;
	__u32 _pad;
};

struct ev_sys {
	struct ev_hdr h;
	__u32 nr;
	__u16 p1_len;
	__u16 p2_len;
	__s64 ret;
	__u64 args[6];
	__u16 addr_len;
	__u16 _pad[3];
	char p1[PATH_MAX_BPF];
	char p2[PATH_MAX_BPF];
	__u8 addr[ADDR_MAX];
};

/* struct ev_net.hook: the cgroup program that decided. */
enum net_hook {
	HOOK_CONNECT4 = 1,
	HOOK_CONNECT6 = 2,
	HOOK_SENDMSG4 = 3,
	HOOK_SENDMSG6 = 4,
	HOOK_SOCK_CREATE = 5,
};

/* From the cgroup programs: a connect/sendmsg/socket decision. */
struct ev_net {
	struct ev_hdr h;
	__u32 hook;    /* enum net_hook */
	__u32 verdict; /* 1 allowed, 0 denied */
	__u32 family;
	__u32 type;
	__u32 protocol;
	__u32 port;    /* host order */
	__u8 addr[16];
};

#endif
