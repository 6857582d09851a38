/*
 * Coroutines: switching both ways, values through shared memory, refused resumes, many
 * coroutines round-robin, deep stack use, freeing a suspended coroutine, and the guard
 * page: a child process that overflows a small coroutine stack by a few KiB must fault in
 * the guard page right below it (without the guard that memory would be writable and the
 * overflow silent), and one that recurses without bound must die of SIGSEGV.
 */
#include <errno.h>
#include <fenv.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coro.h"
#include "tap.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#if !defined(RUNNING_ON_VALGRIND)
#define RUNNING_ON_VALGRIND 0
#endif

struct pingpong {
	int in;
	int out;
	int steps;
	struct ag__coro *self;
	int current_ok;
};

/* Doubles whatever the loop passes in, until it passes a negative number. */
static void
doubler(void *arg)
{
	struct pingpong *p = arg;

	for (;;) {
		if (ag__coro_current() != p->self)
			p->current_ok = 0;
		if (p->in < 0)
			return;
		p->out = p->in * 2;
		p->steps++;
		ag__coro_yield();
	}
}

static void
test_pingpong(void)
{
	struct pingpong p = {.current_ok = 1};
	struct ag__coro *c = NULL;
	int all = 1;

	ok_int_eq(ag__coro_new(&c, doubler, &p, 0), 0, "new with the default stack");
	ok(c != NULL, "new sets *out");
	p.self = c;
	ok(ag__coro_current() == NULL, "no current coroutine on the loop");
	ok_int_eq(p.steps, 0, "does not start before the first resume");
	for (int i = 0; i < 100; i++) {
		p.in = i;
		if (ag__coro_resume(c) != 0 || p.out != 2 * i || ag__coro_done(c))
			all = 0;
	}
	ok(all, "100 round trips pass values both ways");
	ok_int_eq(p.steps, 100, "the coroutine ran once per resume");
	ok(ag__coro_current() == NULL, "current is NULL again after a yield");
	p.in = -1;
	ok_int_eq(ag__coro_resume(c), 0, "last resume");
	ok(ag__coro_done(c), "done once the function returned");
	ok(p.current_ok, "ag__coro_current() was the coroutine inside it");
	ok_int_eq(ag__coro_resume(c), -EINVAL, "resuming a finished coroutine is refused");
	ag__coro_free(c);
	/* Nothing to observe but surviving: free(NULL) must not touch memory. */
	ag__coro_free(NULL);
	ok(1, "free(NULL) is a no-op (surviving is the check)");
}

struct nested {
	struct ag__coro *self;
	struct ag__coro *other;
	int self_rc;
	int other_rc;
	int other_ran;
};

static void
set_flag(void *arg)
{
	*(int *)arg = 1;
}

static void
nester(void *arg)
{
	struct nested *n = arg;

	n->self_rc = ag__coro_resume(n->self);
	n->other_rc = ag__coro_resume(n->other);
	ag__coro_free(n->self); /* refused: running */
}

static void
test_nested(void)
{
	struct nested n = {0};

	ok_int_eq(ag__coro_new(&n.self, nester, &n, 16 * 1024), 0, "new");
	ok_int_eq(ag__coro_new(&n.other, set_flag, &n.other_ran, 16 * 1024), 0, "new");
	ok_int_eq(ag__coro_resume(n.self), 0, "resume");
	ok_int_eq(n.self_rc, -EINVAL, "a coroutine cannot resume itself");
	ok_int_eq(n.other_rc, -EINVAL, "a coroutine cannot resume another one");
	ok_int_eq(n.other_ran, 0, "the other one did not run");
	ok(ag__coro_done(n.self), "the nester finished (freeing itself was a no-op)");
	ok_int_eq(ag__coro_resume(NULL), -EINVAL, "resume(NULL) is refused");
	ag__coro_yield();
	ok(ag__coro_current() == NULL, "yield on the loop returns, still on the loop");
	ag__coro_free(n.self);
	ag__coro_free(n.other);
}

#define MANY 10000
#define ROUNDS 5

struct worker {
	int id;
	int rounds;
	int *trace; /* shared: the order the workers ran in */
	size_t *ntrace;
};

static void
round_robin(void *arg)
{
	struct worker *w = arg;

	for (int r = 0; r < ROUNDS; r++) {
		w->trace[(*w->ntrace)++] = w->id;
		w->rounds++;
		ag__coro_yield();
	}
}

static void
test_many(void)
{
	struct ag__coro **c = calloc(MANY, sizeof(*c));
	struct worker *w = calloc(MANY, sizeof(*w));
	int *trace = calloc((size_t)MANY * ROUNDS, sizeof(*trace));
	size_t ntrace = 0;
	int created = 0, resumed = 1, order = 1, rounds = 1, done = 1;

	for (int i = 0; i < MANY; i++) {
		w[i] = (struct worker){.id = i, .trace = trace, .ntrace = &ntrace};
		if (ag__coro_new(&c[i], round_robin, &w[i], 16 * 1024) == 0)
			created++;
	}
	ok_int_eq(created, MANY, "created %d coroutines with 16 KiB stacks", MANY);
	if (created != MANY)
		goto out;
	/* One more round than the workers loop: the last one lets them return. */
	for (int r = 0; r <= ROUNDS; r++)
		for (int i = 0; i < MANY; i++)
			if (ag__coro_resume(c[i]) != 0)
				resumed = 0;
	ok(resumed, "every resume succeeded");
	ok_int_eq(ntrace, (size_t)MANY * ROUNDS, "every worker ran every round");
	for (size_t k = 0; k < ntrace; k++)
		if (trace[k] != (int)(k % MANY))
			order = 0;
	ok(order, "they interleaved round-robin");
	for (int i = 0; i < MANY; i++) {
		if (w[i].rounds != ROUNDS)
			rounds = 0;
		if (!ag__coro_done(c[i]))
			done = 0;
	}
	ok(rounds, "each worker counted %d rounds", ROUNDS);
	ok(done, "all of them are done");
out:
	for (int i = 0; i < MANY; i++)
		ag__coro_free(c[i]);
	free(c);
	free(w);
	free(trace);
}

/* Recursion with a few hundred bytes per frame; the result depends on every frame. */
static uint64_t
deep(int n, volatile uint8_t *prev)
{
	volatile uint8_t buf[256];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(n + i + (prev ? prev[i] : 0));
	if (n == 0)
		return buf[0];
	return deep(n - 1, buf) + buf[sizeof(buf) - 1];
}

struct stack_use {
	uint64_t result;
	double fp;
};

static void
use_stack(void *arg)
{
	struct stack_use *s = arg;
	volatile double x = 1.5;

	s->result = deep(16, NULL); /* about 4-8 KiB of stack */
	ag__coro_yield();
	s->fp = x * 3.0;
}

static void
test_stack_use(void)
{
	struct stack_use s = {0};
	struct ag__coro *c;
	uint64_t expect = deep(16, NULL);

	ok_int_eq(ag__coro_new(&c, use_stack, &s, 64 * 1024), 0, "new with a 64 KiB stack");
	ok_int_eq(ag__coro_resume(c), 0, "resume");
	ok_int_eq(s.result, expect,
		  "deep recursion in a coroutine computes what it does on the loop");
	ok_int_eq(ag__coro_resume(c), 0, "resume");
	ok(s.fp == 4.5, "floating point state survives the switch");
	ok(ag__coro_done(c), "done");
	ag__coro_free(c);
}

struct rounding {
	int inside_before;
	int inside_after;
	double third_up;
};

/* Sets its own rounding mode, which must not leak to the loop nor be lost across a yield. */
static void
round_up(void *arg)
{
	struct rounding *r = arg;
	volatile double one = 1.0, three = 3.0;

	fesetround(FE_UPWARD);
	r->inside_before = fegetround();
	ag__coro_yield();
	r->inside_after = fegetround();
	r->third_up = one / three; /* SSE on x86-64: checks MXCSR, fegetround checks x87 */
	fesetround(FE_TONEAREST);
}

static void
test_rounding(void)
{
	struct rounding r = {0};
	struct ag__coro *c;
	volatile double one = 1.0, three = 3.0;
	double third_near;

	ok_int_eq(ag__coro_new(&c, round_up, &r, 32 * 1024), 0, "new");
	ok_int_eq(ag__coro_resume(c), 0, "resume");
	ok_int_eq(r.inside_before, FE_UPWARD, "the coroutine rounds upward");
	ok_int_eq(fegetround(), FE_TONEAREST, "the loop still rounds to nearest");
	third_near = one / three;
	ok_int_eq(ag__coro_resume(c), 0, "resume");
	ok_int_eq(r.inside_after, FE_UPWARD, "the coroutine's mode survived the yield");
	if (RUNNING_ON_VALGRIND)
		ok(1,
		   "1/3 rounded up in the coroutine # SKIP valgrind ignores the SSE rounding mode");
	else
		ok(r.third_up > third_near, "1/3 rounded up in the coroutine (%.17g > %.17g)",
		   r.third_up, third_near);
	ag__coro_free(c);
}

static int freed_ran_on;

static void
suspend_forever(void *arg)
{
	for (;;) {
		freed_ran_on++;
		ag__coro_yield();
	}
}

static void
test_free_suspended(void)
{
	struct ag__coro *c, *fresh;

	ok_int_eq(ag__coro_new(&c, suspend_forever, NULL, 32 * 1024), 0, "new");
	ok_int_eq(ag__coro_resume(c), 0, "resume");
	ok_int_eq(ag__coro_resume(c), 0, "resume");
	ok_int_eq(freed_ran_on, 2, "it ran twice");
	ok(!ag__coro_done(c), "suspended, not done");
	ag__coro_free(c);
	ok_int_eq(freed_ran_on, 2, "freeing a suspended coroutine does not run it again");
	ok_int_eq(ag__coro_new(&fresh, set_flag, &freed_ran_on, 32 * 1024), 0, "new after free");
	ok_int_eq(ag__coro_resume(fresh), 0, "a new coroutine runs after the free");
	ok(ag__coro_done(fresh), "and finishes");
	ag__coro_free(fresh);
	/*
	 * Surviving is the check: the function would dereference its NULL argument if the
	 * free ran it, and ASan's leak check covers the stack mapping's bookkeeping.
	 */
	ok_int_eq(ag__coro_new(&fresh, set_flag, NULL, 0), 0, "never-started coroutine");
	ag__coro_free(fresh);
	ok(1, "freeing a never-started coroutine does not run it (surviving is the check)");
}

static int
overflow(int n)
{
	volatile char buf[1024];

	buf[0] = (char)n;
	buf[sizeof(buf) - 1] = (char)n;
	/* A gigabyte deep: far past any coroutine stack, so the guard page stops it. */
	if (n > 1000 * 1000)
		return 0;
	return overflow(n + 1) + buf[0] + buf[sizeof(buf) - 1];
}

static void
overflower(void *arg)
{
	*(int *)arg = overflow(0);
}

/* The guard page of the coroutine below, as seen from inside it. */
static volatile uintptr_t guard_lo, guard_hi;

#define SMALL_STACK (16 * 1024)

static void
on_segv(int sig, siginfo_t *si, void *ctx)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	_exit(a >= guard_lo && a < guard_hi ? 42 : 43);
}

/* Recurses (frames of 512 bytes and more) until a frame lies below limit. */
static int
overflow_to(uintptr_t limit)
{
	volatile char buf[512];

	buf[0] = 1;
	buf[sizeof(buf) - 1] = 1;
	if ((uintptr_t)__builtin_frame_address(0) < limit)
		return buf[0];
	return overflow_to(limit) + buf[0] + buf[sizeof(buf) - 1];
}

/*
 * Runs on a SMALL_STACK coroutine. The stack's top is page aligned and the first frame lies
 * in its top page, so the usable stack is [top - SMALL_STACK, top) and the guard page the
 * page below. Recursion stops at the first frame below the stack: its buffer lies at most a
 * frame (~2 KiB here) past the stack, inside the guard page, so only the guard can make it
 * fault (without it, the overflow silently writes the unprotected page and returns).
 */
static void
small_overflower(void *arg)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t top = ((uintptr_t)__builtin_frame_address(0) + page - 1) & ~(page - 1);
	uintptr_t lo = top - SMALL_STACK;

	guard_lo = lo - page;
	guard_hi = lo;
	*(int *)arg = overflow_to(lo);
}

static void
test_guard_small_overflow(void)
{
	pid_t pid;
	int status = 0;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		static char altstack[64 * 1024];
		stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack)};
		struct sigaction sa = {.sa_sigaction = on_segv,
				       .sa_flags = SA_SIGINFO | SA_ONSTACK};
		struct ag__coro *c;
		int sink = 0;

		sigemptyset(&sa.sa_mask);
		if (sigaltstack(&ss, NULL) != 0 || sigaction(SIGSEGV, &sa, NULL) != 0)
			_exit(2);
		if (ag__coro_new(&c, small_overflower, &sink, SMALL_STACK) != 0)
			_exit(2);
		ag__coro_resume(c);
		_exit(3); /* the overflow went unnoticed */
	}
	ok(pid > 0, "fork");
	if (pid <= 0)
		return;
	ok_int_eq(waitpid(pid, &status, 0), pid, "waitpid");
	ok_int_eq(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 42,
		  "overflowing a %d KiB coroutine stack by one frame faults in its guard page (42; "
		  "43: "
		  "elsewhere, 3: no fault)",
		  SMALL_STACK / 1024);
}

static void
test_guard_page(void)
{
	pid_t pid;
	int status = 0;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		struct ag__coro *c;
		int sink = 0;

		/* Die of the signal itself, not of a sanitizer's or valgrind's report. */
		signal(SIGSEGV, SIG_DFL);
		if (ag__coro_new(&c, overflower, &sink, 16 * 1024) != 0)
			_exit(2);
		ag__coro_resume(c);
		_exit(3);
	}
	ok(pid > 0, "fork");
	if (pid <= 0)
		return;
	ok_int_eq(waitpid(pid, &status, 0), pid, "waitpid");
	ok(WIFSIGNALED(status), "the child overflowing a coroutine stack was killed (status %#x)",
	   status);
	ok_int_eq(WIFSIGNALED(status) ? WTERMSIG(status) : 0, SIGSEGV, "by SIGSEGV");
}

int
main(void)
{
	test_pingpong();
	test_nested();
	test_many();
	test_stack_use();
	test_rounding();
	test_free_suspended();
	test_guard_small_overflow();
	test_guard_page();
	return tap_done();
}
