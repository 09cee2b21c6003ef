/*-------------------------------------------------------------------------
 * validate.c
 *	  The server's side of the event models: model.c's checks run over
 *	  jsonb here (walked with JsonbIterator, never converted to text), with
 *	  their errors raised by ereport, their memory in one named context and
 *	  CHECK_FOR_INTERRUPTS in long loops.  Also the payload size limit.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "aegis.h"
#include "model.h"

/* ---------- numbers ---------- */

/*
 * Numbers the range checks compare with, made once per backend: comparing
 * numerics is cheaper than printing one and parsing the text.
 */
static Numeric bounds[MB_INT64_MAX + 1];
static Numeric int64_min;

static void
bounds_init(void)
{
	MemoryContext old;

	if (bounds[MB_ZERO] != NULL)
		return;
	old = MemoryContextSwitchTo(TopMemoryContext);
	bounds[MB_ONE] = int64_to_numeric(1);
	bounds[MB_LARGE] = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum("1e300"),
														   ObjectIdGetDatum(InvalidOid),
														   Int32GetDatum(-1)));
	bounds[MB_INT64_MAX] = int64_to_numeric(PG_INT64_MAX);
	int64_min = int64_to_numeric(PG_INT64_MIN);
	bounds[MB_ZERO] = int64_to_numeric(0);
	MemoryContextSwitchTo(old);
}

static int
numeric_compare(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a),
											 NumericGetDatum(b)));
}

/*
 * True when a finite number is within [low, high] (NULL: unbounded), and for
 * an integer, written without fraction digits ("3", "1e2"; not "3.0", which
 * the callers' slower path also accepts).  The checks take this as their
 * quick yes and decide every other number by its double; the answers agree
 * because rounding to double is monotonic.
 */
static bool
numeric_within(Numeric num, Numeric low, Numeric high, bool integer)
{
	if (numeric_is_nan(num) || numeric_is_inf(num))
		return false;
	return (low == NULL || numeric_compare(num, low) >= 0) &&
		(high == NULL || numeric_compare(num, high) <= 0) &&
		(!integer || DatumGetInt32(DirectFunctionCall1(numeric_scale, NumericGetDatum(num))) == 0);
}

static bool
host_within(void *arg, const void *num, ModelBound low, ModelBound high, bool integer)
{
	bounds_init();
	return numeric_within((Numeric) num, bounds[low], bounds[high], integer);
}

static bool
host_to_int64(void *arg, const void *num, int64_t *out)
{
	Numeric		n = (Numeric) num;
	char	   *s;
	char	   *end;

	bounds_init();
	if (numeric_within(n, int64_min, bounds[MB_INT64_MAX], true))
	{
		*out = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(n)));
		return true;
	}
	s = numeric_normalize(n);
	if (strpbrk(s, ".eE") != NULL)
		return false;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0';
}

static double
host_to_double(void *arg, const void *num)
{
	return strtod(numeric_normalize((Numeric) num), NULL);
}

static const char *
host_to_text(void *arg, const void *num)
{
	return numeric_normalize((Numeric) num);
}

/* ---------- containers ---------- */

static void
to_model(const JsonbValue *v, ModelValue *out)
{
	memset(out, 0, sizeof(*out));
	switch (v->type)
	{
		case jbvNull:
			out->kind = MK_NULL;
			break;
		case jbvString:
			out->kind = MK_STRING;
			out->str = v->val.string.val;
			out->len = v->val.string.len;
			break;
		case jbvNumeric:
			out->kind = MK_NUMBER;
			out->ref = v->val.numeric;
			break;
		case jbvBool:
			out->kind = MK_BOOL;
			out->boolean = v->val.boolean;
			break;
		case jbvBinary:
			out->kind = JsonContainerIsArray(v->val.binary.data) ? MK_ARRAY : MK_OBJECT;
			out->ref = v->val.binary.data;
			break;
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
}

/* A jsonb document's root as a ModelValue (a scalar root is the scalar). */
static void
root_model(Jsonb *jb, ModelValue *out)
{
	JsonbValue	v;

	if (JB_ROOT_IS_SCALAR(jb))
	{
		JsonbExtractScalar(&jb->root, &v);
		to_model(&v, out);
		return;
	}
	v.type = jbvBinary;
	v.val.binary.data = &jb->root;
	v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
	to_model(&v, out);
}

struct ModelIter
{
	JsonbIterator *it;
};

static int
host_size(void *arg, const void *container)
{
	return JsonContainerSize((JsonbContainer *) container);
}

static ModelIter *
host_iterate(void *arg, const void *container)
{
	ModelIter  *mi = palloc(sizeof(ModelIter));

	mi->it = JsonbIteratorInit((JsonbContainer *) container);
	return mi;
}

static bool
host_next(void *arg, ModelIter *mi, ModelValue *key, ModelValue *value)
{
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&mi->it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY && key != NULL)
			to_model(&v, key);
		else if (tok == WJB_VALUE || tok == WJB_ELEM)
		{
			to_model(&v, value);
			return true;
		}
	}
	return false;
}

static bool
host_member(void *arg, const void *object, const char *key, ModelValue *out)
{
	JsonbValue	v;

	if (getKeyJsonValueFromContainer((JsonbContainer *) object, key, strlen(key), &v) == NULL)
		return false;
	to_model(&v, out);
	return true;
}

static bool
host_element(void *arg, const void *array, int index, ModelValue *out)
{
	JsonbValue *v = getIthJsonbValueFromContainer((JsonbContainer *) array, index);

	if (v == NULL)
		return false;
	to_model(v, out);
	return true;
}

static bool
host_equal(void *arg, const void *a, const void *b)
{
	return compareJsonbContainers((JsonbContainer *) a, (JsonbContainer *) b) == 0;
}

/* ---------- memory, characters, errors ---------- */

static void *
host_alloc(void *arg, size_t size)
{
	return palloc(size);
}

static void
host_interrupt(void *arg)
{
	CHECK_FOR_INTERRUPTS();
}

static int
host_char_len(void *arg, const char *s, int remaining)
{
	int			n = pg_mblen(s);

	return Min(n, remaining);
}

static void host_fail(void *arg, ModelError error, const char *message, const char *hint)
			pg_attribute_noreturn();

static void
host_fail(void *arg, ModelError error, const char *message, const char *hint)
{
	int			code;

	switch (error)
	{
		case MODEL_RANGE:
			code = ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE;
			break;
		case MODEL_LENGTH:
			code = ERRCODE_STRING_DATA_LENGTH_MISMATCH;
			break;
		case MODEL_NOT_NULL:
			code = ERRCODE_NOT_NULL_VIOLATION;
			break;
		case MODEL_UNIQUE:
			code = ERRCODE_UNIQUE_VIOLATION;
			break;
		case MODEL_CHECK:
			code = ERRCODE_CHECK_VIOLATION;
			break;
		default:
			code = ERRCODE_INVALID_PARAMETER_VALUE;
			break;
	}
	ereport(ERROR,
			(errcode(code),
			 errmsg_internal("%s", message),
			 hint != NULL ? errhint("%s", hint) : 0));
	pg_unreachable();
}

static const ModelHost jsonb_host = {
	.arg = NULL,
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

/* ---------- the checks, as the publish functions call them ---------- */

/* The canonical name of a workspace event type; an error for any other. */
const char *
validate_workspace_type_name(const char *event_type)
{
	const char *name = model_workspace_type(event_type);

	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not a workspace event type", event_type),
				 errhint("Workspace event types: %s.", model_workspace_type_list())));
	return name;
}

void
validate_workspace_event(const char *event_type, Jsonb *payload)
{
	MemoryContext old;
	ModelValue	root;
	const char *type = validate_workspace_type_name(event_type);

	old = MemoryContextSwitchTo(validate_context());
	root_model(payload, &root);
	model_check_workspace(&jsonb_host, type, &root, true);
	MemoryContextSwitchTo(old);
}

void
validate_conversation_event(const char *event, const char *node, Jsonb *data)
{
	MemoryContext old = MemoryContextSwitchTo(validate_context());
	ModelValue	root;

	root_model(data, &root);
	model_check_conversation(&jsonb_host, event, node, &root);
	MemoryContextSwitchTo(old);
}

void
validate_stream_id(const char *what, text *id)
{
	model_check_stream_id(&jsonb_host, what, VARDATA_ANY(id), VARSIZE_ANY_EXHDR(id));
}

void
validate_topic_name(text *topic)
{
	model_check_topic(&jsonb_host, VARDATA_ANY(topic), VARSIZE_ANY_EXHDR(topic));
}

void
validate_headers(Jsonb *headers)
{
	MemoryContext old = MemoryContextSwitchTo(validate_context());
	ModelValue	root;

	root_model(headers, &root);
	model_check_headers(&jsonb_host, &root);
	MemoryContextSwitchTo(old);
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
