/*-------------------------------------------------------------------------
 * model.c
 *	  The event models: the eight workspace event types (the seed's
 *	  EVENT_MODELS), the three conversation events, and the rules for stream
 *	  ids, Kafka topic names and headers, as pure C over a ModelValue (see
 *	  model.h).  No PostgreSQL header: validate.c is its host in the server,
 *	  test/fuzz its host under libFuzzer.
 *
 *	  Every error names the field by its path (model.field[index].field),
 *	  says what was expected and what was given, and is of class 22 (wrong
 *	  value) or 23 (missing or inconsistent).  Quoted values are cut on a
 *	  character boundary; long loops call the host's interrupt check.
 *-------------------------------------------------------------------------
 */
#include "model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum FieldKind
{
	FK_INT_NONNEG,				/* integer >= 0 */
	FK_TEXT,					/* string */
	FK_ENUM,					/* string, one of values */
	FK_UNIT,					/* number in [0, 1] */
	FK_NUMBER_NONNEG,			/* number >= 0 */
	FK_BOOL,
	FK_SCALAR,					/* string, number, boolean or null */
	FK_TEXT_ARRAY,				/* array of strings */
	FK_CUSTOM					/* checked by the model's own function */
} FieldKind;

typedef void (*custom_fn) (const ModelHost *h, const char *path, const ModelValue *v);

typedef struct FieldSpec
{
	const char *name;
	FieldKind	kind;
	bool		required;
	const char *const *values;	/* FK_ENUM */
	custom_fn	check;			/* FK_CUSTOM */
} FieldSpec;

typedef struct ModelSpec
{
	const char *name;
	const FieldSpec *fields;
	void		(*cross_check) (const ModelHost *h, const char *model, const ModelValue *payload);
} ModelSpec;

#define MAX_FIELDS 16
#define INTERRUPT_EVERY 1024

#if defined(__GNUC__) || defined(__clang__)
#define MODEL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define MODEL_NORETURN __attribute__((noreturn))
#else
#define MODEL_PRINTF(f, a)
#define MODEL_NORETURN
#endif

/* ---------- memory, text and errors ---------- */

static char *model_printf(const ModelHost *h, const char *fmt,...) MODEL_PRINTF(2, 3);

static char *
model_printf(const ModelHost *h, const char *fmt,...)
{
	va_list		ap;
	int			n;
	char	   *s;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	s = h->alloc(h->arg, (size_t) n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t) n + 1, fmt, ap);
	va_end(ap);
	return s;
}

static char *
model_strndup(const ModelHost *h, const char *s, int len)
{
	char	   *d = h->alloc(h->arg, (size_t) len + 1);

	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

static void fail(const ModelHost *h, ModelError e, const char *hint, const char *fmt,...)
			MODEL_PRINTF(4, 5) MODEL_NORETURN;

static void
fail(const ModelHost *h, ModelError e, const char *hint, const char *fmt,...)
{
	va_list		ap;
	int			n;
	char	   *msg;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	msg = h->alloc(h->arg, (size_t) n + 1);
	va_start(ap, fmt);
	vsnprintf(msg, (size_t) n + 1, fmt, ap);
	va_end(ap);
	h->fail(h->arg, e, msg, hint);
	abort();					/* a host whose fail returns is broken */
}

int
model_clip(const ModelHost *h, const char *s, int len, int limit)
{
	int			n = 0;

	if (len <= limit)
		return len;
	while (n < len)
	{
		int			c = h->char_len(h->arg, s + n, len - n);

		if (c < 1)
			c = 1;
		if (n + c > limit)
			break;
		n += c;
	}
	return n;
}

static const char *
kind_name(const ModelValue *v)
{
	switch (v->kind)
	{
		case MK_NULL:
			return "null";
		case MK_STRING:
			return "a string";
		case MK_NUMBER:
			return "a number";
		case MK_BOOL:
			return "a boolean";
		case MK_ARRAY:
			return "an array";
		case MK_OBJECT:
			return "an object";
	}
	return "a value of another kind";
}

/*
 * What was given, for messages: the value itself for scalars, cut after
 * MODEL_GOT_MAX bytes on a character boundary (a cut character would make
 * the message invalid in its encoding, and unconvertible for the client).
 */
static const char *
got(const ModelHost *h, const ModelValue *v)
{
	const char *s;
	int			n;

	switch (v->kind)
	{
		case MK_STRING:
			if (v->len <= MODEL_GOT_MAX)
				return model_printf(h, "\"%.*s\"", v->len, v->str);
			n = model_clip(h, v->str, v->len, MODEL_GOT_MAX - 1);
			return model_printf(h, "\"%.*s...", n, v->str);
		case MK_NUMBER:
			s = h->to_text(h->arg, v->ref);
			if (strlen(s) > MODEL_GOT_MAX + 2)
				return model_printf(h, "%.*s...", MODEL_GOT_MAX, s);
			return s;
		case MK_BOOL:
			return v->boolean ? "true" : "false";
		default:
			return kind_name(v);
	}
}

static void fail_type(const ModelHost *h, const char *path, const char *expected,
					  const ModelValue *v) MODEL_NORETURN;
static void fail_range(const ModelHost *h, const char *path, const char *expected,
					   const ModelValue *v) MODEL_NORETURN;

static void
fail_type(const ModelHost *h, const char *path, const char *expected, const ModelValue *v)
{
	fail(h, MODEL_INVALID, model_printf(h, "Send %s as %s.", path, expected),
		 "%s must be %s, got %s", path, expected, got(h, v));
}

static void
fail_range(const ModelHost *h, const char *path, const char *expected, const ModelValue *v)
{
	fail(h, MODEL_RANGE, model_printf(h, "Send %s as %s.", path, expected),
		 "%s must be %s, got %s", path, expected, got(h, v));
}

static const char *
join_values(const ModelHost *h, const char *const *values)
{
	size_t		len = 1;
	char	   *s;

	for (int i = 0; values[i] != NULL; i++)
		len += strlen(values[i]) + 2;
	s = h->alloc(h->arg, len);
	s[0] = '\0';
	for (int i = 0; values[i] != NULL; i++)
	{
		if (i)
			strcat(s, ", ");
		strcat(s, values[i]);
	}
	return s;
}

static bool
is_string(const ModelValue *v, const char *s)
{
	return v->kind == MK_STRING && v->len == (int) strlen(s) &&
		memcmp(v->str, s, v->len) == 0;
}

/* ---------- iteration over objects and arrays ---------- */

typedef void (*member_fn) (const ModelHost *h, const char *path, const char *key,
						   const ModelValue *v, void *arg);
typedef void (*element_fn) (const ModelHost *h, const char *path, int index,
							const ModelValue *v, void *arg);

/* Calls fn for each member; key is valid during the call only. */
static void
for_each_member(const ModelHost *h, const void *obj, const char *path, member_fn fn, void *arg)
{
	ModelIter  *it = h->iterate(h->arg, obj);
	ModelValue	k,
				v;
	char		keybuf[64];
	int			i = 0;

	while (h->next(h->arg, it, &k, &v))
	{
		const char *key;

		if (++i % INTERRUPT_EVERY == 0)
			h->interrupt(h->arg);
		if (k.len < (int) sizeof(keybuf))
		{
			memcpy(keybuf, k.str, k.len);
			keybuf[k.len] = '\0';
			key = keybuf;
		}
		else
			key = model_strndup(h, k.str, k.len);
		fn(h, path, key, &v, arg);
	}
}

static int
for_each_element(const ModelHost *h, const void *arr, const char *path, element_fn fn, void *arg)
{
	ModelIter  *it = h->iterate(h->arg, arr);
	ModelValue	v;
	int			i = 0;

	while (h->next(h->arg, it, NULL, &v))
	{
		if ((i + 1) % INTERRUPT_EVERY == 0)
			h->interrupt(h->arg);
		fn(h, path, i++, &v, arg);
	}
	return i;
}

/* ---------- field kinds ---------- */

static void
check_text_element(const ModelHost *h, const char *path, int index, const ModelValue *v, void *arg)
{
	if (v->kind != MK_STRING)
		fail_type(h, model_printf(h, "%s[%d]", path, index), "a string", v);
}

/*
 * Checks one field's value.  The field's FIELD_PATH (parent.key) is only
 * formatted when it is needed: in an error, or for a nested value's checks.
 */
#define FIELD_PATH model_printf(h, "%s.%s", parent, key)

static void
check_field(const ModelHost *h, const FieldSpec *f, const char *parent, const char *key,
			const ModelValue *v)
{
	int64_t		n;
	double		d;

	switch (f->kind)
	{
		case FK_INT_NONNEG:
			if (v->kind == MK_NUMBER &&
				h->within(h->arg, v->ref, MB_ZERO, MB_INT64_MAX, true))
				break;
			if (v->kind != MK_NUMBER || !h->to_int64(h->arg, v->ref, &n))
				fail_type(h, FIELD_PATH, "an integer >= 0", v);
			if (n < 0)
				fail_range(h, FIELD_PATH, "an integer >= 0", v);
			break;
		case FK_TEXT:
			if (v->kind != MK_STRING)
				fail_type(h, FIELD_PATH, "a string", v);
			break;
		case FK_ENUM:
			if (v->kind == MK_STRING)
				for (int i = 0; f->values[i] != NULL; i++)
					if (is_string(v, f->values[i]))
						return;
			fail(h, MODEL_INVALID, "Use one of the listed values, in lower case.",
				 "%s must be one of %s, got %s", FIELD_PATH, join_values(h, f->values),
				 got(h, v));
			break;
		case FK_UNIT:
			if (v->kind != MK_NUMBER)
				fail_type(h, FIELD_PATH, "a number between 0 and 1", v);
			if (h->within(h->arg, v->ref, MB_ZERO, MB_ONE, false))
				break;
			d = h->to_double(h->arg, v->ref);
			if (!(d >= 0.0 && d <= 1.0))
				fail_range(h, FIELD_PATH, "a number between 0 and 1", v);
			break;
		case FK_NUMBER_NONNEG:
			if (v->kind != MK_NUMBER)
				fail_type(h, FIELD_PATH, "a number >= 0", v);
			if (h->within(h->arg, v->ref, MB_ZERO, MB_LARGE, false))
				break;
			d = h->to_double(h->arg, v->ref);
			if (!(d >= 0.0) || isinf(d))
				fail_range(h, FIELD_PATH, "a number >= 0", v);
			break;
		case FK_BOOL:
			if (v->kind != MK_BOOL)
				fail_type(h, FIELD_PATH, "true or false", v);
			break;
		case FK_SCALAR:
			if (v->kind == MK_ARRAY || v->kind == MK_OBJECT)
				fail_type(h, FIELD_PATH, "a string, number, boolean or null", v);
			break;
		case FK_TEXT_ARRAY:
			if (v->kind != MK_ARRAY)
				fail_type(h, FIELD_PATH, "an array of strings", v);
			for_each_element(h, v->ref, FIELD_PATH, check_text_element, NULL);
			break;
		case FK_CUSTOM:
			f->check(h, FIELD_PATH, v);
			break;
	}
}

#undef FIELD_PATH

/* ---------- objects against a field list ---------- */

typedef struct ObjectCheck
{
	const char *model;			/* e.g. "form_field_update" */
	const FieldSpec *fields;
	bool		seen[MAX_FIELDS];
	bool		allow_event_type;
} ObjectCheck;

static const char *
field_list(const ModelHost *h, const FieldSpec *fields)
{
	size_t		len = 1;
	char	   *s;

	for (int i = 0; fields[i].name != NULL; i++)
		len += strlen(fields[i].name) + 3;
	s = h->alloc(h->arg, len);
	s[0] = '\0';
	for (int i = 0; fields[i].name != NULL; i++)
	{
		if (i)
			strcat(s, ", ");
		strcat(s, fields[i].name);
		if (fields[i].required)
			strcat(s, "*");
	}
	return s;
}

static void
check_member(const ModelHost *h, const char *path, const char *key, const ModelValue *v, void *arg)
{
	ObjectCheck *oc = (ObjectCheck *) arg;

	for (int i = 0; oc->fields[i].name != NULL; i++)
	{
		const FieldSpec *f = &oc->fields[i];

		if (f->name[0] != key[0] || strcmp(f->name, key) != 0)
			continue;
		oc->seen[i] = true;
		if (v->kind == MK_NULL && f->kind != FK_SCALAR)
		{
			if (f->required)
				fail(h, MODEL_NOT_NULL,
					 model_printf(h, "Fields of %s: %s (* = required).", path,
								  field_list(h, oc->fields)),
					 "%s.%s is required and must not be null", path, key);
			return;
		}
		check_field(h, f, path, key, v);
		return;
	}
	if (oc->allow_event_type && strcmp(key, "event_type") == 0)
	{
		if (!is_string(v, oc->model))
			fail(h, MODEL_INVALID,
				 "Leave event_type out of the payload, or make it match the event type.",
				 "%s.event_type must be \"%s\", got %s", path, oc->model, got(h, v));
		return;
	}
	fail(h, MODEL_INVALID,
		 model_printf(h, "Fields of %s: %s (* = required).", path, field_list(h, oc->fields)),
		 "%s.%s is not a field of %s", path, key, path);
}

/* Checks an object's fields; path names it in messages. */
static void
check_object(const ModelHost *h, const char *path, const char *model, const FieldSpec *fields,
			 const ModelValue *v, bool allow_event_type)
{
	ObjectCheck oc;

	if (v->kind != MK_OBJECT)
		fail_type(h, path, "a JSON object", v);
	memset(&oc, 0, sizeof(oc));
	oc.model = model;
	oc.fields = fields;
	oc.allow_event_type = allow_event_type;
	for_each_member(h, v->ref, path, check_member, &oc);
	for (int i = 0; fields[i].name != NULL; i++)
		if (fields[i].required && !oc.seen[i])
			fail(h, MODEL_NOT_NULL,
				 model_printf(h, "Fields of %s: %s (* = required).", path, field_list(h, fields)),
				 "%s.%s is required", path, fields[i].name);
}

/* ---------- data_table_update ---------- */

/*
 * The column names, sorted so that repeats are neighbours and a row's keys
 * are found by binary search: O(n log n) where comparing each name with
 * every other was O(n^2).
 */
typedef struct Column
{
	const char *name;
	int			len;
	int			index;
} Column;

typedef struct ColumnSet
{
	int			n;
	Column	   *cols;
} ColumnSet;

static int
column_cmp(const void *a, const void *b)
{
	const Column *x = a;
	const Column *y = b;
	int			c = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);

	if (c != 0)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

typedef struct ColumnCollect
{
	ColumnSet  *cs;
	int			first_bad;		/* index of the first non-string, or -1 */
	ModelValue	bad;
} ColumnCollect;

static void
collect_column(const ModelHost *h, const char *path, int index, const ModelValue *v, void *arg)
{
	ColumnCollect *cc = (ColumnCollect *) arg;
	Column	   *c;

	if (v->kind != MK_STRING)
	{
		if (cc->first_bad < 0)
		{
			cc->first_bad = index;
			cc->bad = *v;
		}
		return;
	}
	c = &cc->cs->cols[cc->cs->n++];
	c->name = v->str;
	c->len = v->len;
	c->index = index;
}

/*
 * The columns of path (an array), sorted; errors, as a scan from the start
 * would meet them: the first element that is not a string or repeats an
 * earlier one.
 */
static void
collect_columns(const ModelHost *h, const char *path, const ModelValue *v, ColumnSet *cs)
{
	ColumnCollect cc;
	int			size = h->size(h->arg, v->ref);
	int			repeat = -1;
	const Column *dup = NULL;

	cs->n = 0;
	cs->cols = h->alloc(h->arg, sizeof(Column) * (size > 0 ? size : 1));
	cc.cs = cs;
	cc.first_bad = -1;
	for_each_element(h, v->ref, path, collect_column, &cc);
	qsort(cs->cols, cs->n, sizeof(Column), column_cmp);
	for (int i = 1; i < cs->n; i++)
	{
		const Column *a = &cs->cols[i - 1];
		const Column *b = &cs->cols[i];

		if (i % INTERRUPT_EVERY == 0)
			h->interrupt(h->arg);
		if (a->len == b->len && memcmp(a->name, b->name, a->len) == 0 &&
			(repeat < 0 || b->index < repeat))
		{
			repeat = b->index;
			dup = b;
		}
	}
	if (repeat >= 0 && (cc.first_bad < 0 || repeat < cc.first_bad))
		fail(h, MODEL_UNIQUE, "Column names must be distinct.",
			 "%s[%d] repeats the column \"%.*s\"", path, repeat, dup->len, dup->name);
	if (cc.first_bad >= 0)
		fail_type(h, model_printf(h, "%s[%d]", path, cc.first_bad), "a string", &cc.bad);
}

static bool
column_find(const ColumnSet *cs, const char *key)
{
	Column		k;
	int			lo = 0,
				hi = cs->n - 1;

	k.name = key;
	k.len = strlen(key);
	k.index = -1;				/* below every index: the first of equal names */
	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		const Column *c = &cs->cols[mid];

		if (c->len == k.len && memcmp(c->name, key, k.len) == 0)
			return true;
		if (column_cmp(c, &k) < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return false;
}

static void
check_columns(const ModelHost *h, const char *path, const ModelValue *v)
{
	ColumnSet	cs;

	if (v->kind != MK_ARRAY)
		fail_type(h, path, "a non-empty array of column names", v);
	collect_columns(h, path, v, &cs);
	if (cs.n == 0)
		fail(h, MODEL_INVALID, "Name at least one column.", "%s must not be empty", path);
}

static void
check_row_member(const ModelHost *h, const char *path, const char *key, const ModelValue *v,
				 void *arg)
{
	if (!column_find((const ColumnSet *) arg, key))
		fail(h, MODEL_INVALID, "Every key of a row must be listed in columns.",
			 "%s has the key \"%s\", which is not one of the columns", path, key);
}

static void
check_row(const ModelHost *h, const char *path, int index, const ModelValue *v, void *arg)
{
	const char *rpath = model_printf(h, "%s[%d]", path, index);

	if (v->kind != MK_OBJECT)
		fail_type(h, rpath, "an object keyed by column names", v);
	for_each_member(h, v->ref, rpath, check_row_member, arg);
}

static void
check_rows_shape(const ModelHost *h, const char *path, const ModelValue *v)
{
	if (v->kind != MK_ARRAY)
		fail_type(h, path, "an array of row objects", v);
}

static void
data_table_cross_check(const ModelHost *h, const char *model, const ModelValue *payload)
{
	ModelValue	columns,
				rows,
				total;
	ColumnSet	cs;
	int			nrows;
	int64_t		total_rows = 0;

	h->member(h->arg, payload->ref, "columns", &columns);
	h->member(h->arg, payload->ref, "rows", &rows);
	h->member(h->arg, payload->ref, "total_rows", &total);
	collect_columns(h, "columns", &columns, &cs);
	nrows = for_each_element(h, rows.ref, model_printf(h, "%s.rows", model), check_row, &cs);
	h->to_int64(h->arg, total.ref, &total_rows);
	if (total_rows < nrows)
		fail(h, MODEL_CHECK,
			 "total_rows counts all rows of the table; rows may carry only some of them.",
			 "%s.total_rows must be at least the number of rows (%d), got %lld",
			 model, nrows, (long long) total_rows);
}

/* ---------- spatial_update: GeoJSON (RFC 7946) ---------- */

typedef struct GeoCheck
{
	int			depth;			/* nesting: 1 line (positions), 2 polygon (rings) */
	int			min_items;
} GeoCheck;

static void
check_position(const ModelHost *h, const char *path, const ModelValue *v)
{
	ModelValue	lon,
				lat;
	int			n;
	double		d;

	if (v->kind != MK_ARRAY)
		fail_type(h, path, "a position [longitude, latitude]", v);
	n = h->size(h->arg, v->ref);
	if (n < 2 || n > 3)
		fail(h, MODEL_INVALID,
			 "A GeoJSON position is [longitude, latitude] or [longitude, latitude, altitude].",
			 "%s must have 2 or 3 numbers, got %d", path, n);
	h->element(h->arg, v->ref, 0, &lon);
	h->element(h->arg, v->ref, 1, &lat);
	if (lon.kind != MK_NUMBER)
		fail_type(h, model_printf(h, "%s[0]", path), "a longitude number", &lon);
	if (lat.kind != MK_NUMBER)
		fail_type(h, model_printf(h, "%s[1]", path), "a latitude number", &lat);
	d = h->to_double(h->arg, lon.ref);
	if (!(d >= -180.0 && d <= 180.0))
		fail_range(h, model_printf(h, "%s[0]", path), "a longitude between -180 and 180", &lon);
	d = h->to_double(h->arg, lat.ref);
	if (!(d >= -90.0 && d <= 90.0))
		fail_range(h, model_printf(h, "%s[1]", path), "a latitude between -90 and 90", &lat);
	if (n == 3)
	{
		ModelValue	alt;

		h->element(h->arg, v->ref, 2, &alt);
		if (alt.kind != MK_NUMBER)
			fail_type(h, model_printf(h, "%s[2]", path), "an altitude number", &alt);
	}
}

static void
check_ring(const ModelHost *h, const char *path, const ModelValue *ring)
{
	int			n = h->size(h->arg, ring->ref);
	ModelValue	first,
				last;

	if (n < 4)
		fail(h, MODEL_INVALID, "A polygon ring is closed: its first and last positions are the same.",
			 "%s must have at least 4 positions, got %d", path, n);
	h->element(h->arg, ring->ref, 0, &first);
	h->element(h->arg, ring->ref, n - 1, &last);
	if (!h->equal(h->arg, first.ref, last.ref))
		fail(h, MODEL_INVALID, "Repeat the first position at the end of the ring.",
			 "%s is not closed: its first and last positions differ", path);
}

static void
check_coordinates_element(const ModelHost *h, const char *path, int index, const ModelValue *v,
						  void *arg)
{
	GeoCheck   *gc = (GeoCheck *) arg;
	const char *epath = model_printf(h, "%s[%d]", path, index);

	if (gc->depth == 1)
		check_position(h, epath, v);
	else
	{
		GeoCheck	inner = {1, 2};

		if (v->kind != MK_ARRAY)
			fail_type(h, epath, "a linear ring (an array of positions)", v);
		for_each_element(h, v->ref, epath, check_coordinates_element, &inner);
		check_ring(h, epath, v);
	}
}

static void
check_coordinates(const ModelHost *h, const char *path, const char *gtype, const ModelValue *v)
{
	GeoCheck	gc;
	int			n;

	if (strcmp(gtype, "Point") == 0)
	{
		check_position(h, path, v);
		return;
	}
	gc.depth = strcmp(gtype, "LineString") == 0 ? 1 : 2;
	gc.min_items = gc.depth == 1 ? 2 : 1;
	if (v->kind != MK_ARRAY)
		fail_type(h, path, gc.depth == 1 ? "an array of positions" : "an array of linear rings", v);
	n = for_each_element(h, v->ref, path, check_coordinates_element, &gc);
	if (n < gc.min_items)
		fail(h, MODEL_INVALID, "See RFC 7946, section 3.1.",
			 "%s must have at least %d %s, got %d", path, gc.min_items,
			 gc.depth == 1 ? "positions" : "ring", n);
}

static const char *const geometry_types[] = {"Point", "LineString", "Polygon", NULL};

static void
check_geometry(const ModelHost *h, const char *path, const ModelValue *v)
{
	ModelValue	type,
				coords;
	FieldSpec	tspec = {"type", FK_ENUM, true, geometry_types, NULL};

	if (v->kind != MK_OBJECT)
		fail_type(h, path, "a GeoJSON geometry object", v);
	if (!h->member(h->arg, v->ref, "type", &type))
		fail(h, MODEL_NOT_NULL,
			 model_printf(h, "Geometry types: %s.", join_values(h, geometry_types)),
			 "%s.type is required", path);
	check_field(h, &tspec, path, "type", &type);
	if (!h->member(h->arg, v->ref, "coordinates", &coords))
		fail(h, MODEL_NOT_NULL,
			 model_printf(h, "A %.*s needs coordinates (RFC 7946).", type.len, type.str),
			 "%s.coordinates is required", path);
	check_coordinates(h, model_printf(h, "%s.coordinates", path),
					  model_strndup(h, type.str, type.len), &coords);
}

static void
check_feature(const ModelHost *h, const char *path, int index, const ModelValue *v, void *arg)
{
	const char *fpath = model_printf(h, "%s[%d]", path, index);
	ModelValue	type,
				geometry,
				props;

	if (v->kind != MK_OBJECT)
		fail_type(h, fpath, "a GeoJSON Feature object", v);
	if (!h->member(h->arg, v->ref, "type", &type) || !is_string(&type, "Feature"))
		fail(h, MODEL_INVALID,
			 "Each element of features is {\"type\": \"Feature\", \"geometry\": …, \"properties\": …}.",
			 "%s.type must be \"Feature\"", fpath);
	if (!h->member(h->arg, v->ref, "geometry", &geometry))
		fail(h, MODEL_NOT_NULL, "Use null for a feature without a location.",
			 "%s.geometry is required", fpath);
	if (geometry.kind != MK_NULL)
		check_geometry(h, model_printf(h, "%s.geometry", fpath), &geometry);
	if (h->member(h->arg, v->ref, "properties", &props) &&
		props.kind != MK_NULL && props.kind != MK_OBJECT)
		fail_type(h, model_printf(h, "%s.properties", fpath), "an object or null", &props);
}

static void
check_geojson(const ModelHost *h, const char *path, const ModelValue *v)
{
	ModelValue	type,
				features;

	if (v->kind != MK_OBJECT)
		fail_type(h, path, "a GeoJSON FeatureCollection object", v);
	if (!h->member(h->arg, v->ref, "type", &type) || !is_string(&type, "FeatureCollection"))
		fail(h, MODEL_INVALID,
			 "Send {\"type\": \"FeatureCollection\", \"features\": [...]} (RFC 7946).",
			 "%s.type must be \"FeatureCollection\"", path);
	if (!h->member(h->arg, v->ref, "features", &features))
		fail(h, MODEL_NOT_NULL, "Send an array of GeoJSON Features (it may be empty).",
			 "%s.features is required", path);
	if (features.kind != MK_ARRAY)
		fail_type(h, model_printf(h, "%s.features", path), "an array of Features", &features);
	for_each_element(h, features.ref, model_printf(h, "%s.features", path), check_feature, NULL);
}

static const FieldSpec distance_fields[] = {
	{"from", FK_TEXT, true},
	{"to", FK_TEXT, true},
	{"distance_ft", FK_NUMBER_NONNEG, true},
	{NULL}
};

static void
check_distance(const ModelHost *h, const char *path, int index, const ModelValue *v, void *arg)
{
	check_object(h, model_printf(h, "%s[%d]", path, index), "distance", distance_fields, v, false);
}

static void
check_distances(const ModelHost *h, const char *path, const ModelValue *v)
{
	if (v->kind != MK_ARRAY)
		fail_type(h, path, "an array of {from, to, distance_ft}", v);
	for_each_element(h, v->ref, path, check_distance, NULL);
}

/* ---------- the workspace models ---------- */

static const char *const item_statuses[] = {
	"pending", "in_progress", "complete", "failed", "skipped", "needs_review", NULL
};
static const char *const artifact_types[] = {
	"document", "pdf", "data_export", "spreadsheet", "image", "other", NULL
};
static const char *const severities[] = {"info", "warning", "error", "critical", NULL};
static const char *const agent_statuses[] = {
	"started", "running", "waiting", "completed", "failed", NULL
};

static const FieldSpec checklist_item_update_fields[] = {
	{"item_index", FK_INT_NONNEG, true},
	{"item_name", FK_TEXT, true},
	{"status", FK_ENUM, true, item_statuses},
	{"summary", FK_TEXT, false},
	{"completed_by", FK_TEXT, false},
	{NULL}
};
static const FieldSpec artifact_generated_fields[] = {
	{"artifact_id", FK_TEXT, true},
	{"name", FK_TEXT, true},
	{"artifact_type", FK_ENUM, true, artifact_types},
	{"item_index", FK_INT_NONNEG, false},
	{"url", FK_TEXT, false},
	{"mime_type", FK_TEXT, false},
	{"size_bytes", FK_INT_NONNEG, false},
	{NULL}
};
static const FieldSpec data_table_update_fields[] = {
	{"item_index", FK_INT_NONNEG, true},
	{"columns", FK_CUSTOM, true, NULL, check_columns},
	{"rows", FK_CUSTOM, true, NULL, check_rows_shape},
	{"total_rows", FK_INT_NONNEG, true},
	{NULL}
};
static const FieldSpec form_field_update_fields[] = {
	{"item_index", FK_INT_NONNEG, true},
	{"field_name", FK_TEXT, true},
	{"field_value", FK_SCALAR, true},
	{"confidence", FK_UNIT, true},
	{"source", FK_TEXT, false},
	{NULL}
};
static const FieldSpec validation_result_fields[] = {
	{"item_index", FK_INT_NONNEG, true},
	{"check_name", FK_TEXT, true},
	{"passed", FK_BOOL, true},
	{"severity", FK_ENUM, true, severities},
	{"message", FK_TEXT, false},
	{NULL}
};
static const FieldSpec spatial_update_fields[] = {
	{"item_index", FK_INT_NONNEG, true},
	{"geojson", FK_CUSTOM, true, NULL, check_geojson},
	{"distances", FK_CUSTOM, false, NULL, check_distances},
	{NULL}
};
static const FieldSpec agent_status_fields[] = {
	{"status", FK_ENUM, true, agent_statuses},
	{"message", FK_TEXT, false},
	{"progress", FK_UNIT, false},
	{"item_index", FK_INT_NONNEG, false},
	{"agent", FK_TEXT, false},
	{NULL}
};
static const FieldSpec assessment_complete_fields[] = {
	{"total_items", FK_INT_NONNEG, true},
	{"completed_items", FK_INT_NONNEG, true},
	{"passed_checks", FK_INT_NONNEG, false},
	{"failed_checks", FK_INT_NONNEG, false},
	{"summary", FK_TEXT, false},
	{"duration_ms", FK_INT_NONNEG, false},
	{NULL}
};

static void
assessment_cross_check(const ModelHost *h, const char *model, const ModelValue *payload)
{
	ModelValue	total,
				completed;
	int64_t		t = 0,
				c = 0;

	h->member(h->arg, payload->ref, "total_items", &total);
	h->member(h->arg, payload->ref, "completed_items", &completed);
	h->to_int64(h->arg, total.ref, &t);
	h->to_int64(h->arg, completed.ref, &c);
	if (c > t)
		fail(h, MODEL_CHECK,
			 "completed_items counts items of the checklist, so it cannot exceed total_items.",
			 "%s.completed_items must be between 0 and total_items (%lld), got %lld",
			 model, (long long) t, (long long) c);
}

static const ModelSpec workspace_models[] = {
	{"checklist_item_update", checklist_item_update_fields, NULL},
	{"artifact_generated", artifact_generated_fields, NULL},
	{"data_table_update", data_table_update_fields, data_table_cross_check},
	{"form_field_update", form_field_update_fields, NULL},
	{"validation_result", validation_result_fields, NULL},
	{"spatial_update", spatial_update_fields, NULL},
	{"agent_status", agent_status_fields, NULL},
	{"assessment_complete", assessment_complete_fields, assessment_cross_check},
	{NULL}
};

/* event_type may be a name model_workspace_type returned. */
static const ModelSpec *
workspace_model(const char *event_type)
{
	for (int i = 0; workspace_models[i].name != NULL; i++)
		if (workspace_models[i].name == event_type)
			return &workspace_models[i];
	for (int i = 0; workspace_models[i].name != NULL; i++)
		if (workspace_models[i].name[0] == event_type[0] &&
			strcmp(workspace_models[i].name, event_type) == 0)
			return &workspace_models[i];
	return NULL;
}

const char *
model_workspace_type(const char *event_type)
{
	const ModelSpec *m = workspace_model(event_type);

	return m != NULL ? m->name : NULL;
}

const char *
model_workspace_type_list(void)
{
	return "checklist_item_update, artifact_generated, data_table_update, "
		"form_field_update, validation_result, spatial_update, agent_status, "
		"assessment_complete";
}

static void
check_model(const ModelHost *h, const ModelSpec *m, const ModelValue *payload, bool allow_event_type)
{
	if (payload->kind != MK_OBJECT)
		fail(h, MODEL_INVALID,
			 model_printf(h, "Fields of %s: %s (* = required).", m->name, field_list(h, m->fields)),
			 "%s payload must be a JSON object", m->name);
	check_object(h, m->name, m->name, m->fields, payload, allow_event_type);
	if (m->cross_check)
		m->cross_check(h, m->name, payload);
}

void
model_check_workspace(const ModelHost *h, const char *type, const ModelValue *payload,
					  bool allow_event_type)
{
	const ModelSpec *m = workspace_model(type);

	if (m == NULL)
		fail(h, MODEL_INVALID,
			 model_printf(h, "Workspace event types: %s.", model_workspace_type_list()),
			 "\"%s\" is not a workspace event type", type);
	check_model(h, m, payload, allow_event_type);
}

/* ---------- conversation events (the seed's StreamEvent) ---------- */

static const char *const message_roles[] = {"system", "user", "assistant", "tool", NULL};

static const FieldSpec message_fields[] = {
	{"role", FK_ENUM, true, message_roles},
	{"content", FK_TEXT, true},
	{NULL}
};

static void
check_message(const ModelHost *h, const char *path, const ModelValue *v)
{
	check_object(h, path, "message", message_fields, v, false);
}

static const FieldSpec node_end_fields[] = {
	{"status", FK_TEXT, true},
	{"tokens_used", FK_INT_NONNEG, false},
	{"message", FK_CUSTOM, false, NULL, check_message},
	{"skills_injected", FK_TEXT_ARRAY, false},
	{NULL}
};
static const FieldSpec done_fields[] = {
	{"execution_id", FK_TEXT, true},
	{"status", FK_TEXT, true},
	{"tokens_used", FK_INT_NONNEG, false},
	{"cost_usd", FK_NUMBER_NONNEG, false},
	{"skills_injected", FK_TEXT_ARRAY, false},
	{NULL}
};
static const FieldSpec error_fields[] = {
	{"error", FK_TEXT, true},
	{NULL}
};

static const ModelSpec conversation_models[] = {
	{"node_end", node_end_fields, NULL},
	{"done", done_fields, NULL},
	{"error", error_fields, NULL},
	{NULL}
};

void
model_check_conversation(const ModelHost *h, const char *event, const char *node,
						 const ModelValue *data)
{
	const ModelSpec *m = NULL;

	for (int i = 0; conversation_models[i].name != NULL; i++)
		if (strcmp(conversation_models[i].name, event) == 0)
			m = &conversation_models[i];
	if (m == NULL)
		fail(h, MODEL_INVALID, "Conversation events: node_end, done, error.",
			 "\"%s\" is not a conversation event", event);
	if (strcmp(event, "node_end") == 0 && (node == NULL || node[0] == '\0'))
		fail(h, MODEL_NOT_NULL, "Name the graph node that ended, e.g. 'initial_llm_call'.",
			 "node_end.node is required");
	if (strcmp(event, "node_end") != 0 && node != NULL)
		fail(h, MODEL_INVALID, "Pass NULL as node for done and error.",
			 "%s events have no node, got \"%s\"", event, node);
	check_model(h, m, data, false);
}

/* ---------- ids, topics, headers ---------- */

#define STREAM_ID_MAX 128

/* ASCII only, whatever the locale says (isalnum accepts Latin-1 letters in some). */
static bool
ascii_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* The character at s[i], whole, for a message. */
static const char *
char_at(const ModelHost *h, const char *s, int len, int i)
{
	int			n = h->char_len(h->arg, s + i, len - i);

	if (n < 1 || n > len - i)
		n = 1;
	return model_strndup(h, s + i, n);
}

/* Stream ids appear in URLs: 1 to 128 of [A-Za-z0-9_.:-]. */
void
model_check_stream_id(const ModelHost *h, const char *what, const char *s, int len)
{
	if (len < 1 || len > STREAM_ID_MAX)
		fail(h, MODEL_LENGTH, "Use a short id such as a UUID.",
			 "%s must be 1 to %d characters, got %d", what, STREAM_ID_MAX, len);
	for (int i = 0; i < len; i++)
		if (!(ascii_alnum(s[i]) || s[i] == '_' || s[i] == '.' || s[i] == ':' || s[i] == '-'))
			fail(h, MODEL_INVALID,
				 "Ids may contain letters, digits, '_', '.', ':' and '-' (they appear in stream URLs).",
				 "%s contains the character \"%s\" at position %d", what,
				 char_at(h, s, len, i), i + 1);
}

#define TOPIC_HINT "Kafka topic names are 1 to 249 characters of letters, digits, '.', '_' and '-'."

/*
 * Kafka's rule: 1 to 249 of [a-zA-Z0-9._-], not "." or "..".  Names that
 * start with "__" are Kafka's internal topics (__consumer_offsets,
 * __transaction_state): the broker refuses writes to them, so an event for
 * one would stall the drain.
 */
void
model_check_topic(const ModelHost *h, const char *s, int len)
{
	if (len < 1 || len > 249)
		fail(h, MODEL_LENGTH, TOPIC_HINT, "topic must be 1 to 249 characters, got %d", len);
	if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		fail(h, MODEL_INVALID, "Kafka reserves \".\" and \"..\".",
			 "topic must not be \"%.*s\"", len, s);
	for (int i = 0; i < len; i++)
		if (!(ascii_alnum(s[i]) || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			fail(h, MODEL_INVALID, TOPIC_HINT,
				 "topic contains the character \"%s\" at position %d",
				 char_at(h, s, len, i), i + 1);
	if (len >= 2 && s[0] == '_' && s[1] == '_')
		fail(h, MODEL_INVALID,
			 "Kafka keeps names that start with \"__\" for its internal topics (such as __consumer_offsets) and refuses writes to them; choose another name.",
			 "topic \"%.*s\" starts with \"__\"", len, s);
}

static void
check_header_member(const ModelHost *h, const char *path, const char *key, const ModelValue *v,
					void *arg)
{
	if (v->kind != MK_STRING)
		fail_type(h, model_printf(h, "headers.%s", key), "a string", v);
	if (strncmp(key, "aegis-", 6) == 0)
		fail(h, MODEL_INVALID, "The bridge adds aegis-event-id and aegis-event-type itself.",
			 "headers.%s uses the reserved prefix \"aegis-\"", key);
}

/* Kafka headers: a JSON object of string values. */
void
model_check_headers(const ModelHost *h, const ModelValue *headers)
{
	if (headers->kind != MK_OBJECT)
		fail(h, MODEL_INVALID, "For example '{\"source\": \"ingestion\"}'.",
			 "headers must be a JSON object of strings");
	for_each_member(h, headers->ref, "headers", check_header_member, NULL);
}
