// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* cordon's sensor: what sessions' processes really did, from tracepoints, plus each session's
 * network rules enforced by cgroup-bpf. One loaded copy serves every session of the process that
 * loaded it: sessions are entries in maps, each with its own ring buffer and loss counters. Only
 * program types these kernels accept (KERNEL.md): tp_btf and cgroup/{connect,sendmsg}{4,6},
 * cgroup/sock_create. Nothing is pinned. */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "events.h"

char LICENSE[] SEC("license") = "GPL";

#define EPERM 1
#define EACCES 13

/* Sessions, added and removed at run time by user space (src/hub.rs). A task belongs to a session
 * when its cgroup, or its ancestor at one of the depths in `filter`, is a key of `sessions`. */
#define MAX_SESSIONS 1024
#define MAX_LEVELS 4

struct session {
	__u64 cgid;     /* the session's cgroup v2 id (the key, repeated) */
	__u32 net_mode; /* 0: observe only; 1: loopback only (plus net_allow) */
	__u32 ring;     /* 0: the object's own ring (`events`); 1: the session's in `rings` */
	/* Bit nr: the session's seccomp filter may refuse syscall nr (track entry to attribute it). */
	__u64 watch[8];
};

/* Not preallocated: a deleted entry is freed after the programs that looked it up are done, never
 * reused under them for another session. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MAX_SESSIONS);
	__type(key, __u64);
	__type(value, struct session);
} sessions SEC(".maps");

/* What every syscall of every process on the host checks first, in one array element (a lookup the
 * verifier inlines). lv: the depths below the v2 root at which sessions' cgroups sit, plus one (0:
 * unused), filled in order and never emptied while the object is loaded, so a reader never sees a
 * hole. bits: bit (id % 4096) is set for each session's cgroup id, so a process outside every
 * session is told so without a hash lookup (a set bit is confirmed in `sessions`). kills: how many
 * signals asked for through kill_tgids are pending (0: no lookup there). care: bit nr is set when
 * syscall nr is recorded (`kinds`) or in some session's `watch`: a call outside this set that did
 * not fail with EPERM/EACCES is nobody's business, whichever process made it, and the programs
 * return before finding the caller's session. */
#define FILTER_BITS 4096
#define NR_SYSCALLS_MAX 512

struct filter {
	__u32 lv[MAX_LEVELS];
	__u64 bits[FILTER_BITS / 64];
	__u32 kills;
	__u32 _pad;
	__u64 care[NR_SYSCALLS_MAX / 64];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct filter);
} filter SEC(".maps");

/* Per session, per CPU: records offered to its ring buffer, and dropped because it was full. Kept
 * until user space has read the ring empty, after the session stopped reporting. */
struct counts {
	__u64 offered;
	__u64 dropped;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MAX_SESSIONS);
	__type(key, __u64);
	__type(value, struct counts);
} counts SEC(".maps");

/* The object's own ring buffer, sized before load: the ring of the first session of a process
 * that watches one (no map-in-map change, which makes the kernel wait for an RCU grace period).
 * It serves that session only, never a later one. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096); /* resized from user space */
} events SEC(".maps");

/* Per session: a ring buffer of its own, sized by user space, so one session's burst cannot fill
 * another's buffer. */
struct ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	/* The prototype, a multiple of any page size; each session's ring has its own size. */
	__uint(max_entries, 1 << 16);
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, MAX_SESSIONS);
	__type(key, __u64);
	__array(values, struct ring);
} rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 512);
	__type(key, __u32);
	__type(value, struct sc_kind);
} kinds SEC(".maps");

/* tgid -> signal: a rule asked for this process to die; it gets the signal at its next syscall,
 * if it is still in the session that asked. */
struct kill {
	__u32 sig;
	__u32 _pad;
	__u64 cgid;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct kill);
} kill_tgids SEC(".maps");

struct net_key {
	__u64 cgid; /* the session's */
	__u32 family;
	__u32 port; /* 0: any */
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct net_key);
	__type(value, __u8);
} net_allow SEC(".maps");

/* What sys_enter saw, for sys_exit to report with the result. Task storage dies with the task. */
struct inflight {
	__u32 nr;
	__u32 entered;
	/* The directory last resolved for this task (its working directory or a directory fd's),
	 * kept for the next call relative to the same dentry and mount (a rename of an ancestor
	 * directory is not noticed). */
	__u64 cwd_dentry;
	__u64 cwd_mnt;
	__u32 cwd_len;
	__u32 _pad;
	char cwd[PATH_MAX_BPF];
	struct ev_sys ev;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct inflight);
} inflight_store SEC(".maps");

/* Scratch space for exec events (too big for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ev_exec);
} exec_scratch SEC(".maps");

static __always_inline struct session *session_at(struct filter *f, __u32 lv)
{
	__u64 id = bpf_get_current_ancestor_cgroup_id(lv - 1);
	if (!((f->bits[(id >> 6) & (FILTER_BITS / 64 - 1)] >> (id & 63)) & 1))
		return 0;
	return bpf_map_lookup_elem(&sessions, &id);
}

/* The session the current task belongs to, or NULL: the first cgroup among its ancestors at the
 * watched depths that is a session's. Processes outside every session stop here. Written out, not
 * a loop: no verifier needs to prove it ends. */
static __always_inline struct session *session_in(struct filter *f)
{
	struct session *s;
	if (!f->lv[0])
		return 0;
	if ((s = session_at(f, f->lv[0])) || !f->lv[1])
		return s;
	if ((s = session_at(f, f->lv[1])) || !f->lv[2])
		return s;
	if ((s = session_at(f, f->lv[2])) || !f->lv[3])
		return s;
	return session_at(f, f->lv[3]);
}

static __always_inline struct filter *get_filter(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&filter, &zero);
}

static __always_inline struct session *current_session(void)
{
	struct filter *f = get_filter();
	return f ? session_in(f) : 0;
}

static __always_inline bool cared(struct filter *f, __u64 nr)
{
	return nr < NR_SYSCALLS_MAX && ((f->care[(nr >> 6) & (NR_SYSCALLS_MAX / 64 - 1)] >> (nr & 63)) & 1);
}

static __always_inline bool watched(struct session *s, __u32 nr)
{
	return nr < 512 && ((s->watch[(nr >> 6) & 7] >> (nr & 63)) & 1);
}

/* Writes a record without waking the reader, unless a quarter of the ring is waiting: the reader
 * looks every 10 ms anyway, and a wakeup per record (an irq_work, then the reader's thread
 * scheduled) costs the writing process more than the record itself. */
static __always_inline long output(void *ring, void *data, __u64 size)
{
	__u64 waiting = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);
	__u64 wake = waiting > bpf_ringbuf_query(ring, BPF_RB_RING_SIZE) / 4 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	return bpf_ringbuf_output(ring, data, size, wake);
}

/* Offers a record to the session's ring; counts it, and counts it lost when the ring is full. */
static __always_inline void emit(struct session *s, void *data, __u64 size)
{
	__u64 cgid = s->cgid;
	struct counts *c = bpf_map_lookup_elem(&counts, &cgid);
	if (!c)
		return;
	c->offered += 1;
	long err;
	if (s->ring) {
		void *ring = bpf_map_lookup_elem(&rings, &cgid);
		err = ring ? output(ring, data, size) : -1;
	} else {
		err = output(&events, data, size);
	}
	if (err)
		c->dropped += 1;
}

static __always_inline void fill_hdr(struct ev_hdr *h, __u32 kind, struct task_struct *t)
{
	__u64 pt = bpf_get_current_pid_tgid();
	h->kind = kind;
	h->flags = 0;
	h->pid = pt >> 32;
	h->tid = (__u32)pt;
	h->ppid = BPF_CORE_READ(t, real_parent, tgid);
	h->uid = BPF_CORE_READ(t, cred, uid.val);
	h->ts = bpf_ktime_get_ns();
	h->start = BPF_CORE_READ(t, group_leader, start_time);
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/* Argument i of the syscall, read straight from the tracepoint's pt_regs (a pointer the verifier
 * knows from BTF: a plain load each, not a probe-read helper call each; constant offsets only). */
static __always_inline unsigned long sc_arg(struct pt_regs *regs, int i)
{
#if defined(__TARGET_ARCH_x86)
	switch (i) {
	case 0: return regs->di;
	case 1: return regs->si;
	case 2: return regs->dx;
	case 3: return regs->r10;
	case 4: return regs->r8;
	default: return regs->r9;
	}
#else
	switch (i) {
	case 0: return regs->orig_x0;
	case 1: return regs->regs[1];
	case 2: return regs->regs[2];
	case 3: return regs->regs[3];
	case 4: return regs->regs[4];
	default: return regs->regs[5];
	}
#endif
}

/* The syscall number at sys_exit, read straight from the tracepoint's pt_regs (a pointer the
 * verifier knows from BTF: a plain load, no probe-read helper call on every syscall). */
static __always_inline long sc_nr_fast(struct pt_regs *regs)
{
#if defined(__TARGET_ARCH_x86)
	return regs->orig_ax;
#else
	return regs->syscallno;
#endif
}

/* Scratch space for building a working directory's path. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, char[512]);
} path_scratch SEC(".maps");

#define MAX_STEPS 32

struct walk {
	struct dentry *d;
	struct vfsmount *vm;
	struct mount *m;
	__u32 steps; /* steps taken until the namespace's root mount (MAX_STEPS: gave up) */
	__u32 off;
	__u32 fail;
	/* names[i]: the component met at step i, or 0 at a mount crossing. */
	const unsigned char *names[MAX_STEPS];
};

static long walk_up(__u32 i, struct walk *w)
{
	/* Plain locals: BPF_CORE_READ on w->x would try to relocate struct walk itself. */
	struct dentry *d = w->d;
	struct vfsmount *vm = w->vm;
	struct mount *m = w->m;
	struct dentry *root = BPF_CORE_READ(vm, mnt_root);
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	w->names[i & (MAX_STEPS - 1)] = 0;
	if (d == root || d == parent) {
		struct mount *mp = BPF_CORE_READ(m, mnt_parent);
		if (mp == m || !mp) {
			w->steps = i;
			return 1;
		}
		w->d = BPF_CORE_READ(m, mnt_mountpoint);
		w->m = mp;
		w->vm = (void *)mp + bpf_core_field_offset(struct mount, mnt);
		return 0;
	}
	w->names[i & (MAX_STEPS - 1)] = BPF_CORE_READ(d, d_name.name);
	w->d = parent;
	return 0;
}

static long write_down(__u32 i, struct walk *w)
{
	__u32 zero = 0;
	int j = (int)w->steps - 1 - (int)i;
	if (j < 0)
		return 1;
	const unsigned char *nm = w->names[j & (MAX_STEPS - 1)];
	if (!nm)
		return 0;
	char *buf = bpf_map_lookup_elem(&path_scratch, &zero);
	if (!buf || w->off > 250) {
		w->fail = 1;
		return 1;
	}
	__u32 o = w->off & 255;
	buf[o] = '/';
	o = (o + 1) & 255;
	long r = bpf_probe_read_kernel_str(&buf[o], 256, nm);
	if (r <= 1) {
		w->fail = 1;
		return 1;
	}
	w->off = o + (r - 1);
	return 0;
}

/* A directory (the task's working directory, or what a directory fd names) as a path in the task's
 * own mount namespace, written into ev->p2: a relative path in an event is resolved against it in
 * user space. Walks dentries up to each mount's root and crosses to the parent mount, like d_path(),
 * which tracepoint programs may not call; bpf_loop keeps the verifier's work to one pass over each
 * step. */
static __always_inline void dir_into(struct ev_sys *ev, struct dentry *dentry, struct vfsmount *mnt)
{
	__u32 zero = 0;
	struct walk w = {};
	w.d = dentry;
	w.vm = mnt;
	w.m = (void *)w.vm - bpf_core_field_offset(struct mount, mnt);
	w.steps = MAX_STEPS;
	bpf_loop(MAX_STEPS, walk_up, &w, 0);
	if (w.steps >= MAX_STEPS)
		return; /* deeper than we follow: user space resolves it from /proc */
	bpf_loop(MAX_STEPS, write_down, &w, 0);
	char *buf = bpf_map_lookup_elem(&path_scratch, &zero);
	if (w.fail || !buf)
		return;
	if (w.off == 0) {
		buf[0] = '/';
		w.off = 1;
	}
	if (w.off > 255)
		return;
	__u32 e = w.off & 255;
	buf[e] = 0;
	bpf_probe_read_kernel(ev->p2, sizeof(ev->p2), buf);
	ev->p2_len = e + 1;
}

/* The dentry and mount of what the task's descriptor fd refers to, or zeros. Read at the call, so a
 * descriptor closed or reused right after still counts for what it was. */
static __always_inline void fd_path(struct task_struct *t, int fd, __u64 *dentry, __u64 *mnt)
{
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	if (!fdt || fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return;
	*dentry = (__u64)BPF_CORE_READ(f, f_path.dentry);
	*mnt = (__u64)BPF_CORE_READ(f, f_path.mnt);
}

/* Scratch for packing a syscall record: the fixed part, then p1, p2 and addr back to back, each only
 * as long as it is (events.h describes the unpacked form; raw.rs reads the packed one). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, char[1024]);
} pack_scratch SEC(".maps");

#define FIXED_SYS __builtin_offsetof(struct ev_sys, p1)

static __always_inline void emit_sys(struct session *s, struct ev_sys *ev)
{
	__u32 zero = 0;
	char *b = bpf_map_lookup_elem(&pack_scratch, &zero);
	if (!b)
		return;
	__u32 l1 = ev->p1_len & (PATH_MAX_BPF - 1);
	__u32 l2 = ev->p2_len & (PATH_MAX_BPF - 1);
	__u32 la = ev->addr_len & (ADDR_MAX < 128 ? 127 : 255);
	if (la > ADDR_MAX)
		la = ADDR_MAX;
	ev->p1_len = l1;
	ev->p2_len = l2;
	ev->addr_len = la;
	bpf_probe_read_kernel(b, FIXED_SYS, ev);
	__u32 off = FIXED_SYS;
	if (l1)
		bpf_probe_read_kernel(b + off, l1, ev->p1);
	off += l1;
	if (l2)
		bpf_probe_read_kernel(b + (off & 511), l2, ev->p2);
	off += l2;
	if (la)
		bpf_probe_read_kernel(b + (off & 767), la, ev->addr);
	off += la;
	emit(s, b, off & 1023);
}

/* Argument i without pointer arithmetic the verifier cannot bound. */
static __always_inline __u64 arg_at(struct ev_sys *ev, __u8 i)
{
	switch (i) {
	case 0: return ev->args[0];
	case 1: return ev->args[1];
	case 2: return ev->args[2];
	case 3: return ev->args[3];
	case 4: return ev->args[4];
	default: return ev->args[5];
	}
}

/* Reads the arguments a kind names into ev. */
static __always_inline void decode(struct ev_sys *ev, struct sc_kind *k)
{
	long n;
	ev->p1_len = 0;
	ev->p2_len = 0;
	ev->addr_len = 0;
	if (k->kind == SK_PATH || k->kind == SK_PATH2) {
		n = bpf_probe_read_user_str(ev->p1, sizeof(ev->p1), (void *)arg_at(ev, k->p1));
		ev->p1_len = n > 0 ? n : 0;
	}
	if (k->kind == SK_PATH2) {
		n = bpf_probe_read_user_str(ev->p2, sizeof(ev->p2), (void *)arg_at(ev, k->p2));
		ev->p2_len = n > 0 ? n : 0;
	}
	if (k->kind == SK_SOCKADDR) {
		unsigned long len = arg_at(ev, k->p2);
		if (len > ADDR_MAX)
			len = ADDR_MAX;
		void *p = (void *)arg_at(ev, k->p1);
		if (p && len && bpf_probe_read_user(ev->addr, len & 127, p) == 0)
			ev->addr_len = len;
	}
	if (k->kind == SK_MSGHDR) {
		/* struct user_msghdr starts with void *msg_name; int msg_namelen. */
		struct {
			void *name;
			int namelen;
		} mh = {};
		if (bpf_probe_read_user(&mh, sizeof(mh), (void *)arg_at(ev, k->p1)) == 0 && mh.name) {
			unsigned long len = mh.namelen;
			if (len > ADDR_MAX)
				len = ADDR_MAX;
			if (len && bpf_probe_read_user(ev->addr, len & 127, mh.name) == 0)
				ev->addr_len = len;
		}
	}
}

SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter, struct pt_regs *regs, long id)
{
	struct filter *f = get_filter();
	if (!f)
		return 0;
	/* Most calls (read, write, stat, mmap, ...) are neither recorded nor refusable by any watched
	 * session's seccomp filter: they cost this lookup and one bit, unless a signal is pending. */
	if (!cared(f, id) && !f->kills)
		return 0;
	struct session *s = session_in(f);
	if (!s)
		return 0;
	if (f->kills) {
		__u32 tgid = bpf_get_current_pid_tgid() >> 32;
		struct kill *kl = bpf_map_lookup_elem(&kill_tgids, &tgid);
		if (kl && kl->cgid == s->cgid)
			bpf_send_signal(kl->sig);
	}

	__u32 nr = id;
	struct sc_kind *k = bpf_map_lookup_elem(&kinds, &nr);
	/* Refusable by another session's filter, not this one's. */
	if (!k || (k->kind == SK_NONE && !watched(s, nr)))
		return 0;
	struct task_struct *t = bpf_get_current_task_btf();
	struct inflight *st = bpf_task_storage_get(&inflight_store, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st)
		return 0;
	st->nr = nr;
	st->entered = 1;
	if (k->kind == SK_NONE)
		return 0;
	/* Strings are read here, before the kernel uses them, so a thread rewriting the buffer during
	 * the call cannot make the record disagree with what the kernel acted on (up to the copy). */
	struct ev_sys *ev = &st->ev;
	ev->nr = nr;
	for (int i = 0; i < 6; i++)
		ev->args[i] = sc_arg(regs, i);
	decode(ev, k);
	/* A relative path: also record the directory it is relative to (the working directory, or
	 * for *at calls the directory fd's), while the process certainly has it. */
	if (k->kind == SK_PATH && ev->p1_len > 1 && ev->p1[0] != '/') {
		__u64 dn = 0, mn = 0;
		if (k->p1 == 0 || (int)ev->args[0] == -100 /* AT_FDCWD */) {
			dn = (__u64)BPF_CORE_READ(t, fs, pwd.dentry);
			mn = (__u64)BPF_CORE_READ(t, fs, pwd.mnt);
		} else if (k->p1 == 1) {
			fd_path(t, (int)ev->args[0], &dn, &mn);
		}
		if (!dn || !mn) {
			/* no such descriptor: the call fails, user space says what it can */
		} else if (st->cwd_len && st->cwd_dentry == dn && st->cwd_mnt == mn) {
			__builtin_memcpy(ev->p2, st->cwd, PATH_MAX_BPF);
			ev->p2_len = st->cwd_len;
		} else {
			dir_into(ev, (struct dentry *)dn, (struct vfsmount *)mn);
			if (ev->p2_len) {
				__builtin_memcpy(st->cwd, ev->p2, PATH_MAX_BPF);
				st->cwd_len = ev->p2_len;
				st->cwd_dentry = dn;
				st->cwd_mnt = mn;
			}
		}
	}
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
	struct filter *f = get_filter();
	if (!f)
		return 0;
	bool errish = ret == -EPERM || ret == -EACCES;
	__u32 nr = sc_nr_fast(regs);
	/* As at entry: a call nobody records or watches matters only when it was refused. */
	if (!errish && !cared(f, nr))
		return 0;
	struct session *s = session_in(f);
	if (!s)
		return 0;
	struct sc_kind *k = bpf_map_lookup_elem(&kinds, &nr);
	bool interesting = k && k->kind != SK_NONE;
	bool watch = k && watched(s, nr);
	if (!interesting && !watch && !errish)
		return 0;
	struct task_struct *t = bpf_get_current_task_btf();
	struct inflight *st = bpf_task_storage_get(&inflight_store, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st)
		return 0;
	/* Only calls the enter program tracks can be told apart as "refused before entry". */
	bool entered = (interesting || watch) ? (st->entered && st->nr == nr) : true;
	st->entered = 0;
	bool refused = errish || (!entered && ret < 0);
	if (!interesting && !refused)
		return 0;
	struct ev_sys *ev = &st->ev;
	if (!entered) {
		/* seccomp answered before the enter tracepoint: the arguments are still in the
		 * registers. */
		ev->nr = nr;
		for (int i = 0; i < 6; i++)
			ev->args[i] = sc_arg(regs, i);
		if (interesting)
			decode(ev, k);
		else
			ev->p1_len = ev->p2_len = ev->addr_len = 0;
	} else if (interesting && (k->kind == SK_PATH || k->kind == SK_PATH2) && ev->p1_len == 0) {
		/* The string's page was not resident at entry (a probe read cannot fault it in); the
		 * kernel has faulted it in since, reading the same address. */
		decode(ev, k);
	} else if (!interesting) {
		ev->nr = nr;
		for (int i = 0; i < 6; i++)
			ev->args[i] = sc_arg(regs, i);
		ev->p1_len = ev->p2_len = ev->addr_len = 0;
	}
	/* exec that worked is reported by sched_process_exec; quiet calls are only events when they
	 * name an address or fail. */
	if (ret == 0 && k && (k->flags & KF_QUIET_OK) && ev->addr_len == 0)
		return 0;
	fill_hdr(&ev->h, EV_SYSCALL, t);
	if (!entered)
		ev->h.flags |= F_NOT_ENTERED;
	ev->ret = ret;
	emit_sys(s, ev);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct session *s = current_session();
	if (!s)
		return 0;
	__u32 zero = 0;
	struct ev_exec *ev = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!ev)
		return 0;
	fill_hdr(&ev->h, EV_EXEC, p);
	ev->old_pid = old_pid;
	long n = bpf_probe_read_kernel_str(ev->filename, sizeof(ev->filename), BPF_CORE_READ(bprm, filename));
	ev->fn_len = n > 0 ? n : 0;
	unsigned long a0 = BPF_CORE_READ(p, mm, arg_start);
	unsigned long a1 = BPF_CORE_READ(p, mm, arg_end);
	unsigned long len = a1 > a0 ? a1 - a0 : 0;
	if (len > ARGV_MAX)
		len = ARGV_MAX;
	ev->argv_len = 0;
	if (len && bpf_probe_read_user(ev->argv, len & (ARGV_MAX - 1), (void *)a0) == 0)
		ev->argv_len = len & (ARGV_MAX - 1);
	if (len == ARGV_MAX) {
		ev->h.flags |= F_TRUNC_PATH;
		if (bpf_probe_read_user(ev->argv, ARGV_MAX, (void *)a0) == 0)
			ev->argv_len = ARGV_MAX;
	}
	emit(s, ev, sizeof(*ev));
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	struct session *s = current_session();
	if (!s)
		return 0;
	struct ev_fork ev = {};
	fill_hdr(&ev.h, EV_FORK, parent);
	ev.child_pid = BPF_CORE_READ(child, tgid);
	ev.child_tid = BPF_CORE_READ(child, pid);
	ev.child_start = BPF_CORE_READ(child, group_leader, start_time);
	/* New threads are not new processes. */
	if (ev.child_pid == ev.h.pid)
		return 0;
	ev.child_start = BPF_CORE_READ(child, start_time);
	emit(s, &ev, sizeof(ev));
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *p)
{
	struct session *s = current_session();
	if (!s)
		return 0;
	/* One event per process: when its last thread goes (the leader's exit is the one reported). */
	if (BPF_CORE_READ(p, pid) != BPF_CORE_READ(p, tgid))
		return 0;
	struct ev_exit ev = {};
	fill_hdr(&ev.h, EV_EXIT, p);
	ev.code = BPF_CORE_READ(p, exit_code);
	emit(s, &ev, sizeof(ev));
	return 0;
}

/* ---- network, per session, in the kernel ----
 * These programs are attached to each session's cgroup that has network rules, so they run only
 * for its sockets. The rules are those of the calling task's session (cgroup programs have no
 * attach cookie on these kernels); a caller in no session (a socket handed out of the session) gets
 * the strictest: loopback only. */

static __always_inline bool allowed(__u64 cgid, __u32 family, __u32 port, __u8 *addr)
{
	struct net_key k = {};
	k.cgid = cgid;
	k.family = family;
	k.port = port;
	__builtin_memcpy(k.addr, addr, 16);
	if (bpf_map_lookup_elem(&net_allow, &k))
		return true;
	k.port = 0;
	return bpf_map_lookup_elem(&net_allow, &k) != 0;
}

/* cgroup programs run without a task pointer: the header from the helpers they may call. */
static __always_inline void net_hdr(struct ev_net *ev)
{
	__u64 pt = bpf_get_current_pid_tgid();
	ev->h.kind = EV_NET;
	ev->h.pid = pt >> 32;
	ev->h.tid = (__u32)pt;
	ev->h.ts = bpf_ktime_get_ns();
	ev->h.uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(ev->h.comm, sizeof(ev->h.comm));
}

static __always_inline int net_decide(struct bpf_sock_addr *ctx, __u32 hook, bool v6)
{
	struct session *s = current_session();
	struct ev_net ev = {};
	net_hdr(&ev);
	ev.hook = hook;
	ev.family = ctx->user_family;
	ev.type = ctx->type;
	ev.protocol = ctx->protocol;
	ev.port = bpf_ntohs((__u16)ctx->user_port);
	bool loop;
	if (!v6) {
		__u32 a = ctx->user_ip4;
		__builtin_memcpy(ev.addr, &a, 4);
		loop = (a & 0xff) == 127;
	} else {
		__u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1], a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];
		__builtin_memcpy(ev.addr, &a0, 4);
		__builtin_memcpy(ev.addr + 4, &a1, 4);
		__builtin_memcpy(ev.addr + 8, &a2, 4);
		__builtin_memcpy(ev.addr + 12, &a3, 4);
		/* ::1, or ::ffff:127.x.y.z */
		loop = (a0 == 0 && a1 == 0 && a2 == 0 && a3 == bpf_htonl(1)) ||
		       (a0 == 0 && a1 == 0 && a2 == bpf_htonl(0xffff) && (a3 & 0xff) == 127);
	}
	ev.verdict = 1;
	if (!loop && (!s || (s->net_mode == 1 && !allowed(s->cgid, ev.family, ev.port, ev.addr))))
		ev.verdict = 0;
	/* Allowed loopback traffic is the proxy's business and would only add noise. */
	if (s && (!loop || !ev.verdict))
		emit(s, &ev, sizeof(ev));
	return ev.verdict ? 1 : 0;
}


SEC("cgroup/connect4")
int connect4(struct bpf_sock_addr *ctx) { return net_decide(ctx, HOOK_CONNECT4, false); }

SEC("cgroup/connect6")
int connect6(struct bpf_sock_addr *ctx) { return net_decide(ctx, HOOK_CONNECT6, true); }

SEC("cgroup/sendmsg4")
int sendmsg4(struct bpf_sock_addr *ctx) { return net_decide(ctx, HOOK_SENDMSG4, false); }

SEC("cgroup/sendmsg6")
int sendmsg6(struct bpf_sock_addr *ctx) { return net_decide(ctx, HOOK_SENDMSG6, true); }

/* Raw and packet sockets see and forge traffic below every other rule. */
SEC("cgroup/sock_create")
int sock_create(struct bpf_sock *ctx)
{
	__u32 family = ctx->family, type = ctx->type;
	if (type != 3 /* SOCK_RAW */ && family != 17 /* AF_PACKET */)
		return 1;
	struct ev_net ev = {};
	net_hdr(&ev);
	ev.hook = HOOK_SOCK_CREATE;
	ev.verdict = 0;
	ev.family = family;
	ev.type = type;
	ev.protocol = ctx->protocol;
	struct session *s = current_session();
	if (s)
		emit(s, &ev, sizeof(ev));
	return 0;
}
