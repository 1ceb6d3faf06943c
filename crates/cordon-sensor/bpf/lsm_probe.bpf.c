// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* The start of an optional BPF-LSM tier: one LSM program that refuses to open files named
 * `cordon-lsm-canary`. `cordon doctor` loads it to learn whether this kernel runs BPF-LSM programs
 * (these development hosts refuse them with EPERM; kernels booted with lsm=...,bpf accept them), and
 * the kernel matrix checks that it really denies an open. Newer verifiers require an LSM program's
 * return value to be provably within [-4095, 0]: every path returns 0 or -EPERM. */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

#define EPERM 1

/* Opens refused so far (read by the loader to show the denial was this program's). */
__u64 denied = 0;

SEC("lsm/file_open")
int BPF_PROG(canary_open, struct file *file, int ret)
{
	if (ret != 0)
		return ret < -4095 ? -EPERM : (ret > 0 ? 0 : ret);
	char name[20] = {};
	const unsigned char *n = BPF_CORE_READ(file, f_path.dentry, d_name.name);
	if (bpf_probe_read_kernel_str(name, sizeof(name), n) < 0)
		return 0;
	const char want[] = "cordon-lsm-canary";
	for (int i = 0; i < (int)sizeof(want); i++) {
		if (name[i] != want[i])
			return 0;
	}
	__sync_fetch_and_add(&denied, 1);
	return -EPERM;
}
