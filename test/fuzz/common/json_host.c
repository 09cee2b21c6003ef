/*
 * json_host.c: the fuzz targets' host for extension/model.c (see
 * json_host.h).  Object members are visited in jsonb's key order (shorter
 * keys first, then bytewise), as the server's host visits them.
 */
#include "json_host.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Chunk
{
	struct Chunk *next;
	/* the allocation follows, aligned */
	long double align[];
} Chunk;

static void *
host_alloc(void *arg, size_t size)
{
	FuzzRun    *run = arg;
	Chunk	   *c = malloc(sizeof(Chunk) + size);

	if (c == NULL)
		fuzz_die("out of memory", NULL);
	c->next = run->arena;
	run->arena = c;
	return c->align;
}

void
fuzz_run_end(FuzzRun *run)
{
	Chunk	   *c = run->arena;

	while (c != NULL)
	{
		Chunk	   *next = c->next;

		free(c);
		c = next;
	}
	run->arena = NULL;
}

void
fuzz_die(const char *why, const char *detail)
{
	fprintf(stderr, "fuzz: %s%s%s\n", why, detail ? ": " : "", detail ? detail : "");
	abort();
}

int
fuzz_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *) str;
	size_t		i = 0;

	while (i < len)
	{
		unsigned	c = s[i];
		size_t		n;
		unsigned	cp;

		if (c < 0x80)
		{
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			n = 1, cp = c & 0x1F;
		else if (c >= 0xE0 && c <= 0xEF)
			n = 2, cp = c & 0x0F;
		else if (c >= 0xF0 && c <= 0xF4)
			n = 3, cp = c & 0x07;
		else
			return 0;
		if (i + n >= len)
			return 0;
		for (size_t k = 1; k <= n; k++)
		{
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
			(cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += n + 1;
	}
	return 1;
}

static void host_fail(void *arg, ModelError error, const char *message, const char *hint)
			__attribute__((noreturn));

static void
host_fail(void *arg, ModelError error, const char *message, const char *hint)
{
	FuzzRun    *run = arg;

	if (message == NULL || message[0] == '\0')
		fuzz_die("an error without a message", NULL);
	if (!fuzz_utf8_valid(message, strlen(message)))
		fuzz_die("an error message that is not valid UTF-8", message);
	if (hint != NULL && !fuzz_utf8_valid(hint, strlen(hint)))
		fuzz_die("an error hint that is not valid UTF-8", hint);
	if (error < MODEL_INVALID || error > MODEL_CHECK)
		fuzz_die("an error of no known class", message);
	run->failed = 1;
	run->error = error;
	snprintf(run->message, sizeof(run->message), "%s", message);
	longjmp(run->jump, 1);
}

static void
host_interrupt(void *arg)
{
	((FuzzRun *) arg)->interrupts++;
}

/* UTF-8: the length its lead byte says, within remaining */
static int
host_char_len(void *arg, const char *s, int remaining)
{
	unsigned char c = (unsigned char) s[0];
	int			n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;

	return n < remaining ? n : remaining;
}

void
fuzz_value(const json_t *v, ModelValue *out)
{
	memset(out, 0, sizeof(*out));
	switch (json_typeof(v))
	{
		case JSON_NULL:
			out->kind = MK_NULL;
			break;
		case JSON_STRING:
			out->kind = MK_STRING;
			out->str = json_string_value(v);
			out->len = (int) json_string_length(v);
			break;
		case JSON_INTEGER:
		case JSON_REAL:
			out->kind = MK_NUMBER;
			out->ref = v;
			break;
		case JSON_TRUE:
		case JSON_FALSE:
			out->kind = MK_BOOL;
			out->boolean = json_is_true(v);
			break;
		case JSON_ARRAY:
			out->kind = MK_ARRAY;
			out->ref = v;
			break;
		case JSON_OBJECT:
			out->kind = MK_OBJECT;
			out->ref = v;
			break;
	}
}

static int
host_size(void *arg, const void *container)
{
	const json_t *c = container;

	return (int) (json_is_array(c) ? json_array_size(c) : json_object_size(c));
}

struct ModelIter
{
	const json_t *container;
	size_t		n;
	size_t		at;
	const char **keys;			/* objects: keys in jsonb's order */
};

static int
key_cmp(const void *a, const void *b)
{
	const char *x = *(const char *const *) a;
	const char *y = *(const char *const *) b;
	size_t		lx = strlen(x),
				ly = strlen(y);

	if (lx != ly)
		return lx < ly ? -1 : 1;
	return memcmp(x, y, lx);
}

static ModelIter *
host_iterate(void *arg, const void *container)
{
	const json_t *c = container;
	ModelIter  *it = host_alloc(arg, sizeof(ModelIter));

	it->container = c;
	it->at = 0;
	it->keys = NULL;
	if (json_is_array(c))
		it->n = json_array_size(c);
	else
	{
		const char *key;
		json_t	   *v;
		size_t		i = 0;

		it->n = json_object_size(c);
		it->keys = host_alloc(arg, sizeof(char *) * (it->n + 1));
		json_object_foreach((json_t *) c, key, v)
			it->keys[i++] = key;
		qsort(it->keys, it->n, sizeof(char *), key_cmp);
	}
	return it;
}

static bool
host_next(void *arg, ModelIter *it, ModelValue *key, ModelValue *value)
{
	if (it->at >= it->n)
		return false;
	if (it->keys == NULL)
		fuzz_value(json_array_get(it->container, it->at), value);
	else
	{
		const char *k = it->keys[it->at];

		if (key != NULL)
		{
			memset(key, 0, sizeof(*key));
			key->kind = MK_STRING;
			key->str = k;
			key->len = (int) strlen(k);
		}
		fuzz_value(json_object_get(it->container, k), value);
	}
	it->at++;
	return true;
}

static bool
host_member(void *arg, const void *object, const char *key, ModelValue *out)
{
	json_t	   *v = json_object_get(object, key);

	if (v == NULL)
		return false;
	fuzz_value(v, out);
	return true;
}

static bool
host_element(void *arg, const void *array, int index, ModelValue *out)
{
	json_t	   *v = index < 0 ? NULL : json_array_get(array, (size_t) index);

	if (v == NULL)
		return false;
	fuzz_value(v, out);
	return true;
}

static double
number(const json_t *v)
{
	return json_is_integer(v) ? (double) json_integer_value(v) : json_real_value(v);
}

/* JSON equality with numbers compared by value, as jsonb compares them */
static bool
json_same(const json_t *a, const json_t *b)
{
	if (json_is_number(a) && json_is_number(b))
	{
		if (json_is_integer(a) && json_is_integer(b))
			return json_integer_value(a) == json_integer_value(b);
		return number(a) == number(b);
	}
	if (json_is_array(a) && json_is_array(b))
	{
		if (json_array_size(a) != json_array_size(b))
			return false;
		for (size_t i = 0; i < json_array_size(a); i++)
			if (!json_same(json_array_get(a, i), json_array_get(b, i)))
				return false;
		return true;
	}
	return json_equal(a, b);
}

static bool
host_equal(void *arg, const void *a, const void *b)
{
	return json_same(a, b);
}

static const double bound_values[] = {
	[MB_NONE] = 0, [MB_ZERO] = 0, [MB_ONE] = 1, [MB_LARGE] = 1e300,
	[MB_INT64_MAX] = 9223372036854775807.0
};

static bool
host_within(void *arg, const void *num, ModelBound low, ModelBound high, bool integer)
{
	const json_t *v = num;
	double		d = number(v);

	if (integer && !json_is_integer(v))
		return false;			/* "3.0": the slower path decides */
	if (json_is_integer(v) && high == MB_INT64_MAX)
		return low == MB_NONE || json_integer_value(v) >= (json_int_t) bound_values[low];
	return (low == MB_NONE || d >= bound_values[low]) &&
		(high == MB_NONE || d <= bound_values[high]);
}

static bool
host_to_int64(void *arg, const void *num, int64_t *out)
{
	const json_t *v = num;
	double		d;

	if (json_is_integer(v))
	{
		*out = json_integer_value(v);
		return true;
	}
	d = json_real_value(v);
	if (!(d == floor(d)) || !(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
		return false;
	*out = (int64_t) d;
	return true;
}

static double
host_to_double(void *arg, const void *num)
{
	return number(num);
}

static const char *
host_to_text(void *arg, const void *num)
{
	const json_t *v = num;
	char	   *s = host_alloc(arg, 40);

	if (json_is_integer(v))
		snprintf(s, 40, "%lld", (long long) json_integer_value(v));
	else
		snprintf(s, 40, "%.17g", json_real_value(v));
	return s;
}

ModelHost
fuzz_host(FuzzRun *run)
{
	ModelHost	h = {
		.arg = run,
		.alloc = host_alloc,
		.fail = host_fail,
		.interrupt = host_interrupt,
		.char_len = host_char_len,
		.size = host_size,
		.iterate = host_iterate,
		.next = host_next,
		.member = host_member,
		.element = host_element,
		.equal = host_equal,
		.within = host_within,
		.to_int64 = host_to_int64,
		.to_double = host_to_double,
		.to_text = host_to_text,
	};

	return h;
}

json_t *
fuzz_parse(const unsigned char *data, size_t size)
{
	json_error_t err;
	json_t	   *v = json_loadb((const char *) data, size, JSON_DECODE_ANY, &err);

	if (v == NULL)
		v = json_loadb((const char *) data, size, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &err);
	return v;
}
