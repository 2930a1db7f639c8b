/*
 * check.h — assertions on invariants that stay on in every build
 * (CONVENTIONS.md "Errors": a programmer error prints the condition, file
 * and line and stops the process). assert() would do in our builds, which
 * keep NDEBUG off, but an invariant must not vanish because someone
 * configured -Db_ndebug=true: CHECK cannot be compiled out.
 *
 * Use it for what the code itself guarantees (a slot is free, a list holds
 * a connection once, a counter never goes below zero), never for what a
 * client or a file can make false: that is an error to return.
 */
#ifndef STARLING_CORE_CHECK_H
#define STARLING_CORE_CHECK_H

_Noreturn void check_failed(const char *cond, const char *file, int line, const char *func);

#define CHECK(cond)                                                                                \
	((cond) ? (void)0 : check_failed(#cond, __FILE__, __LINE__, __func__))

#endif
