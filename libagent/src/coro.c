/*
 * Coroutines (see coro.h for the contract).
 *
 * A coroutine owns one mmap'ed region: a PROT_NONE guard page at the bottom, the usable
 * stack above it. Switching is asymmetric: ag__coro_resume switches from the loop into the
 * coroutine and records where it came from; ag__coro_yield switches back there. The hot
 * path is a thread-local load, two stores and the switch itself: no syscall, no
 * allocation.
 *
 * Backends, chosen at compile time:
 * - x86-64 and aarch64: ag__coro_switch in coro_<cpu>.S saves the callee-saved registers
 *   on the current stack, swaps stack pointers and restores the other side's registers.
 *   A new coroutine gets a hand-built frame whose return address is ag__coro_start,
 *   which calls coro_main(c).
 * - anything else: ucontext (swapcontext also saves the signal mask with a syscall, so it
 *   is much slower; it exists so the library builds everywhere). Defining
 *   AG_CORO_UCONTEXT forces it, to test it on the machines above.
 *
 * Tools: under AddressSanitizer every switch is announced with
 * __sanitizer_start_switch_fiber / __sanitizer_finish_switch_fiber so ASan knows which
 * stack is live; under valgrind (AG_HAVE_VALGRIND) each stack is registered so the stack
 * pointer jumping between regions is not taken for a giant stack frame.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "coro.h"

#if !defined(AG_CORO_UCONTEXT) && !defined(__x86_64__) && !defined(__aarch64__)
#define AG_CORO_UCONTEXT 1
#endif

#if defined(AG_CORO_UCONTEXT)
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define AG__CORO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AG__CORO_ASAN 1
#endif
#endif

#if defined(AG__CORO_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if defined(AG_HAVE_VALGRIND)
#include <valgrind/valgrind.h>
#endif

struct ag__coro {
#if defined(AG_CORO_UCONTEXT)
	ucontext_t ctx; /* the coroutine's context while it is suspended */
	ucontext_t caller; /* the resumer's context while the coroutine runs */
#else
	void *sp; /* the coroutine's stack pointer while it is suspended */
	void *caller_sp; /* the resumer's stack pointer while the coroutine runs */
#endif
	ag__coro_fn fn;
	void *arg;
	void *map; /* guard page + stack, as mmap'ed */
	size_t map_size;
	void *stack; /* lowest usable byte */
	size_t stack_size; /* usable bytes */
	int done;
#if defined(AG_HAVE_VALGRIND)
	unsigned vg_stack;
#endif
#if defined(AG__CORO_ASAN)
	void *fake_stack; /* ASan's fake stack of the coroutine while suspended */
	const void *caller_bottom; /* the resumer's stack, as ASan reported it */
	size_t caller_size;
#endif
};

/* The running coroutine of this thread; NULL while the loop runs. */
static _Thread_local struct ag__coro *current;

#if !defined(AG_CORO_UCONTEXT)
/* In coro_<cpu>.S. */
void ag__coro_switch(void **save_sp, void *sp);
void ag__coro_start(void);
#endif

/*
 * ASan hooks. Before a switch: the stack we are going to. After a switch: finish, which
 * also tells a coroutine which stack resumed it. A NULL fake-stack slot on the way out of
 * a finished coroutine lets ASan drop that coroutine's fake stack.
 */
static inline void
asan_start(void **fake_save, const void *bottom, size_t size)
{
#if defined(AG__CORO_ASAN)
	__sanitizer_start_switch_fiber(fake_save, bottom, size);
#else
	(void)fake_save;
	(void)bottom;
	(void)size;
#endif
}

static inline void
asan_finish(void *fake, const void **bottom_old, size_t *size_old)
{
#if defined(AG__CORO_ASAN)
	__sanitizer_finish_switch_fiber(fake, bottom_old, size_old);
#else
	(void)fake;
	(void)bottom_old;
	(void)size_old;
#endif
}

#if defined(AG__CORO_ASAN)
#define CALLER_BOTTOM(c) (&(c)->caller_bottom)
#define CALLER_SIZE(c) (&(c)->caller_size)
#define CALLER_STACK(c) (c)->caller_bottom, (c)->caller_size
#define FAKE_SAVE(c) (&(c)->fake_stack)
#define FAKE(c) ((c)->fake_stack)
#else
#define CALLER_BOTTOM(c) NULL
#define CALLER_SIZE(c) NULL
#define CALLER_STACK(c) NULL, 0
#define FAKE_SAVE(c) NULL
#define FAKE(c) NULL
#endif

/* From the loop into c; returns when c yields or finishes. */
static inline void
switch_in(struct ag__coro *c)
{
#if defined(AG_CORO_UCONTEXT)
	swapcontext(&c->caller, &c->ctx);
#else
	ag__coro_switch(&c->caller_sp, c->sp);
#endif
}

/* From c back to its resumer; returns when c is resumed again. */
static inline void
switch_out(struct ag__coro *c)
{
#if defined(AG_CORO_UCONTEXT)
	swapcontext(&c->ctx, &c->caller);
#else
	ag__coro_switch(&c->sp, c->caller_sp);
#endif
}

/* Runs on the coroutine's own stack, first thing after the first switch into it. */
static _Noreturn void
coro_main(struct ag__coro *c)
{
	asan_finish(NULL, CALLER_BOTTOM(c), CALLER_SIZE(c));
	c->fn(c->arg);
	c->done = 1;
	asan_start(NULL, CALLER_STACK(c));
	switch_out(c);
	/* Nobody resumes a finished coroutine (ag__coro_resume refuses). */
	abort();
}

#if defined(AG_CORO_UCONTEXT)
/* makecontext passes int arguments only; the coroutine is the current one anyway. */
static void
coro_main_uc(void)
{
	coro_main(current);
}
#endif

/* Builds the first frame that switch_in pops: it "returns" into coro_main(c). */
static int
init_context(struct ag__coro *c)
{
#if defined(AG_CORO_UCONTEXT)
	if (getcontext(&c->ctx) != 0)
		return -errno;
	c->ctx.uc_stack.ss_sp = c->stack;
	c->ctx.uc_stack.ss_size = c->stack_size;
	c->ctx.uc_link = NULL;
	makecontext(&c->ctx, coro_main_uc, 0);
#elif defined(__x86_64__)
	/* Layout as documented in coro_x86_64.S; the top of the stack is page aligned. */
	uint64_t *f = (uint64_t *)((char *)c->stack + c->stack_size) - 8;
	uint32_t fpu[2] = {
		0x1f80u, /* MXCSR: all exceptions masked, round to nearest */
		0x037fu, /* x87 control word: the same, 64-bit precision */
	};

	memset(f, 0, 8 * sizeof(*f));
	memcpy(&f[0], fpu, sizeof(fpu));
	f[3] = (uint64_t)(uintptr_t)coro_main; /* r13 */
	f[4] = (uint64_t)(uintptr_t)c; /* r12 */
	f[7] = (uint64_t)(uintptr_t)ag__coro_start;
	c->sp = f;
#elif defined(__aarch64__)
	/* Layout as documented in coro_aarch64.S. */
	uint64_t *f = (uint64_t *)((char *)c->stack + c->stack_size) - 20;

	memset(f, 0, 20 * sizeof(*f));
	f[0] = (uint64_t)(uintptr_t)c; /* x19 */
	f[1] = (uint64_t)(uintptr_t)coro_main; /* x20 */
	f[11] = (uint64_t)(uintptr_t)ag__coro_start; /* x30 */
	c->sp = f;
#endif
	return 0;
}

int
ag__coro_new(struct ag__coro **out, ag__coro_fn fn, void *arg, size_t stack_size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct ag__coro *c;
	int flags = MAP_PRIVATE | MAP_ANONYMOUS;
	int err;

	if (fn == NULL)
		return -EINVAL;
	if (stack_size == 0)
		stack_size = AG__CORO_STACK_DEFAULT;
	if (stack_size > SIZE_MAX - 2 * page)
		return -ENOMEM;
	stack_size = (stack_size + page - 1) & ~(page - 1);

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->fn = fn;
	c->arg = arg;
	c->map_size = stack_size + page;
#if defined(MAP_STACK)
	flags |= MAP_STACK;
#endif
	c->map = mmap(NULL, c->map_size, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (c->map == MAP_FAILED) {
		err = -ENOMEM;
		goto out;
	}
	/* The stack grows down, so the guard goes at the lowest addresses. */
	if (mprotect(c->map, page, PROT_NONE) != 0) {
		err = -ENOMEM;
		goto out_unmap;
	}
	c->stack = (char *)c->map + page;
	c->stack_size = stack_size;
	err = init_context(c);
	if (err < 0)
		goto out_unmap;
#if defined(AG_HAVE_VALGRIND)
	/* The stack pointer may equal the top while the stack is empty, so top is included. */
	c->vg_stack = VALGRIND_STACK_REGISTER(c->stack, (char *)c->stack + c->stack_size);
#endif
	*out = c;
	return 0;

out_unmap:
	munmap(c->map, c->map_size);
out:
	free(c);
	return err;
}

void
ag__coro_free(struct ag__coro *c)
{
	if (c == NULL || c == current)
		return;
#if defined(AG_HAVE_VALGRIND)
	VALGRIND_STACK_DEREGISTER(c->vg_stack);
#endif
#if defined(AG__CORO_ASAN)
	/*
	 * Frames left on the stack (a suspended coroutine, or coro_main which never returns)
	 * keep their redzones poisoned; clear them so a later mapping at the same address
	 * does not inherit them.
	 */
	ASAN_UNPOISON_MEMORY_REGION(c->stack, c->stack_size);
#endif
	munmap(c->map, c->map_size);
	free(c);
}

int
ag__coro_resume(struct ag__coro *c)
{
	void *fake = NULL;

	/* current != NULL: called from a coroutine (including c itself). */
	if (c == NULL || c->done || current != NULL)
		return -EINVAL;
	current = c;
	asan_start(&fake, c->stack, c->stack_size);
	switch_in(c);
	asan_finish(fake, NULL, NULL);
	current = NULL;
	return 0;
}

void
ag__coro_yield(void)
{
	struct ag__coro *c = current;

	/* On the loop there is nobody to yield to. */
	if (c == NULL)
		return;
	asan_start(FAKE_SAVE(c), CALLER_STACK(c));
	switch_out(c);
	asan_finish(FAKE(c), CALLER_BOTTOM(c), CALLER_SIZE(c));
}

struct ag__coro *
ag__coro_current(void)
{
	return current;
}

int
ag__coro_done(const struct ag__coro *c)
{
	return c->done;
}
