/*
 * Context switch for x86-64 (System V ABI). See coro.c for how it is used.
 *
 * void ag__coro_switch(void **save_sp, void *sp)
 *   Pushes the callee-saved registers (rbp, rbx, r12-r15) and the FPU control state
 *   (MXCSR, x87 control word), stores the stack pointer in *save_sp, loads sp, pops the
 *   same frame from the new stack and returns into it. Everything else is caller-saved,
 *   so the C compiler already treats it as clobbered by the call.
 *
 * ag__coro_start
 *   First return address of a new coroutine: ag__coro_new builds a frame whose r12 holds
 *   the coroutine and r13 the C entry point, and whose return address is this label.
 *   The entry point never returns.
 *
 * Frame layout, from the saved stack pointer upwards:
 *   0: MXCSR (4 bytes), 4: x87 control word (2 bytes, 2 spare)
 *   8: r15, 16: r14, 24: r13, 32: r12, 40: rbx, 48: rbp, 56: return address
 */
#if defined(__x86_64__)

	.text

	.globl	ag__coro_switch
	.hidden	ag__coro_switch
	.type	ag__coro_switch, @function
	.p2align 4
ag__coro_switch:
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	subq	$8, %rsp
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp
	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	addq	$8, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.size	ag__coro_switch, .-ag__coro_switch

	.globl	ag__coro_start
	.hidden	ag__coro_start
	.type	ag__coro_start, @function
	.p2align 4
ag__coro_start:
	.cfi_startproc
	/* Outermost frame: unwinders and debuggers stop here. */
	.cfi_undefined rip
	movq	%r12, %rdi
	callq	*%r13
	ud2
	.cfi_endproc
	.size	ag__coro_start, .-ag__coro_start

#endif

	.section .note.GNU-stack,"",%progbits
