/*
 * Context switch for aarch64 (AAPCS64). See coro.c for how it is used.
 *
 * void ag__coro_switch(void **save_sp, void *sp)
 *   Stores the callee-saved registers (x19-x28, the frame pointer x29, the link register
 *   x30 and the low halves d8-d15 of v8-v15) below the stack pointer, stores the stack
 *   pointer in *save_sp, loads sp, reloads the same frame from the new stack and returns
 *   through the reloaded x30.
 *
 * ag__coro_start
 *   First return address of a new coroutine: ag__coro_new builds a frame whose x19 holds
 *   the coroutine and x20 the C entry point, and whose x30 is this label. The entry point
 *   never returns.
 *
 * Frame layout (160 bytes, keeps sp 16-byte aligned), from the saved stack pointer:
 *   0: x19, x20, x21, x22, x23, x24, x25, x26, x27, x28, 80: x29, 88: x30,
 *   96: d8, d9, d10, d11, d12, d13, d14, 152: d15
 */
#if defined(__aarch64__)

	.text

	.globl	ag__coro_switch
	.hidden	ag__coro_switch
	.type	ag__coro_switch, %function
	.p2align 4
ag__coro_switch:
	hint	#34			/* bti c: may be reached through a PLT */
	sub	sp, sp, #160
	stp	x19, x20, [sp, #0]
	stp	x21, x22, [sp, #16]
	stp	x23, x24, [sp, #32]
	stp	x25, x26, [sp, #48]
	stp	x27, x28, [sp, #64]
	stp	x29, x30, [sp, #80]
	stp	d8, d9, [sp, #96]
	stp	d10, d11, [sp, #112]
	stp	d12, d13, [sp, #128]
	stp	d14, d15, [sp, #144]
	mov	x9, sp
	str	x9, [x0]
	mov	sp, x1
	ldp	x19, x20, [sp, #0]
	ldp	x21, x22, [sp, #16]
	ldp	x23, x24, [sp, #32]
	ldp	x25, x26, [sp, #48]
	ldp	x27, x28, [sp, #64]
	ldp	x29, x30, [sp, #80]
	ldp	d8, d9, [sp, #96]
	ldp	d10, d11, [sp, #112]
	ldp	d12, d13, [sp, #128]
	ldp	d14, d15, [sp, #144]
	add	sp, sp, #160
	ret
	.size	ag__coro_switch, .-ag__coro_switch

	.globl	ag__coro_start
	.hidden	ag__coro_start
	.type	ag__coro_start, %function
	.p2align 4
ag__coro_start:
	.cfi_startproc
	/* Outermost frame: unwinders and debuggers stop here. */
	.cfi_undefined x30
	hint	#34			/* bti c */
	mov	x0, x19
	blr	x20
	brk	#1
	.cfi_endproc
	.size	ag__coro_start, .-ag__coro_start

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
	/* GNU property note: this object is BTI-compatible, so a BTI build stays BTI. */
	.pushsection .note.gnu.property, "a"
	.p2align 3
	.word	4			/* name size */
	.word	16			/* descriptor size */
	.word	5			/* NT_GNU_PROPERTY_TYPE_0 */
	.asciz	"GNU"
	.word	0xc0000000		/* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
	.word	4
	.word	1			/* BTI */
	.word	0
	.popsection
#endif

#endif

	.section .note.GNU-stack,"",%progbits
