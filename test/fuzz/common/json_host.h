/*
 * json_host.h: the fuzz targets' host for extension/model.c: JSON parsed by
 * jansson stands in for jsonb (numbers, containers, keys in jsonb's order),
 * memory is an arena freed after each input, and an error ends the check
 * with a longjmp after its message is checked (non-empty, valid UTF-8).
 */
#ifndef FUZZ_JSON_HOST_H
#define FUZZ_JSON_HOST_H

#include <jansson.h>
#include <setjmp.h>

#include "model.h"

typedef struct FuzzRun
{
	jmp_buf		jump;
	int			failed;			/* the check raised an error */
	ModelError	error;
	char		message[256];	/* its first bytes, for comparing runs */
	void	   *arena;			/* allocations of this run */
	long		interrupts;
} FuzzRun;

/* The host over run (fail longjmps to run->jump). */
extern ModelHost fuzz_host(FuzzRun *run);
/* Frees the run's memory. */
extern void fuzz_run_end(FuzzRun *run);

/* input as JSON (big integers as reals when they do not fit), or NULL */
extern json_t *fuzz_parse(const unsigned char *data, size_t size);
/* value as a ModelValue */
extern void fuzz_value(const json_t *v, ModelValue *out);

/* 1 when s[0..len) is valid UTF-8 (no overlongs, no surrogates) */
extern int	fuzz_utf8_valid(const char *s, size_t len);
/* Aborts (a crash libFuzzer reports) with why. */
extern void fuzz_die(const char *why, const char *detail) __attribute__((noreturn));

#endif
