/*
 * Coroutines: stackful, asymmetric (the loop resumes a coroutine, the coroutine yields
 * back to whoever resumed it). Agents run on them so an agent body is a plain loop that
 * pulls events. The switch is a few instructions of assembly (x86-64, aarch64) that save
 * the callee-saved registers and the stack pointer; other machines fall back to ucontext.
 * Stacks are mmap'ed with a PROT_NONE guard page below them so an overflow faults
 * instead of corrupting the heap. Switches are annotated for ASan
 * (__sanitizer_start/finish_switch_fiber) and stacks are registered with valgrind.
 * One thread only: the loop thread.
 */
#ifndef AG_CORO_H
#define AG_CORO_H

#include <stddef.h>

struct ag__coro;

typedef void (*ag__coro_fn)(void *arg);

/* Default stack size (usable bytes, the guard page comes on top). */
#define AG__CORO_STACK_DEFAULT (256u * 1024u)

/*
 * Creates a coroutine that will run fn(arg) on its own stack of stack_size bytes
 * (0: the default; rounded up to pages). It does not start until ag__coro_resume.
 * Returns 0 and sets *out, or -ENOMEM.
 */
int ag__coro_new(struct ag__coro **out, ag__coro_fn fn, void *arg, size_t stack_size);

/* Frees a coroutine that finished or never started (or is suspended: its stack is
 * dropped without unwinding). NULL is a no-op. Must not be the running coroutine. */
void ag__coro_free(struct ag__coro *c);

/*
 * Switches into c until it yields or its function returns. Must be called from outside
 * any coroutine (the loop). Returns 0, -EINVAL if c finished or is already running.
 */
int ag__coro_resume(struct ag__coro *c);

/* From inside a coroutine: switches back to the caller of ag__coro_resume. */
void ag__coro_yield(void);

/* The running coroutine, or NULL on the loop. */
struct ag__coro *ag__coro_current(void);

/* Non-zero once the coroutine's function has returned. */
int ag__coro_done(const struct ag__coro *c);

#endif
