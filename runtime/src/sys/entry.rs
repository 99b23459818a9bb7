//! carte's ELF entry point (`carte_entry`, chosen by the Makefile's `-e` link flag on x86-64): the
//! self-exec defence's re-mapping for the verbs that need it (`selfexe::early`, which must run
//! before the relocation writes a page), one `madvise(MADV_POPULATE_WRITE)`, then glibc's own
//! `_start`.
//!
//! carte is a static PIE: before `main`, glibc's start-up adds the load address to 10,800
//! pointers in `.data.rel.ro`, `.got` and `.data` (vtables, string tables, regex-syntax's Unicode
//! tables that oci-spec's `regex` brings). Those 55 pages are mapped private from the file, so
//! each first write is a copy-on-write fault: 55 faults on every start of every verb, about 0.14 ms
//! of `carte state` on the bench VM. Populating the range first makes the kernel copy the pages
//! in one call, without a trap per page: about 0.05 ms less per start (bench/README.md). Dropping
//! PIE would save all of it and lose the randomised address of carte's own code (ASLR); kept.
//!
//! The range is from the page of `__init_array_start` (the writable segment opens with `.tdata`,
//! `.init_array` and then the relocated sections) to `_edata` (the end of `.data`; `.bss` is
//! zero pages, never copied). Nothing here can fail the start: a kernel without
//! MADV_POPULATE_WRITE (before 5.14) or a range the layout made wrong returns an error that is
//! ignored, and the pages then fault one at a time as before. The kernel starts a process with
//! `%rdx` holding the dynamic loader's exit handler (0 for a static binary): kept for `_start`,
//! which also finds argc, argv, the environment and the auxiliary vector at `%rsp`, as the kernel
//! left them.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
std::arch::global_asm!(
    // Its own section, so `make layout` can place it with _start in .text.hot.
    ".pushsection .text.carte_entry, \"ax\", @progbits",
    ".globl carte_entry",
    ".type carte_entry, @function",
    "carte_entry:",
    // %r12 is callee-saved: it keeps %rdx through the call. The kernel aligned %rsp to 16 bytes,
    // as a call wants it.
    "mov %rdx, %r12",
    "mov %rsp, %rdi",
    "call carte_early_protect",
    "lea __init_array_start(%rip), %rdi",
    "and $-4096, %rdi",
    "lea _edata(%rip), %rsi",
    "sub %rdi, %rsi",
    "mov ${populate_write}, %edx",
    "mov ${madvise}, %eax",
    "syscall",
    "mov %r12, %rdx",
    "jmp _start",
    ".size carte_entry, . - carte_entry",
    ".popsection",
    populate_write = const libc::MADV_POPULATE_WRITE,
    madvise = const libc::SYS_madvise,
    options(att_syntax)
);
