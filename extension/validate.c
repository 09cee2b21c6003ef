/*-------------------------------------------------------------------------
 * validate.c
 *	  The event models: the eight workspace event types (the seed's
 *	  EVENT_MODELS) and the three conversation events, checked in C by
 *	  walking the jsonb without converting it to text.  Also the rules for
 *	  stream ids, Kafka topic names, headers and payload size.
 *
 *	  Every error names the field by its path (model.field[index].field),
 *	  says what was expected and what was given, and carries an SQLSTATE of
 *	  class 22 (wrong value) or 23 (missing or inconsistent).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "aegis.h"

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

typedef struct FieldSpec
{
	const char *name;
	FieldKind	kind;
	bool		required;
	const char *const *values;	/* FK_ENUM */
	void		(*check) (const char *path, JsonbValue *v);	/* FK_CUSTOM */
} FieldSpec;

typedef struct ModelSpec
{
	const char *name;
	const FieldSpec *fields;
	void		(*cross_check) (const char *model, Jsonb *payload);
} ModelSpec;

#define MAX_FIELDS 16
#define GOT_MAX 60

/* ---------- small helpers ---------- */

static const char *
json_kind_name(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "a string";
		case jbvNumeric:
			return "a number";
		case jbvBool:
			return "a boolean";
		case jbvBinary:
			return JsonContainerIsArray(v->val.binary.data) ? "an array" : "an object";
		default:
			return "a value of another kind";
	}
}

/* What was given, for messages: the value itself for scalars, shortened. */
static char *
json_got(JsonbValue *v)
{
	char	   *s;

	switch (v->type)
	{
		case jbvString:
			s = psprintf("\"%s\"", pnstrdup(v->val.string.val,
											Min(v->val.string.len, GOT_MAX)));
			break;
		case jbvNumeric:
			s = numeric_normalize(v->val.numeric);
			break;
		case jbvBool:
			s = pstrdup(v->val.boolean ? "true" : "false");
			break;
		default:
			return pstrdup(json_kind_name(v));
	}
	if (strlen(s) > GOT_MAX + 2)
		s = psprintf("%.*s...", GOT_MAX, s);
	return s;
}

/*
 * Numbers the range checks compare with, made once per backend: comparing
 * numerics is cheaper than printing one and parsing the text.
 */
typedef struct NumericBounds
{
	Numeric		zero;
	Numeric		one;
	Numeric		large;			/* 1e300: below it a double is finite */
	Numeric		int64_min;
	Numeric		int64_max;
} NumericBounds;

static const NumericBounds *
numeric_bounds(void)
{
	static NumericBounds *bounds = NULL;

	if (bounds == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		NumericBounds *b = palloc(sizeof(NumericBounds));

		b->zero = int64_to_numeric(0);
		b->one = int64_to_numeric(1);
		b->large = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum("1e300"),
													   ObjectIdGetDatum(InvalidOid),
													   Int32GetDatum(-1)));
		b->int64_min = int64_to_numeric(PG_INT64_MIN);
		b->int64_max = int64_to_numeric(PG_INT64_MAX);
		MemoryContextSwitchTo(old);
		bounds = b;
	}
	return bounds;
}

static int
numeric_compare(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a),
											 NumericGetDatum(b)));
}

/*
 * True when a finite number is within [low, high] (NULL: unbounded).  The
 * checks below take this as their quick yes and decide every other number
 * as before; the answers agree because rounding to double is monotonic: a
 * number in [0, 1] stays in [0, 1] (both are exact doubles), one in
 * [0, 1e300] stays >= 0 and finite.
 */
static bool
numeric_within(Numeric num, Numeric low, Numeric high)
{
	if (numeric_is_nan(num) || numeric_is_inf(num))
		return false;
	return (low == NULL || numeric_compare(num, low) >= 0) &&
		(high == NULL || numeric_compare(num, high) <= 0);
}

/*
 * The same for an integer written without fraction digits ("3", "1e2"; not
 * "3.0", which the callers' slower path also accepts).
 */
static bool
numeric_integer_within(Numeric num, Numeric low, Numeric high)
{
	return numeric_within(num, low, high) &&
		DatumGetInt32(DirectFunctionCall1(numeric_scale, NumericGetDatum(num))) == 0;
}

static bool
json_int64(JsonbValue *v, int64 *out)
{
	char	   *s;
	char	   *end;

	if (v->type != jbvNumeric)
		return false;
	if (numeric_integer_within(v->val.numeric, numeric_bounds()->int64_min,
							   numeric_bounds()->int64_max))
	{
		*out = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v->val.numeric)));
		return true;
	}
	s = numeric_normalize(v->val.numeric);
	if (strpbrk(s, ".eE") != NULL)
		return false;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0';
}

static double
json_double(JsonbValue *v)
{
	return strtod(numeric_normalize(v->val.numeric), NULL);
}

static bool
json_is_array(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data);
}

static bool
json_is_object(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

static bool
json_is_string(JsonbValue *v, const char *s)
{
	return v->type == jbvString && v->val.string.len == (int) strlen(s) &&
		memcmp(v->val.string.val, s, v->val.string.len) == 0;
}

static char *
json_string(JsonbValue *v)
{
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static void fail_type(const char *path, const char *expected, JsonbValue *v) pg_attribute_noreturn();
static void fail_range(const char *path, const char *expected, JsonbValue *v) pg_attribute_noreturn();

static void
fail_type(const char *path, const char *expected, JsonbValue *v)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s must be %s, got %s", path, expected, json_got(v)),
			 errhint("Send %s as %s.", path, expected)));
	pg_unreachable();
}

static void
fail_range(const char *path, const char *expected, JsonbValue *v)
{
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("%s must be %s, got %s", path, expected, json_got(v)),
			 errhint("Send %s as %s.", path, expected)));
	pg_unreachable();
}

static char *
join_values(const char *const *values)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; values[i] != NULL; i++)
		appendStringInfo(&buf, "%s%s", i ? ", " : "", values[i]);
	return buf.data;
}

/* ---------- iteration over objects and arrays ---------- */

typedef void (*member_fn) (const char *path, const char *key, JsonbValue *v, void *arg);
typedef void (*element_fn) (const char *path, int index, JsonbValue *v, void *arg);

/* Calls fn for each member; key is valid during the call only. */
static void
for_each_member(JsonbContainer *obj, const char *path, member_fn fn, void *arg)
{
	JsonbIterator *it = JsonbIteratorInit(obj);
	JsonbValue	v;
	JsonbIteratorToken tok;
	char		keybuf[NAMEDATALEN];
	char	   *key = NULL;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			if (v.val.string.len < NAMEDATALEN)
			{
				memcpy(keybuf, v.val.string.val, v.val.string.len);
				keybuf[v.val.string.len] = '\0';
				key = keybuf;
			}
			else
				key = json_string(&v);
		}
		else if (tok == WJB_VALUE)
			fn(path, key, &v, arg);
	}
}

static int
for_each_element(JsonbContainer *arr, const char *path, element_fn fn, void *arg)
{
	JsonbIterator *it = JsonbIteratorInit(arr);
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			i = 0;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_ELEM)
			fn(path, i++, &v, arg);
	return i;
}

static bool
find_member(JsonbContainer *obj, const char *key, JsonbValue *out)
{
	JsonbValue *found = getKeyJsonValueFromContainer(obj, key, strlen(key), out);

	return found != NULL;
}

/* ---------- field kinds ---------- */

static void
check_text_element(const char *path, int index, JsonbValue *v, void *arg)
{
	if (v->type != jbvString)
		fail_type(psprintf("%s[%d]", path, index), "a string", v);
}

/*
 * Checks one field's value.  The field's FIELD_PATH (parent.key) is only formatted
 * when it is needed: in an error, or for a nested value's own checks.
 */
#define FIELD_PATH psprintf("%s.%s", parent, key)

static void
check_field(const FieldSpec *f, const char *parent, const char *key, JsonbValue *v)
{
	int64		n;
	double		d;

	switch (f->kind)
	{
		case FK_INT_NONNEG:
			if (v->type == jbvNumeric &&
				numeric_integer_within(v->val.numeric, numeric_bounds()->zero,
									   numeric_bounds()->int64_max))
				break;
			if (v->type != jbvNumeric || !json_int64(v, &n))
				fail_type(FIELD_PATH, "an integer >= 0", v);
			if (n < 0)
				fail_range(FIELD_PATH, "an integer >= 0", v);
			break;
		case FK_TEXT:
			if (v->type != jbvString)
				fail_type(FIELD_PATH, "a string", v);
			break;
		case FK_ENUM:
			if (v->type == jbvString)
				for (int i = 0; f->values[i] != NULL; i++)
					if (json_is_string(v, f->values[i]))
						return;
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must be one of %s, got %s", FIELD_PATH,
							join_values(f->values), json_got(v)),
					 errhint("Use one of the listed values, in lower case.")));
			break;
		case FK_UNIT:
			if (v->type != jbvNumeric)
				fail_type(FIELD_PATH, "a number between 0 and 1", v);
			if (numeric_within(v->val.numeric, numeric_bounds()->zero, numeric_bounds()->one))
				break;
			d = json_double(v);
			if (!(d >= 0.0 && d <= 1.0))
				fail_range(FIELD_PATH, "a number between 0 and 1", v);
			break;
		case FK_NUMBER_NONNEG:
			if (v->type != jbvNumeric)
				fail_type(FIELD_PATH, "a number >= 0", v);
			if (numeric_within(v->val.numeric, numeric_bounds()->zero, numeric_bounds()->large))
				break;
			d = json_double(v);
			if (!(d >= 0.0) || isinf(d))
				fail_range(FIELD_PATH, "a number >= 0", v);
			break;
		case FK_BOOL:
			if (v->type != jbvBool)
				fail_type(FIELD_PATH, "true or false", v);
			break;
		case FK_SCALAR:
			if (v->type == jbvBinary)
				fail_type(FIELD_PATH, "a string, number, boolean or null", v);
			break;
		case FK_TEXT_ARRAY:
			if (!json_is_array(v))
				fail_type(FIELD_PATH, "an array of strings", v);
			for_each_element(v->val.binary.data, FIELD_PATH, check_text_element, NULL);
			break;
		case FK_CUSTOM:
			f->check(FIELD_PATH, v);
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

static char *
field_list(const FieldSpec *fields)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; fields[i].name != NULL; i++)
		appendStringInfo(&buf, "%s%s%s", i ? ", " : "", fields[i].name,
						 fields[i].required ? "*" : "");
	return buf.data;
}

static void
check_member(const char *path, const char *key, JsonbValue *v, void *arg)
{
	ObjectCheck *oc = (ObjectCheck *) arg;

	for (int i = 0; oc->fields[i].name != NULL; i++)
	{
		const FieldSpec *f = &oc->fields[i];

		if (f->name[0] != key[0] || strcmp(f->name, key) != 0)
			continue;
		oc->seen[i] = true;
		if (v->type == jbvNull && f->kind != FK_SCALAR)
		{
			if (f->required)
				ereport(ERROR,
						(errcode(ERRCODE_NOT_NULL_VIOLATION),
						 errmsg("%s.%s is required and must not be null", path, key),
						 errhint("Fields of %s: %s (* = required).", path,
								 field_list(oc->fields))));
			return;
		}
		check_field(f, path, key, v);
		return;
	}
	if (oc->allow_event_type && strcmp(key, "event_type") == 0)
	{
		if (!json_is_string(v, oc->model))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s.event_type must be \"%s\", got %s", path, oc->model,
							json_got(v)),
					 errhint("Leave event_type out of the payload, or make it match the event type.")));
		return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s.%s is not a field of %s", path, key, path),
			 errhint("Fields of %s: %s (* = required).", path, field_list(oc->fields))));
}

/* Checks an object's fields; path names it in messages. */
static void
check_object(const char *path, const char *model, const FieldSpec *fields,
			 JsonbValue *v, bool allow_event_type)
{
	ObjectCheck oc;

	if (!json_is_object(v))
		fail_type(path, "a JSON object", v);
	memset(&oc, 0, sizeof(oc));
	oc.model = model;
	oc.fields = fields;
	oc.allow_event_type = allow_event_type;
	for_each_member(v->val.binary.data, path, check_member, &oc);
	for (int i = 0; fields[i].name != NULL; i++)
		if (fields[i].required && !oc.seen[i])
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("%s.%s is required", path, fields[i].name),
					 errhint("Fields of %s: %s (* = required).", path,
							 field_list(fields))));
}

/* ---------- data_table_update ---------- */

typedef struct ColumnSet
{
	int			n;
	char	  **names;
} ColumnSet;

static void
collect_column(const char *path, int index, JsonbValue *v, void *arg)
{
	ColumnSet  *cs = (ColumnSet *) arg;
	char	   *name;

	if (v->type != jbvString)
		fail_type(psprintf("%s[%d]", path, index), "a string", v);
	name = json_string(v);
	for (int i = 0; i < cs->n; i++)
		if (strcmp(cs->names[i], name) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("%s[%d] repeats the column \"%s\"", path, index, name),
					 errhint("Column names must be distinct.")));
	cs->names = cs->n == 0 ? palloc(sizeof(char *) * 8)
		: (cs->n % 8 == 0 ? repalloc(cs->names, sizeof(char *) * (cs->n + 8)) : cs->names);
	cs->names[cs->n++] = name;
}

static void
check_columns(const char *path, JsonbValue *v)
{
	ColumnSet	cs = {0, NULL};

	if (!json_is_array(v))
		fail_type(path, "a non-empty array of column names", v);
	for_each_element(v->val.binary.data, path, collect_column, &cs);
	if (cs.n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", path),
				 errhint("Name at least one column.")));
}

static void
check_row_member(const char *path, const char *key, JsonbValue *v, void *arg)
{
	ColumnSet  *cs = (ColumnSet *) arg;

	for (int i = 0; i < cs->n; i++)
		if (strcmp(cs->names[i], key) == 0)
			return;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s has the key \"%s\", which is not one of the columns", path, key),
			 errhint("Every key of a row must be listed in columns.")));
}

static void
check_row(const char *path, int index, JsonbValue *v, void *arg)
{
	char	   *rpath = psprintf("%s[%d]", path, index);

	if (!json_is_object(v))
		fail_type(rpath, "an object keyed by column names", v);
	for_each_member(v->val.binary.data, rpath, check_row_member, arg);
}

static void
check_rows_shape(const char *path, JsonbValue *v)
{
	if (!json_is_array(v))
		fail_type(path, "an array of row objects", v);
}

static void
data_table_cross_check(const char *model, Jsonb *payload)
{
	JsonbValue	columns,
				rows,
				total;
	ColumnSet	cs = {0, NULL};
	int			nrows;
	int64		total_rows;

	find_member(&payload->root, "columns", &columns);
	find_member(&payload->root, "rows", &rows);
	find_member(&payload->root, "total_rows", &total);
	for_each_element(columns.val.binary.data, "columns", collect_column, &cs);
	nrows = for_each_element(rows.val.binary.data, psprintf("%s.rows", model),
							 check_row, &cs);
	json_int64(&total, &total_rows);
	if (total_rows < nrows)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("%s.total_rows must be at least the number of rows (%d), got " INT64_FORMAT,
						model, nrows, total_rows),
				 errhint("total_rows counts all rows of the table; rows may carry only some of them.")));
}

/* ---------- spatial_update: GeoJSON (RFC 7946) ---------- */

typedef struct GeoCheck
{
	int			depth;			/* nesting: 0 position, 1 line, 2 polygon */
	int			min_items;
} GeoCheck;

static void
check_position(const char *path, JsonbValue *v)
{
	JsonbValue *lon,
			   *lat;
	int			n;
	double		d;

	if (!json_is_array(v))
		fail_type(path, "a position [longitude, latitude]", v);
	n = JsonContainerSize(v->val.binary.data);
	if (n < 2 || n > 3)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must have 2 or 3 numbers, got %d", path, n),
				 errhint("A GeoJSON position is [longitude, latitude] or [longitude, latitude, altitude].")));
	lon = getIthJsonbValueFromContainer(v->val.binary.data, 0);
	lat = getIthJsonbValueFromContainer(v->val.binary.data, 1);
	if (lon->type != jbvNumeric)
		fail_type(psprintf("%s[0]", path), "a longitude number", lon);
	if (lat->type != jbvNumeric)
		fail_type(psprintf("%s[1]", path), "a latitude number", lat);
	d = json_double(lon);
	if (!(d >= -180.0 && d <= 180.0))
		fail_range(psprintf("%s[0]", path), "a longitude between -180 and 180", lon);
	d = json_double(lat);
	if (!(d >= -90.0 && d <= 90.0))
		fail_range(psprintf("%s[1]", path), "a latitude between -90 and 90", lat);
	if (n == 3)
	{
		JsonbValue *alt = getIthJsonbValueFromContainer(v->val.binary.data, 2);

		if (alt->type != jbvNumeric)
			fail_type(psprintf("%s[2]", path), "an altitude number", alt);
	}
}

static void
check_ring(const char *path, JsonbValue *ring)
{
	int			n = JsonContainerSize(ring->val.binary.data);
	JsonbValue *first,
			   *last;

	if (n < 4)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must have at least 4 positions, got %d", path, n),
				 errhint("A polygon ring is closed: its first and last positions are the same.")));
	first = getIthJsonbValueFromContainer(ring->val.binary.data, 0);
	last = getIthJsonbValueFromContainer(ring->val.binary.data, n - 1);
	if (compareJsonbContainers(first->val.binary.data, last->val.binary.data) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is not closed: its first and last positions differ", path),
				 errhint("Repeat the first position at the end of the ring.")));
}

static void
check_coordinates_element(const char *path, int index, JsonbValue *v, void *arg)
{
	GeoCheck   *gc = (GeoCheck *) arg;
	char	   *epath = psprintf("%s[%d]", path, index);

	if (gc->depth == 1)
		check_position(epath, v);
	else
	{
		GeoCheck	inner = {1, 2};

		if (!json_is_array(v))
			fail_type(epath, "a linear ring (an array of positions)", v);
		for_each_element(v->val.binary.data, epath, check_coordinates_element, &inner);
		check_ring(epath, v);
	}
}

static void
check_coordinates(const char *path, const char *gtype, JsonbValue *v)
{
	GeoCheck	gc;
	int			n;

	if (strcmp(gtype, "Point") == 0)
	{
		check_position(path, v);
		return;
	}
	gc.depth = strcmp(gtype, "LineString") == 0 ? 1 : 2;
	gc.min_items = gc.depth == 1 ? 2 : 1;
	if (!json_is_array(v))
		fail_type(path, gc.depth == 1 ? "an array of positions" : "an array of linear rings", v);
	n = for_each_element(v->val.binary.data, path, check_coordinates_element, &gc);
	if (n < gc.min_items)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must have at least %d %s, got %d", path, gc.min_items,
						gc.depth == 1 ? "positions" : "ring", n),
				 errhint("See RFC 7946, section 3.1.")));
}

static const char *const geometry_types[] = {"Point", "LineString", "Polygon", NULL};

static void
check_geometry(const char *path, JsonbValue *v)
{
	JsonbValue	type,
				coords;
	char	   *gtype;

	if (!json_is_object(v))
		fail_type(path, "a GeoJSON geometry object", v);
	if (!find_member(v->val.binary.data, "type", &type))
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("%s.type is required", path),
				 errhint("Geometry types: %s.", join_values(geometry_types))));
	{
		FieldSpec	tspec = {"type", FK_ENUM, true, geometry_types, NULL};

		check_field(&tspec, path, "type", &type);
	}
	gtype = json_string(&type);
	if (!find_member(v->val.binary.data, "coordinates", &coords))
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("%s.coordinates is required", path),
				 errhint("A %s needs coordinates (RFC 7946).", gtype)));
	check_coordinates(psprintf("%s.coordinates", path), gtype, &coords);
}

static void
check_feature(const char *path, int index, JsonbValue *v, void *arg)
{
	char	   *fpath = psprintf("%s[%d]", path, index);
	JsonbValue	type,
				geometry,
				props;

	if (!json_is_object(v))
		fail_type(fpath, "a GeoJSON Feature object", v);
	if (!find_member(v->val.binary.data, "type", &type) || !json_is_string(&type, "Feature"))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s.type must be \"Feature\"", fpath),
				 errhint("Each element of features is {\"type\": \"Feature\", \"geometry\": …, \"properties\": …}.")));
	if (!find_member(v->val.binary.data, "geometry", &geometry))
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("%s.geometry is required", fpath),
				 errhint("Use null for a feature without a location.")));
	if (geometry.type != jbvNull)
		check_geometry(psprintf("%s.geometry", fpath), &geometry);
	if (find_member(v->val.binary.data, "properties", &props) &&
		props.type != jbvNull && !json_is_object(&props))
		fail_type(psprintf("%s.properties", fpath), "an object or null", &props);
}

static void
check_geojson(const char *path, JsonbValue *v)
{
	JsonbValue	type,
				features;

	if (!json_is_object(v))
		fail_type(path, "a GeoJSON FeatureCollection object", v);
	if (!find_member(v->val.binary.data, "type", &type) ||
		!json_is_string(&type, "FeatureCollection"))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s.type must be \"FeatureCollection\"", path),
				 errhint("Send {\"type\": \"FeatureCollection\", \"features\": [...]} (RFC 7946).")));
	if (!find_member(v->val.binary.data, "features", &features))
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("%s.features is required", path),
				 errhint("Send an array of GeoJSON Features (it may be empty).")));
	if (!json_is_array(&features))
		fail_type(psprintf("%s.features", path), "an array of Features", &features);
	for_each_element(features.val.binary.data, psprintf("%s.features", path),
					 check_feature, NULL);
}

static const FieldSpec distance_fields[] = {
	{"from", FK_TEXT, true},
	{"to", FK_TEXT, true},
	{"distance_ft", FK_NUMBER_NONNEG, true},
	{NULL}
};

static void
check_distance(const char *path, int index, JsonbValue *v, void *arg)
{
	check_object(psprintf("%s[%d]", path, index), "distance", distance_fields, v, false);
}

static void
check_distances(const char *path, JsonbValue *v)
{
	if (!json_is_array(v))
		fail_type(path, "an array of {from, to, distance_ft}", v);
	for_each_element(v->val.binary.data, path, check_distance, NULL);
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
assessment_cross_check(const char *model, Jsonb *payload)
{
	JsonbValue	total,
				completed;
	int64		t,
				c;

	find_member(&payload->root, "total_items", &total);
	find_member(&payload->root, "completed_items", &completed);
	json_int64(&total, &t);
	json_int64(&completed, &c);
	if (c > t)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("%s.completed_items must be between 0 and total_items (" INT64_FORMAT "), got " INT64_FORMAT,
						model, t, c),
				 errhint("completed_items counts items of the checklist, so it cannot exceed total_items.")));
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

/* event_type may be a name validate_workspace_type_name returned. */
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

/* The canonical name of a workspace event type; an error for any other. */
const char *
validate_workspace_type_name(const char *event_type)
{
	const ModelSpec *m = workspace_model(event_type);
	StringInfoData buf;

	if (m != NULL)
		return m->name;
	initStringInfo(&buf);
	for (int i = 0; workspace_models[i].name != NULL; i++)
		appendStringInfo(&buf, "%s%s", i ? ", " : "", workspace_models[i].name);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("\"%s\" is not a workspace event type", event_type),
			 errhint("Workspace event types: %s.", buf.data)));
	return NULL;
}

static void
validate_model(const ModelSpec *m, Jsonb *payload, bool allow_event_type)
{
	JsonbValue	root;

	if (!JB_ROOT_IS_OBJECT(payload))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s payload must be a JSON object", m->name),
				 errhint("Fields of %s: %s (* = required).", m->name, field_list(m->fields))));
	root.type = jbvBinary;
	root.val.binary.data = &payload->root;
	root.val.binary.len = VARSIZE(payload) - VARHDRSZ;
	check_object(m->name, m->name, m->fields, &root, allow_event_type);
	if (m->cross_check)
		m->cross_check(m->name, payload);
}

/*
 * The validators' scratch memory: one named context kept for the backend's
 * life and reset before each use (creating one per event cost measurably).
 * After an error it is reset at the next use.
 */
static MemoryContext
validate_context(void)
{
	static MemoryContext cxt = NULL;

	if (cxt == NULL)
		cxt = AllocSetContextCreate(TopMemoryContext, "aegis validate",
									ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(cxt);
	return cxt;
}

void
validate_workspace_event(const char *event_type, Jsonb *payload)
{
	MemoryContext old = MemoryContextSwitchTo(validate_context());
	const ModelSpec *m = workspace_model(event_type);

	if (m == NULL)
		m = workspace_model(validate_workspace_type_name(event_type));
	validate_model(m, payload, true);
	MemoryContextSwitchTo(old);
}

/* ---------- conversation events (the seed's StreamEvent) ---------- */

static const char *const message_roles[] = {"system", "user", "assistant", "tool", NULL};

static const FieldSpec message_fields[] = {
	{"role", FK_ENUM, true, message_roles},
	{"content", FK_TEXT, true},
	{NULL}
};

static void
check_message(const char *path, JsonbValue *v)
{
	check_object(path, "message", message_fields, v, false);
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
validate_conversation_event(const char *event, const char *node, Jsonb *data)
{
	const ModelSpec *m = NULL;
	MemoryContext old;

	for (int i = 0; conversation_models[i].name != NULL; i++)
		if (strcmp(conversation_models[i].name, event) == 0)
			m = &conversation_models[i];
	if (m == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not a conversation event", event),
				 errhint("Conversation events: node_end, done, error.")));
	if (strcmp(event, "node_end") == 0 && (node == NULL || node[0] == '\0'))
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("node_end.node is required"),
				 errhint("Name the graph node that ended, e.g. 'initial_llm_call'.")));
	if (strcmp(event, "node_end") != 0 && node != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s events have no node, got \"%s\"", event, node),
				 errhint("Pass NULL as node for done and error.")));

	old = MemoryContextSwitchTo(validate_context());
	validate_model(m, data, false);
	MemoryContextSwitchTo(old);
}

/* ---------- ids, topics, headers, size ---------- */

#define STREAM_ID_MAX 128

/* Stream ids appear in URLs: 1 to 128 of [A-Za-z0-9_.:-]. */
void
validate_stream_id(const char *what, text *id)
{
	const char *s = VARDATA_ANY(id);
	int			len = VARSIZE_ANY_EXHDR(id);

	if (len < 1 || len > STREAM_ID_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_LENGTH_MISMATCH),
				 errmsg("%s must be 1 to %d characters, got %d", what, STREAM_ID_MAX, len),
				 errhint("Use a short id such as a UUID.")));
	for (int i = 0; i < len; i++)
		if (!(isalnum((unsigned char) s[i]) || s[i] == '_' || s[i] == '.' ||
			  s[i] == ':' || s[i] == '-'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s contains the character \"%c\" at position %d",
							what, s[i], i + 1),
					 errhint("Ids may contain letters, digits, '_', '.', ':' and '-' (they appear in stream URLs).")));
}

/* Kafka's rule: 1 to 249 of [a-zA-Z0-9._-], not "." or "..". */
void
validate_topic_name(text *topic)
{
	const char *s = VARDATA_ANY(topic);
	int			len = VARSIZE_ANY_EXHDR(topic);

	if (len < 1 || len > 249)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_LENGTH_MISMATCH),
				 errmsg("topic must be 1 to 249 characters, got %d", len),
				 errhint("Kafka topic names are 1 to 249 characters of letters, digits, '.', '_' and '-'.")));
	if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("topic must not be \"%.*s\"", len, s),
				 errhint("Kafka reserves \".\" and \"..\".")));
	for (int i = 0; i < len; i++)
		if (!(isalnum((unsigned char) s[i]) || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("topic contains the character \"%c\" at position %d", s[i], i + 1),
					 errhint("Kafka topic names are 1 to 249 characters of letters, digits, '.', '_' and '-'.")));
}

static void
check_header_member(const char *path, const char *key, JsonbValue *v, void *arg)
{
	if (v->type != jbvString)
		fail_type(psprintf("headers.%s", key), "a string", v);
	if (strncmp(key, "aegis-", 6) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("headers.%s uses the reserved prefix \"aegis-\"", key),
				 errhint("The bridge adds aegis-event-id and aegis-event-type itself.")));
}

/* Kafka headers: a JSON object of string values. */
void
validate_headers(Jsonb *headers)
{
	JsonbValue	root;

	if (!JB_ROOT_IS_OBJECT(headers))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("headers must be a JSON object of strings"),
				 errhint("For example '{\"source\": \"ingestion\"}'.")));
	root.type = jbvBinary;
	root.val.binary.data = &headers->root;
	for_each_member(&headers->root, "headers", check_header_member, &root);
}

void
validate_size(const char *what, Size bytes)
{
	if (bytes > (Size) aegis_max_payload_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("%s is %zu bytes, more than aegis.max_payload_bytes (%d)",
						what, bytes, aegis_max_payload_bytes),
				 errhint("Store large data elsewhere and publish a reference to it, or raise aegis.max_payload_bytes.")));
}

/* The validator's setting (called by _PG_init). */
int			aegis_max_payload_bytes = 960 * 1024;

void
validate_init(void)
{
	DefineCustomIntVariable("aegis.max_payload_bytes",
							"Largest event payload accepted by the publish functions.",
							"Measured as the stored (jsonb) size of payload, key and headers. "
							"The default leaves room for the bridge's headers within "
							"Kafka's default 1000000-byte message limit.",
							&aegis_max_payload_bytes,
							960 * 1024, 1024, 256 * 1024 * 1024,
							PGC_SUSET, GUC_UNIT_BYTE, NULL, NULL, NULL);
}
